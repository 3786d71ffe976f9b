// Unit tests: histogram merging, counter deltas into buckets at two resolutions, retention, grouping.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openTestState, seedInstance } from '../../../test/fakes/state.js';
import type { Instance } from '../../domain/instance.js';
import type { Counters, MetricsResponse, TargetStatus } from '../../domain/route-table.js';
import type { Clock } from '../../lib/clock.js';
import { silentLogger } from '../../lib/logger.js';
import type { Store } from '../store/store.js';
import { bucketBound, fromCumulative, mean, quantile } from './latency.js';
import { MetricsCollector } from './metrics-collector.js';
import { MetricsStore } from './metrics-store.js';

/** Cumulative `{le, count}` buckets as the proxy reports them, for a list of latencies. */
function cumulative(latencies: readonly number[]): { le: number; count: number }[] {
  const counts = new Map<number, number>();
  for (const ms of latencies) {
    const i = ms <= 0.05 ? 0 : Math.ceil(Math.log(ms / 0.05) / Math.log(1.05));
    counts.set(i, (counts.get(i) ?? 0) + 1);
  }
  let seen = 0;
  return [...counts.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([i, count]) => {
      seen += count;
      return { le: Number(bucketBound(i).toPrecision(4)), count: seen };
    });
}

function counters(
  statuses: Record<string, number>,
  latencies: number[],
  extra: Partial<Counters> = {},
): Counters {
  const requests = Object.values(statuses).reduce((a, b) => a + b, 0);
  return {
    requests,
    status: {
      '1xx': 0,
      '2xx': statuses['2xx'] ?? 0,
      '3xx': 0,
      '4xx': statuses['4xx'] ?? 0,
      '5xx': statuses['5xx'] ?? 0,
    },
    proxyErrors: { '499': 0, '502': statuses['502'] ?? 0, '503': statuses['503'] ?? 0, '504': 0 },
    retries: 0,
    bytesIn: requests * 100,
    bytesOut: requests * 1000,
    inFlight: 0,
    activeConnections: 0,
    latencyMs: { p50: 0, p95: 0, p99: 0, max: Math.max(0, ...latencies), count: latencies.length },
    histogram: cumulative(latencies),
    ...extra,
  };
}

function target(id: string, c: Counters, group = 'shop.web'): TargetStatus {
  return {
    targetGroup: group,
    id,
    host: '127.0.0.1',
    port: 1,
    weight: 1,
    state: 'active',
    health: 'healthy',
    healthReason: 'status 200',
    inFlight: c.inFlight,
    upgraded: 0,
    counters: c,
  } as TargetStatus;
}

function instance(id: string, state: Instance['state'] = 'healthy', release = 1): Instance {
  // Cast: the output-path fields are being reshaped (one JSON-lines log file); these tests do not read them.
  return {
    id,
    app: 'shop',
    service: 'web',
    release,
    configHash: 'h',
    state,
    pid: 1,
    processStart: 1,
    port: 1,
    createdAt: 0,
    healthyAt: 0,
    endedAt: null,
    exitCode: null,
    exitSignal: null,
    reason: null,
    logPath: '/dev/null',
  } as unknown as Instance;
}

function setup(): { store: Store; metrics: MetricsStore; clock: Clock & { t: number } } {
  const { db, store } = openTestState();
  store.createRelease({ app: 'shop' } as never, '/tmp', 'v1');
  store.putService({
    app: 'shop',
    name: 'web',
    release: 1,
    desiredCount: 2,
    configHash: 'h',
    spec: { name: 'web', resources: { memoryBytes: 1000 } } as never,
    sourceDir: '/tmp',
    failures: 0,
    nextStartAt: 0,
  });
  const clock = { t: 1_000_000_000_000, now: () => clock.t, sleep: async () => {} };
  return { store, metrics: new MetricsStore(db), clock };
}

function response(targets: TargetStatus[], groups: Record<string, Counters> = {}): MetricsResponse {
  return {
    total: counters({}, []),
    targetGroups: groups,
    targets,
    unrouted: { notFound: 0, redirected: 0, challenges: 0 },
  };
}

describe('latency histograms', () => {
  it('reports quantiles of merged buckets within 5 % of the exact value', () => {
    const values = Array.from({ length: 1000 }, (_, i) => i + 1);
    const h = fromCumulative(cumulative(values));
    for (const [q, exact] of [
      [0.5, 500],
      [0.95, 950],
      [0.99, 990],
    ] as const) {
      const got = quantile(h, q)!;
      assert.ok(got >= exact && got <= exact * 1.05, `q${q}: ${got} vs ${exact}`);
    }
    const avg = mean(h)!;
    assert.ok(Math.abs(avg - 500.5) / 500.5 < 0.03, `mean ${avg}`);
  });
});

