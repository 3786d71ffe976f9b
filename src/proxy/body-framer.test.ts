import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BodyFramer, FramingError } from './body-framer.js';

describe('BodyFramer', () => {
  it('finds the end of a Content-Length body across chunks', () => {
    const f = new BodyFramer();
    f.reset('length', 10);
    assert.equal(f.feed(Buffer.from('12345'), 0), -1);
    assert.equal(f.feed(Buffer.from('6789012'), 0), 5);
    assert.ok(f.done);
  });

  it('finds the end of a chunked body byte by byte, with extensions and trailers', () => {
    const body = '5;ext=1;q="a \\" b"\r\nhello\r\nA\r\n0123456789\r\n0;last\r\nTrailer: x\r\n\r\nNEXT';
    for (const split of [1, 3, 7, body.length]) {
      const f = new BodyFramer();
      f.reset('chunked');
      let end = -1;
      let offset = 0;
      for (let i = 0; i < body.length && end === -1; i += split) {
        const part = Buffer.from(body.slice(i, i + split));
        const e = f.feed(part, 0);
        if (e !== -1) end = offset + e;
        offset += part.length;
      }
      assert.equal(body.slice(end), 'NEXT', `split ${split}`);
    }
  });

  it('drops trailer fields: skipFrom says where they start, the forwarder writes the final CRLF', () => {
    const f = new BodyFramer();
    f.reset('chunked');
    const a = Buffer.from('3\r\nabc\r\n0\r\nX-T');
    assert.equal(f.feed(a, 0), -1);
    assert.equal(a.subarray(0, f.skipFrom).toString(), '3\r\nabc\r\n0\r\n');
    const b = Buffer.from(': 1\r\n\r\nNEXT');
    assert.equal(f.feed(b, 0), 7);
    assert.equal(f.skipFrom, 0);
    assert.ok(f.done && f.trailersDropped);
    f.reset('chunked');
    assert.equal(f.feed(Buffer.from('0\r\n\r\n'), 0), 5);
    assert.equal(f.skipFrom, -1);
    assert.equal(f.trailersDropped, false);
  });

  it('rejects malformed chunk framing', () => {
    for (const bad of [
      'zz\r\n',
      '5\nhello\r\n',
      '3\r\nabcd\r\n',
      `${'f'.repeat(14)}\r\n`,
      '5 \r\n',
      '5\t\r\n',
      '5 ;a\r\n',
      '5;\r\n',
      '5;a=\r\n',
      '5;a="b\r\n',
      '5;a\x00\r\n',
      '0\r\nX-T: \rx\r\n\r\n',
      '0\r\nX-T 1\r\n\r\n',
      '0\r\n folded\r\n\r\n',
      '0\r\nX-T: 1\n\r\n',
    ]) {
      const f = new BodyFramer();
      f.reset('chunked');
      assert.throws(() => f.feed(Buffer.from(bad), 0), FramingError, bad);
    }
  });

  it('never ends a close-delimited body and ends an empty one at once', () => {
    const f = new BodyFramer();
    f.reset('close');
    assert.equal(f.feed(Buffer.from('abc'), 0), -1);
    f.reset('length', 0);
    assert.ok(f.done);
  });
});
