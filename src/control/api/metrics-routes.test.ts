// Unit tests: the opt-in open metrics listener serves only GET /metrics, on loopback; label values are escaped.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MetricsResponse, TargetStatus } from '../../domain/route-table.js';
import { renderExposition } from '../metrics/prometheus.js';
import { startOpenMetricsListener } from './metrics-routes.js';

describe('open metrics listener', () => {
  it('serves GET /metrics without a token on 127.0.0.1 and nothing else', async () => {
    const listener = await startOpenMetricsListener(0, () => 'berth_up 1\n');
    try {
      const ok = await fetch(`http://127.0.0.1:${listener.port}/metrics`);
      assert.equal(ok.status, 200);
      assert.equal(await ok.text(), 'berth_up 1\n');
      assert.match(ok.headers.get('content-type') ?? '', /version=0\.0\.4/);
      assert.equal((await fetch(`http://127.0.0.1:${listener.port}/v1/apps`)).status, 404);
    } finally {
      await listener.close();
    }
  });
});

describe('Prometheus exposition', () => {
  it('escapes label values and keeps the histogram buckets cumulative up to +Inf = count', () => {
    const counters = {
      requests: 3,
      status: { '1xx': 0, '2xx': 3, '3xx': 0, '4xx': 0, '5xx': 0 },
      proxyErrors: { '499': 0, '502': 0, '503': 0, '504': 0 },
      retries: 0,
      bytesIn: 0,
      bytesOut: 0,
      inFlight: 0,
      activeConnections: 0,
      latencyMs: { p50: 1, p95: 1, p99: 1, max: 70_000, count: 3 },
      histogram: [
        { le: 1.04, count: 1 },
        { le: 20.5, count: 2 },
        { le: 71_350, count: 3 },
      ],
    };
    const proxy = {
      total: counters,
      targetGroups: {},
      targets: [
        { targetGroup: 'a.web', id: 'we"ird\\id', health: 'healthy', counters } as unknown as TargetStatus,
      ],
      unrouted: { notFound: 0, redirected: 0 },
    } as MetricsResponse;
    const text = renderExposition({
      proxy,
      services: new Map([['a.web', { app: 'a', service: 'web' }]]),
      instances: new Map(),
      usageOf: () => null,
      alarms: [],
    });
    assert.match(text, /instance="we\\"ird\\\\id"/);
    const buckets = [
      ...text.matchAll(/^berth_request_duration_seconds_bucket\{.*le="([^"]+)"\} (\d+)$/gm),
    ].map((m) => [m[1], Number(m[2])] as const);
    assert.deepEqual(
      buckets.find(([le]) => le === '0.005'),
      ['0.005', 1],
    );
    assert.deepEqual(
      buckets.find(([le]) => le === '0.025'),
      ['0.025', 2],
    );
    assert.deepEqual(
      buckets.find(([le]) => le === '60'),
      ['60', 2],
    );
    assert.deepEqual(buckets[buckets.length - 1], ['+Inf', 3]);
    assert.match(text, /^berth_request_duration_seconds_count\{[^}]*\} 3$/m);
  });
});
