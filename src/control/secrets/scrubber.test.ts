// Unit tests of secret scrubbing: whole strings, and byte streams where a value is split across writes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StreamScrubber, TextScrubber } from './scrubber.js';

function scrubStream(secrets: Record<string, string>, chunks: string[]): string {
  const scrubber = new StreamScrubber(secrets);
  const out = chunks.map((chunk) => scrubber.push(Buffer.from(chunk)).toString());
  return out.join('') + scrubber.flush().toString();
}

describe('StreamScrubber', () => {
  it('replaces a value written in one piece', () => {
    assert.equal(scrubStream({ TOKEN: 'hunter22' }, ['pw=hunter22;\n']), 'pw=[secret:TOKEN];\n');
  });

  it('replaces a value split across two writes at every possible cut', () => {
    const text = 'before s3cr3t-value after';
    for (let cut = 0; cut <= text.length; cut++) {
      const got = scrubStream({ KEY: 's3cr3t-value' }, [text.slice(0, cut), text.slice(cut)]);
      assert.equal(got, 'before [secret:KEY] after', `cut at ${cut}`);
    }
  });

  it('replaces a value written one byte at a time', () => {
    const text = 'a=abcdef b=abcdef';
    assert.equal(scrubStream({ S: 'abcdef' }, [...text]), 'a=[secret:S] b=[secret:S]');
  });

  it('holds back only a tail that could start a value, never more than the longest value minus one byte', () => {
    const scrubber = new StreamScrubber({ A: 'abcd', B: 'longer-value' });
    assert.equal(scrubber.push(Buffer.from('0123456789')).toString(), '0123456789');
    assert.equal(scrubber.push(Buffer.from('xx longer-val')).toString(), 'xx ');
    assert.equal(scrubber.pendingBytes, 'longer-val'.length);
    assert.equal(scrubber.push(Buffer.from('ue, abc')).toString(), '[secret:B], ');
    assert.equal(scrubber.flush().toString(), 'abc');
  });

  it('prefers the longest value when one contains another', () => {
    assert.equal(
      scrubStream({ SHORT: 'pass', LONG: 'password1' }, ['x password1 pass']),
      'x [secret:LONG] [secret:SHORT]',
    );
  });

  it('passes output through untouched when there is nothing to scrub, and ignores very short values', () => {
    assert.equal(scrubStream({}, ['plain ', 'text']), 'plain text');
    assert.equal(scrubStream({ PIN: '12' }, ['1212']), '1212');
  });

  it('scrubs multi-byte UTF-8 values split inside a character', () => {
    const value = 'clé-💥-secrète';
    const bytes = Buffer.from(`x ${value} y`);
    const scrubber = new StreamScrubber({ V: value });
    const parts: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 3) parts.push(scrubber.push(bytes.subarray(i, i + 3)));
    parts.push(scrubber.flush());
    assert.equal(Buffer.concat(parts).toString(), 'x [secret:V] y');
  });
});

describe('TextScrubber', () => {
  it('replaces every occurrence in strings and nested values', () => {
    const scrubber = new TextScrubber();
    scrubber.setSecrets({ DB: 'postgres://u:p@h/db' });
    assert.equal(
      scrubber.scrub('url postgres://u:p@h/db twice postgres://u:p@h/db'),
      'url [secret:DB] twice [secret:DB]',
    );
    assert.deepEqual(scrubber.scrubValue({ a: ['x postgres://u:p@h/db'], b: 3, c: null }), {
      a: ['x [secret:DB]'],
      b: 3,
      c: null,
    });
  });

  it('finds a value inside a serialized JSON log line, where it appears escaped', () => {
    const scrubber = new TextScrubber();
    scrubber.setSecrets({ Q: 'pw"with\\quotes' });
    const line = JSON.stringify({ msg: 'connecting with pw"with\\quotes' });
    assert.equal(scrubber.scrub(line), '{"msg":"connecting with [secret:Q]"}');
  });

  it('finds values that JSON escaping would hide', () => {
    const scrubber = new TextScrubber();
    scrubber.setSecrets({ Q: 'a"b\\c' });
    assert.deepEqual(scrubber.scrubValue({ m: 'x a"b\\c' }), { m: 'x [secret:Q]' });
  });
});
