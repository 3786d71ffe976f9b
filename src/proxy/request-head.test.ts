import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeadError, hostOnly, parseRequestHead } from './request-head.js';

/** Parses a head given without its final CRLFCRLF. */
function parse(text: string) {
  const buf = Buffer.from(`${text}\r\n\r\n`, 'latin1');
  return parseRequestHead(buf, text.length);
}

function refuses(text: string, status: number): void {
  assert.throws(
    () => parse(text),
    (err: unknown) => err instanceof HeadError && err.status === status,
    JSON.stringify(text),
  );
}

describe('parseRequestHead', () => {
  it('keeps end-to-end headers verbatim and takes out framing, hop-by-hop and forwarding ones', () => {
    const head = parse(
      'POST /a?b=1 HTTP/1.1\r\nHost: App.Localhost:8080\r\nX-Custom: 1\r\nConnection: keep-alive\r\n' +
        'Keep-Alive: timeout=5\r\nX-Forwarded-For: 10.0.0.1\r\nX-Request-Id: abc-1\r\nContent-Length: 3\r\nTE: trailers',
    );
    assert.equal(head.method, 'POST');
    assert.equal(head.target, '/a?b=1');
    assert.equal(head.host, 'app.localhost');
    assert.equal(head.authority, 'App.Localhost:8080');
    assert.equal(head.kept, 'Host: App.Localhost:8080\r\nX-Custom: 1\r\n');
    assert.equal(head.forwarding?.for, '10.0.0.1');
    assert.equal(head.requestId, 'abc-1');
    assert.equal(head.contentLength, 3);
    assert.equal(head.close, false);
  });

  it('reads cookies and X-Berth-Release for routing and forwards their lines as sent', () => {
    const head = parse(
      'GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nX-Berth-Release: v7\r\ncookie: berth-tg=x\r\nx-berth-release: v8',
    );
    assert.equal(head.cookie, 'a=1; berth-tg=x');
    assert.equal(head.release, 'v7');
    assert.equal(
      head.kept,
      'Host: a\r\nCookie: a=1\r\nX-Berth-Release: v7\r\ncookie: berth-tg=x\r\nx-berth-release: v8\r\n',
    );
    const none = parse('GET / HTTP/1.1\r\nHost: a\r\nCookies: a=1\r\nX_Berth_Release: v7');
    assert.equal(none.cookie, undefined);
    assert.equal(none.release, undefined);
  });

  it('recognizes upgrades and connection options as tokens, and drops the headers Connection names', () => {
    const ws = parse('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket');
    assert.equal(ws.upgrade, 'websocket');
    assert.equal(
      parse('GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-notupgrade\r\nUpgrade: h2c').upgrade,
      undefined,
    );
    assert.equal(parse('GET / HTTP/1.0').close, true);
    assert.equal(parse('GET / HTTP/1.0\r\nConnection: keep-alive').close, false);
    assert.equal(parse('GET / HTTP/1.1\r\nHost: a\r\nConnection: close').close, true);
    assert.equal(
      parse('GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Secret\r\nX-Secret: 1\r\nX-Kept: 2').kept,
      'Host: a\r\nX-Kept: 2\r\n',
    );
  });

  it('drops forwarding headers and the underscore spellings of the headers it interprets', () => {
    const head = parse(
      'GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=1\r\nX-Real-IP: 1\r\nX-Forwarded-Prefix: /p\r\n' +
        'X_Forwarded_For: 1\r\nContent_Length: 5\r\nX_Custom: kept',
    );
    assert.equal(head.kept, 'Host: a\r\nX_Custom: kept\r\n');
    assert.equal(head.forwarding?.lines, 'Forwarded: for=1\r\nX-Real-IP: 1\r\nX-Forwarded-Prefix: /p\r\n');
  });

  it('accepts absolute-form targets: the authority replaces Host, the path is forwarded in origin-form', () => {
    const head = parse('GET http://App.localhost:8080?q=1 HTTP/1.1\r\nHost: other\r\nX: 1');
    assert.equal(head.target, '/?q=1');
    assert.equal(head.host, 'app.localhost');
    assert.equal(head.kept, 'host: App.localhost:8080\r\nX: 1\r\n');
  });

  it('checks values on the raw bytes: only SP and HTAB are trimmed, obs-text is kept', () => {
    const head = parse('GET / HTTP/1.1\r\nHost: a\r\nX-A: \t caf\xe9 \t\r\nContent-Length:  7 ');
    assert.equal(head.kept, 'Host: a\r\nX-A: \t caf\xe9 \t\r\n');
    assert.equal(head.contentLength, 7);
    assert.equal(parse('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \tChunked ').chunked, true);
  });

  it('refuses ambiguous or malformed heads with the right status', () => {
    const cases: [string, number][] = [
      ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked', 501],
      ['GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked', 501],
      ['GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\xa0', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\xa0', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nX-A: \rContent-Length: 0', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x7f', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nHost: b', 400],
      ['GET / HTTP/1.1', 400],
      ['GET / HTTP/2.0\r\nHost: a', 505],
      ['GET / http/1.1\r\nHost: a', 400],
      ['GET ftp://a/ HTTP/1.1\r\nHost: a', 400],
      ['GET http://u@a/ HTTP/1.1\r\nHost: a', 400],
      ['CONNECT a:443 HTTP/1.1\r\nHost: a', 501],
      ['BREW / HTTP/1.1\r\nHost: a', 501],
      ['GET /\x80 HTTP/1.1\r\nHost: a', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\n folded', 400],
      ['GET / HTTP/1.1\r\nHost : a', 400],
      ['GET  / HTTP/1.1\r\nHost: a', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nX: a\nb', 400],
      ['GET / HTTP/1.1\r\nHost: evil.com#', 400],
      ['GET / HTTP/1.1\r\nHost: caf\xe9.test', 400],
      [`GET /${'a'.repeat(9000)} HTTP/1.1\r\nHost: a`, 414],
    ];
    for (const [text, status] of cases) refuses(text, status);
  });

  it('validates hosts as authorities, strips ports and keeps IPv6 literals', () => {
    assert.equal(hostOnly('Example.COM:443'), 'example.com');
    assert.equal(hostOnly('[::1]:8080'), '[::1]');
    for (const bad of ['a b', 'evil.com#', 'a@b', 'a/b', 'a:8x', 'a:', '[::1', '[zz]', 'caf\xe9', '%zz']) {
      assert.equal(hostOnly(bad), '', bad);
    }
  });
});
