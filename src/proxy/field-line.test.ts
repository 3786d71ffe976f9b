import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BAD_NAME,
  BAD_VALUE,
  FieldLine,
  fieldLinePrefixValid,
  findBareCr,
  findBareLf,
  OK,
  readFieldLine,
  requestLinePrefixValid,
  tokenList,
} from './field-line.js';

describe('field lines', () => {
  it('trims only SP and HTAB around a value', () => {
    const line = new FieldLine();
    const text = 'X-A: \t v\xa0 \t\r\n';
    assert.equal(readFieldLine(text, 0, line), OK);
    assert.equal(text.slice(line.valueStart, line.valueEnd), 'v\xa0');
    assert.equal(line.next, text.length);
  });

  it('refuses bad names and values', () => {
    const line = new FieldLine();
    for (const bad of ['X A: v\r\n', ' X: v\r\n', ': v\r\n', 'X\x80: v\r\n', 'X v\r\n']) {
      assert.equal(readFieldLine(bad, 0, line), BAD_NAME, JSON.stringify(bad));
    }
    for (const bad of ['X: \rv\r\n', 'X: v\x0b\r\n', 'X: a\x00b\r\n', 'X: a\nb\r\n', 'X: v\r\r\n']) {
      assert.equal(readFieldLine(bad, 0, line), BAD_VALUE, JSON.stringify(bad));
    }
  });

  it('reads token lists without taking NBSP or VT for whitespace', () => {
    assert.deepEqual(tokenList(' keep-alive ,\tUpgrade,,'), ['keep-alive', 'upgrade']);
    assert.equal(tokenList('keep-alive\xa0'), undefined);
    assert.equal(tokenList('close;q=1'), undefined);
  });

  it('finds bare CRs and LFs, leaving a CR at the very end to its next byte', () => {
    assert.equal(findBareLf(Buffer.from('a\r\nb\nc'), 0), 4);
    assert.equal(findBareLf(Buffer.from('a\r\nb\r\n'), 0), -1);
    assert.equal(findBareCr(Buffer.from('a\r\nb\rc'), 0), 4);
    assert.equal(findBareCr(Buffer.from('a\r\nb\r'), 0), -1);
  });

  it('tells whether the start of a line still arriving can become valid', () => {
    const ok = (s: string) => fieldLinePrefixValid(Buffer.from(s, 'latin1'), 0, s.length);
    assert.ok(ok('Content-Le') && ok('X-A: va') && ok('X-A: v\r') && ok('\r'));
    assert.ok(!ok('X A') && !ok('X-A: v\x00') && !ok('\rX'));
    const line = (s: string) => requestLinePrefixValid(Buffer.from(s, 'latin1'), 0, s.length);
    assert.ok(line('GE') && line('GET /a') && line('GET / HTTP/1.1\r'));
    assert.ok(!line('GE(T') && !line(' GET') && !line('GET /\x80'));
  });
});
