// Table tests of duration parsing and formatting.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDuration, parseDuration } from './duration.js';

describe('parseDuration', () => {
  const good: [string, number][] = [
    ['0s', 0],
    ['500ms', 500],
    ['2s', 2_000],
    ['1.5s', 1_500],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['1h2m3s4ms', 3_723_004],
    ['90s', 90_000],
    ['1d', 86_400_000],
    ['365d', 31_536_000_000],
  ];
  for (const [text, ms] of good) {
    it(`reads ${text} as ${ms} ms`, () => assert.equal(parseDuration(text), ms));
  }

  it('refuses a bare number and says to add a unit', () => {
    assert.throws(() => parseDuration('30'), {
      name: 'RangeError',
      message: '"30" has no unit; add one, e.g. "30s" or "30ms"',
    });
  });

  const bad = ['', '2', '2 s', '2sec', 's', '-1s', '1D', '1.5.s', '2S', ' 2s', '2s ', '1m30', 'ms'];
  for (const text of bad) {
    it(`refuses ${JSON.stringify(text)}`, () => assert.throws(() => parseDuration(text), RangeError));
  }

  it('refuses fractions of a millisecond', () => {
    assert.throws(() => parseDuration('0.5ms'), { message: '"0.5ms" is not a whole number of milliseconds' });
  });

  it('names the expected forms when the text is not a duration', () => {
    assert.throws(() => parseDuration('soon'), {
      message: '"soon" is not a duration; expected e.g. 500ms, 2s, 5m, 1h or 1m30s',
    });
  });
});

describe('formatDuration', () => {
  const table: [number, string][] = [
    [0, '0s'],
    [500, '500ms'],
    [1_500, '1s500ms'],
    [2_000, '2s'],
    [90_000, '1m30s'],
    [3_600_000, '1h'],
    [3_723_004, '1h2m3s4ms'],
    [86_400_000, '1d'],
    [90_061_000, '1d1h1m1s'],
  ];
  for (const [ms, text] of table) {
    it(`writes ${ms} ms as ${text} and reads it back`, () => {
      assert.equal(formatDuration(ms), text);
      assert.equal(parseDuration(text), ms);
    });
  }

  it('refuses negative and fractional milliseconds', () => {
    assert.throws(() => formatDuration(-1), RangeError);
    assert.throws(() => formatDuration(1.5), RangeError);
  });
});
