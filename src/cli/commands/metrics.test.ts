// Unit tests: sparklines scale to the maximum and show gaps; the window is filled bucket by bucket.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MetricPoint, MetricsQueryResult } from '../../domain/metrics-types.js';
import { formatBytes } from '../output.js';
import { filled, formatMs, sparkline } from './metrics.js';

describe('metrics output', () => {
  it('draws eight levels from zero to the maximum, blank where there is no data', () => {
    assert.equal(sparkline([0, 1, 2, 3, 4, 5, 6, 7, null, 7]), '▁▂▃▄▅▆▇█ █');
    assert.equal(sparkline([0, 0]), '▁▁');
  });

  it('fills every bucket of the window, with null for buckets that have no point', () => {
    const point = { at: 20_000, requests: 1 } as MetricPoint;
    const result = { from: 0, to: 40_000, resolutionMs: 10_000 } as MetricsQueryResult;
    assert.deepEqual(filled({ app: 'a', service: 'web', points: [point] }, result), [
      null,
      null,
      point,
      null,
    ]);
  });

  it('formats latencies and sizes compactly', () => {
    assert.deepEqual(
      [formatMs(1.234), formatMs(56.7), formatMs(1500), formatMs(null)],
      ['1.2ms', '57ms', '1.50s', '-'],
    );
    assert.deepEqual(
      [formatBytes(512), formatBytes(1536), formatBytes(91_226_112)],
      ['512B', '1.5KiB', '87MiB'],
    );
  });
});
