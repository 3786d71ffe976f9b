import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Histogram } from './histogram.js';

describe('Histogram', () => {
  it('reports p50/p95/p99 within 10 % of the exact quantiles', () => {
    const h = new Histogram();
    const values: number[] = [];
    let seed = 42;
    for (let i = 0; i < 20_000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const v = 0.1 + (seed / 2 ** 31) ** 3 * 500; // skewed, 0.1..500 ms
      values.push(v);
      h.record(v);
    }
    values.sort((a, b) => a - b);
    for (const q of [0.5, 0.95, 0.99]) {
      const exact = values[Math.ceil(q * values.length) - 1]!;
      const got = h.quantile(q);
      assert.ok(Math.abs(got - exact) / exact <= 0.1, `q${q}: ${got} vs ${exact}`);
    }
  });

  it('lists cumulative non-empty buckets', () => {
    const h = new Histogram();
    for (const v of [1, 1, 10]) h.record(v);
    const buckets = h.cumulative();
    assert.equal(buckets.length, 2);
    assert.equal(buckets[1]?.count, 3);
  });
});
