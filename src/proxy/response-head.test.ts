import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseResponseHead, ResponseHeadError } from './response-head.js';

/** Parses a head given without its final CRLFCRLF. */
function parse(text: string) {
  const buf = Buffer.from(`${text}\r\n\r\n`, 'latin1');
  return parseResponseHead(buf, text.length);
}

describe('parseResponseHead', () => {
  it('keeps end-to-end headers, takes out framing and hop-by-hop ones, and speaks HTTP/1.1', () => {
    const res = parse(
      'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive, X-Internal\r\n' +
        'Keep-Alive: timeout=5\r\nX-Internal: secret\r\nX-Request-Id: theirs\r\nX-Kept: 1',
    );
    assert.equal(res.status, 200);
    assert.equal(res.head, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Kept: 1\r\n');
    assert.equal(res.contentLength, 5);
    assert.equal(res.close, false, 'HTTP/1.0 with keep-alive');
    assert.equal(parse('HTTP/1.0 200 OK').close, true);
    assert.equal(parse('HTTP/1.1 204 No Content\r\nConnection: close').close, true);
  });

  it('keeps Upgrade on a 101 only', () => {
    assert.equal(
      parse('HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\nConnection: upgrade').head,
      'HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\n',
    );
    assert.equal(parse('HTTP/1.1 200 OK\r\nUpgrade: websocket').head, 'HTTP/1.1 200 OK\r\n');
  });

  it('refuses what a strict client would frame differently', () => {
    for (const bad of [
      'HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\xa0',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked',
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked',
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6',
      'HTTP/1.1 200 OK\r\nContent-Length: +5',
      'HTTP/1.1 200 OK\r\nX-A: \rContent-Length: 0',
      'HTTP/1.1 200 OK\r\nX-A: a\r\n b',
      'HTTP/1.1 200 O\x00K',
      'HTTP/1.1 2000 OK',
      'HTTP/2 200 OK',
      'http/1.1 200 OK',
    ]) {
      assert.throws(() => parse(bad), ResponseHeadError, JSON.stringify(bad));
    }
  });
});