describe('metrics collector and store', () => {
  it('turns counter increments into 10 s and 1 min buckets and merges instances per service', async () => {
    const { store, metrics, clock } = setup();
    seedInstance(store, instance('web-1'));
    seedInstance(store, instance('web-2'));
    let proxy = response([target('web-1', counters({}, [])), target('web-2', counters({}, []))]);
    const usage = {
      usageOf: (i: Instance) => ({ cpuPercent: i.id === 'web-1' ? 10 : 30, memoryBytes: 500, sampledAt: 0 }),
    };
    const collector = new MetricsCollector({
      store,
      metrics,
      proxyMetrics: async () => proxy,
      usage,
      clock,
      log: silentLogger,
    });
    await collector.collectNow();
    const fast = Array.from({ length: 90 }, () => 10);
    const slow = Array.from({ length: 10 }, () => 200);
    proxy = response([
      target('web-1', counters({ '2xx': 90 }, fast)),
      target('web-2', counters({ '4xx': 5, '5xx': 3, '502': 2 }, slow)),
    ]);
    clock.t += 5000;
    await collector.collectNow();

    const result = metrics.query({ app: 'shop', from: clock.t - 60_000, to: clock.t + 1 }, clock.t);
    assert.equal(result.resolutionMs, 10_000);
    assert.equal(result.series.length, 1);
    const points = result.series[0]!.points;
    const total = points.reduce((sum, p) => sum + p.requests, 0);
    assert.equal(total, 100);
    const last = points[points.length - 1]!;
    assert.equal(last.s2xx, 90);
    assert.equal(last.s4xx, 5);
    assert.equal(last.s5xx, 3);
    assert.equal(last.e502, 2);
    assert.ok(last.p50! >= 10 && last.p50! <= 10.5, `p50 ${last.p50}`);
    assert.ok(last.p95! >= 200 && last.p95! <= 210, `p95 ${last.p95}`);
    assert.equal(last.healthy, 2);
    assert.equal(last.cpuPercent, 20);
    assert.equal(last.memoryPercent, 50);
    assert.equal(last.rpmPerInstance, (100 * 6) / 2);

    const coarse = metrics.query(
      { app: 'shop', from: clock.t - 60_000, to: clock.t + 1, resolutionMs: 60_000 },
      clock.t,
    );
    assert.equal(
      coarse.series[0]!.points.reduce((sum, p) => sum + p.requests, 0),
      100,
    );

    const byInstance = metrics.query(
      { app: 'shop', from: clock.t - 60_000, to: clock.t + 1, by: 'instance' },
      clock.t,
    );
    assert.deepEqual(
      byInstance.series.map((s) => [s.instance, s.points.reduce((sum, p) => sum + p.requests, 0)]),
      [
        ['web-1', 90],
        ['web-2', 10],
      ],
    );
  });

  it('counts on from the persisted cursor after a restart and from zero after a proxy reset', async () => {
    const { store, metrics, clock } = setup();
    seedInstance(store, instance('web-1'));
    const usage = { usageOf: () => null };
    let proxy = response([target('web-1', counters({ '2xx': 50 }, Array(50).fill(5)))]);
    const make = (): MetricsCollector =>
      new MetricsCollector({
        store,
        metrics,
        proxyMetrics: async () => proxy,
        usage,
        clock,
        log: silentLogger,
      });
    await make().collectNow();
    proxy = response([target('web-1', counters({ '2xx': 70 }, Array(70).fill(5)))]);
    clock.t += 10_000;
    await make().collectNow(); // a new collector, as after a control-plane restart
    proxy = response([target('web-1', counters({ '2xx': 4 }, Array(4).fill(5)))]);
    clock.t += 10_000;
    await make().collectNow();
    const points = metrics.query({ app: 'shop', from: clock.t - 60_000, to: clock.t + 1 }, clock.t).series[0]!
      .points;
    assert.deepEqual(
      points.map((p) => p.requests),
      [50, 20, 4],
    );
  });

  it('shows a crash replaced within one interval as a dip in the healthy count', async () => {
    const { store, metrics, clock } = setup();
    seedInstance(store, instance('web-1'));
    seedInstance(store, instance('web-2'));
    const collector = new MetricsCollector({
      store,
      metrics,
      proxyMetrics: async () => response([]),
      usage: { usageOf: () => null },
      clock,
      log: silentLogger,
    });
    await collector.collectNow();
    const t = clock.t;
    store.transitionInstance('web-2', 'crashed', 'killed by SIGKILL', {
      facts: { endedAt: t + 100 },
      event: () => ({ actor: 'test', kind: 'instance.crashed', message: 'web-2 crashed' }),
    });
    seedInstance(store, { ...instance('web-3'), healthyAt: t + 300 });
    clock.t = t + 1000;
    await collector.collectNow();
    const points = metrics.query({ app: 'shop', from: t, to: clock.t + 1 }, clock.t).series[0]!.points;
    assert.equal(points[points.length - 1]!.healthy, 1);
  });

  it('summarises a window with the latest healthy count, not the lowest one seen in it', async () => {
    const { store, metrics, clock } = setup();
    seedInstance(store, instance('web-1'));
    seedInstance(store, instance('web-2'));
    const collector = new MetricsCollector({
      store,
      metrics,
      proxyMetrics: async () => response([]),
      usage: { usageOf: () => null },
      clock,
      log: silentLogger,
    });
    const from = clock.t;
    await collector.collectNow();
    seedInstance(store, { ...instance('web-3'), healthyAt: clock.t + 10 });
    clock.t += 30_000;
    await collector.collectNow();
    const summary = metrics.query(
      { app: 'shop', from, to: clock.t + 1, collapse: true, resolutionMs: 10_000 },
      clock.t,
    );
    assert.equal(
      summary.series[0]!.points[0]!.healthy,
      3,
      'berth top shows 3/3, not the 2 of the oldest bucket',
    );
  });

  it('does not list an instance killed since the last collection as healthy', async () => {
    const { store, metrics, clock } = setup();
    seedInstance(store, instance('web-1'));
    seedInstance(store, instance('web-2'));
    const proxy = response([
      target('web-1', counters({ '2xx': 1 }, [1])),
      target('web-2', counters({ '2xx': 1 }, [1])),
    ]);
    const collector = new MetricsCollector({
      store,
      metrics,
      proxyMetrics: async () => proxy,
      usage: { usageOf: () => null },
      clock,
      log: silentLogger,
    });
    const from = clock.t;
    await collector.collectNow();
    // Killed, and gone from the proxy too, within the same 10 s bucket.
    store.transitionInstance('web-2', 'crashed', 'killed by SIGKILL', {
      facts: { endedAt: clock.t + 100 },
      event: () => ({ actor: 'test', kind: 'instance.crashed', message: 'web-2 crashed' }),
    });
    proxy.targets.pop();
    clock.t += 1000;
    await collector.collectNow();
    const byInstance = metrics.query({ app: 'shop', from, to: clock.t + 1, by: 'instance' }, clock.t).series;
    const lastHealthy = Object.fromEntries(byInstance.map((s) => [s.instance, s.points.at(-1)!.healthy]));
    assert.deepEqual(lastHealthy, { 'web-1': 1, 'web-2': 0 });
  });

  it('attributes 503s of a group with no target to the service', async () => {
    const { store, metrics, clock } = setup();
    let proxy = response([], { 'shop.web': counters({}, []) });
    const collector = new MetricsCollector({
      store,
      metrics,
      proxyMetrics: async () => proxy,
      usage: { usageOf: () => null },
      clock,
      log: silentLogger,
    });
    await collector.collectNow();
    proxy = response([], { 'shop.web': counters({ '503': 7 }, []) });
    clock.t += 1000;
    await collector.collectNow();
    const points = metrics.query({ app: 'shop', from: clock.t - 60_000, to: clock.t + 1 }, clock.t).series[0]!
      .points;
    assert.equal(
      points.reduce((sum, p) => sum + p.e503, 0),
      7,
    );
  });

  it('drops fine buckets after an hour and coarse ones after their retention', async () => {
    const { store, metrics, clock } = setup();
    seedInstance(store, instance('web-1'));
    const collector = new MetricsCollector({
      store,
      metrics,
      proxyMetrics: async () => response([target('web-1', counters({}, []))]),
      usage: { usageOf: () => null },
      clock,
      log: silentLogger,
    });
    await collector.collectNow();
    const at = clock.t;
    assert.ok(metrics.enforceRetention(at + 3_600_000 + 10_000) >= 1);
    assert.equal(
      metrics.query({ app: 'shop', from: at - 10_000, to: at + 10_000, resolutionMs: 10_000 }, at).series
        .length,
      0,
    );
    assert.equal(
      metrics.query({ app: 'shop', from: at - 60_000, to: at + 60_000, resolutionMs: 60_000 }, at).series
        .length,
      1,
    );
    metrics.enforceRetention(at + 8 * 24 * 3_600_000);
    assert.equal(
      metrics.query({ app: 'shop', from: at - 60_000, to: at + 60_000, resolutionMs: 60_000 }, at).series
        .length,
      0,
    );
  });
});
