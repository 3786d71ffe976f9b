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
    const body = '5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT';
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

  it('rejects malformed chunk framing', () => {
    for (const bad of ['zz\r\n', '5\nhello\r\n', '3\r\nabcd\r\n', `${'f'.repeat(13)}\r\n`]) {
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
