import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeadError, hostOnly, parseRequestHead } from './request-head.js';

function parse(text: string) {
  const buf = Buffer.from(text, 'latin1');
  return parseRequestHead(buf, buf.length);
}

describe('parseRequestHead', () => {
  it('keeps end-to-end headers verbatim and extracts hop-by-hop and forwarding ones', () => {
    const head = parse(
      'POST /a?b=1 HTTP/1.1\r\nHost: App.Localhost:8080\r\nX-Custom: 1\r\nConnection: keep-alive\r\n' +
        'Keep-Alive: timeout=5\r\nX-Forwarded-For: 10.0.0.1\r\nX-Request-Id: abc-1\r\nContent-Length: 3',
    );
    assert.equal(head.method, 'POST');
    assert.equal(head.target, '/a?b=1');
    assert.equal(head.host, 'app.localhost');
    assert.equal(head.kept, 'Host: App.Localhost:8080\r\nX-Custom: 1\r\nContent-Length: 3\r\n');
    assert.equal(head.forwardedFor, '10.0.0.1');
    assert.equal(head.requestId, 'abc-1');
    assert.equal(head.contentLength, 3);
    assert.equal(head.close, false);
  });

  it('recognizes upgrades and HTTP/1.0 connection semantics', () => {
    const ws = parse('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket');
    assert.equal(ws.upgrade, 'websocket');
    assert.equal(parse('GET / HTTP/1.0').close, true);
    assert.equal(parse('GET / HTTP/1.0\r\nConnection: keep-alive').close, false);
    assert.equal(parse('GET / HTTP/1.1\r\nHost: a\r\nConnection: close').close, true);
  });

  it('refuses ambiguous or malformed heads with the right status', () => {
    const cases: [string, number][] = [
      ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked', 501],
      ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nHost: b', 400],
      ['GET / HTTP/1.1', 400],
      ['GET / HTTP/2.0\r\nHost: a', 505],
      ['GET http://a/ HTTP/1.1\r\nHost: a', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\n folded', 400],
      ['GET / HTTP/1.1\r\nHost : a', 400],
      ['GET  / HTTP/1.1\r\nHost: a', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nX: a\nb', 400],
    ];
    for (const [text, status] of cases) {
      assert.throws(
        () => parse(text),
        (err: unknown) => err instanceof HeadError && err.status === status,
        text,
      );
    }
  });

  it('strips ports from hosts and keeps IPv6 literals', () => {
    assert.equal(hostOnly('Example.COM:443'), 'example.com');
    assert.equal(hostOnly('[::1]:8080'), '[::1]');
    assert.equal(hostOnly('a b'), '');
  });
});
