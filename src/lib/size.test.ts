// Table tests of size parsing and formatting.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatSize, parseSize } from './size.js';

describe('parseSize', () => {
  const good: [string, number][] = [
    ['0', 0],
    ['65536', 65_536],
    ['64Ki', 65_536],
    ['512Mi', 536_870_912],
    ['1Gi', 1_073_741_824],
    ['1.5Gi', 1_610_612_736],
    ['2Ti', 2 * 2 ** 40],
    ['100M', 100_000_000],
    ['1G', 1_000_000_000],
    ['1k', 1_000],
    ['1K', 1_000],
    ['1T', 1e12],
    ['0.5Ki', 512],
  ];
  for (const [text, bytes] of good) {
    it(`reads ${text} as ${bytes} bytes`, () => assert.equal(parseSize(text), bytes));
  }

  it('rounds a fraction of a byte up', () => assert.equal(parseSize('1.5'), 2));

  it('refuses MB-style suffixes with a hint', () => {
    assert.throws(() => parseSize('512MB'), {
      name: 'RangeError',
      message:
        '"512MB" is not a size; expected e.g. 512Mi, 1Gi, 100M, 1G, 64Ki or a number of bytes (write "512Mi" for binary or "512M" for decimal)',
    });
  });

  const bad = ['', 'Mi', '-1Mi', '1 Mi', '1mi', '1m', '1GiB', 'lots', '1e3', '1,000'];
  for (const text of bad) {
    it(`refuses ${JSON.stringify(text)}`, () => assert.throws(() => parseSize(text), RangeError));
  }
});

describe('formatSize', () => {
  const table: [number, string][] = [
    [0, '0'],
    [1_234, '1234'],
    [65_536, '64Ki'],
    [536_870_912, '512Mi'],
    [1_073_741_824, '1Gi'],
    [100_000_000, '100M'],
    [1_000, '1k'],
  ];
  for (const [bytes, text] of table) {
    it(`writes ${bytes} bytes as ${text} and reads it back`, () => {
      assert.equal(formatSize(bytes), text);
      assert.equal(parseSize(text), bytes);
    });
  }
});
