// History does not slow anything: the same present (apps with live instances, their last hour of metrics and
// events) in two real SQLite files, one with no past and one with 100k ended instances (their events) and 1M
// metric points behind it; the reads of the control plane's periodic passes and of `berth ps`, `berth metrics APP`
// and `berth events` timed on both, interleaved, and printed as history / none ratios (target: within ±10 %).
// Run: npm run build && node dist/bench/scale/history.js [--ended 100000] [--points 1000000] [--rounds 30]
import { parseArgs } from 'node:util';
import { emptyDelta, type InstanceSample, MetricsStore } from '../../src/control/metrics/metrics-store.js';
import { Database } from '../../src/control/store/database.js';
import { EventStore } from '../../src/control/store/event-store.js';
import { Store } from '../../src/control/store/store.js';
import type { Instance } from '../../src/domain/instance.js';
import { seedInstance } from '../../test/fakes/state.js';
import { scratchDir } from '../processes.js';

const NOW = Date.UTC(2026, 10, 30, 12);
const MINUTE = 60_000;
const APPS = 50;

interface State {
  db: Database;
  store: Store;
  events: EventStore;
  metrics: MetricsStore;
  bytes: () => number;
}

function instance(id: string, app: string, state: Instance['state'], createdAt: number): Instance {
  const ended = state === 'stopped' || state === 'crashed';
  return {
    id,
    app,
    service: 'web',
    release: 1,
    configHash: 'h',
    pid: null,
    processStart: null,
    port: 3000,
    createdAt,
    healthyAt: createdAt + 500,
    endedAt: ended ? createdAt + 60_000 : null,
    exitCode: ended ? 0 : null,
    exitSignal: null,
    reason: ended ? 'scale_in' : null,
    logPath: '',
    runtime: 'process',
    state,
  };
}

function sample(app: string, id: string, requests: number): InstanceSample {
  return {
    app,
    service: 'web',
    release: 1,
    instance: id,
    delta: { ...emptyDelta(), requests, s2xx: requests, latency: { 10: requests } },
    gauges: {
      inFlight: 0,
      cpuPercent: 0.4,
      memoryBytes: 50e6,
      memoryLimit: null,
      healthy: true,
      unhealthy: false,
    },
  };
}

/** A state file with the present, and `ended` ended instances and about `points` metric points of past. */
function build(ended: number, points: number): State {
  const path = `${scratchDir('berth-bench-history-')}/state.db`;
  const clock = { now: () => NOW, sleep: async () => {} };
  const db = Database.open(path, { now: () => NOW });
  const events = new EventStore(db, { clock });
  const store = new Store(db, events, clock);
  const metrics = new MetricsStore(db);
  const apps = Array.from({ length: APPS }, (_, i) => `app${i}`);
  store.transaction(() => {
    for (const app of apps) {
      store.createRelease({ app } as never, '/tmp', 'v1');
      store.putService({
        app,
        name: 'web',
        release: 1,
        desiredCount: 2,
        configHash: 'h',
        spec: { name: 'web' } as never,
        sourceDir: '/tmp',
        failures: 0,
        nextStartAt: 0,
      });
    }
    // The past: each ended instance went starting → healthy → draining → stopped (an event each), over the week
    // before the last hour (the last hour's exits are the present: the metrics collector reads them).
    const week = 7 * 24 * 60 * MINUTE;
    for (let i = 0; i < ended; i++) {
      const app = apps[i % APPS]!;
      const createdAt = NOW - week + Math.floor((i / ended) * (week - 60 * MINUTE));
      seedInstance(store, instance(`${app}.web.old${i}`, app, 'stopped', createdAt));
    }
  });
  // Metric points of the past, one-minute buckets older than the last hour (what 7-day retention keeps).
  const seriesCount = 100;
  const minutes = Math.ceil(points / seriesCount);
  db.transaction(() => {
    for (let m = minutes; m > 60; m--) {
      const at = NOW - m * MINUTE;
      metrics.record(
        at,
        Array.from({ length: seriesCount }, (_, s) =>
          sample(apps[s % APPS]!, `${apps[s % APPS]}.web.old${s}`, 5),
        ),
      );
    }
  });
  metrics.enforceRetention(NOW);
  // The present, the same in both files: two live instances per app, their last hour of points.
  const live = apps.flatMap((app) => [
    seedInstance(store, instance(`${app}.web.a`, app, 'healthy', NOW - 2 * 3_600_000)),
    seedInstance(store, instance(`${app}.web.b`, app, 'healthy', NOW - 2 * 3_600_000)),
  ]);
  for (let m = 60; m >= 0; m--) {
    for (let s = 0; s < 6; s++) {
      metrics.record(
        NOW - m * MINUTE - s * 10_000,
        live.map((i) => sample(i.app, i.id, 3)),
      );
    }
  }
  db.statement('ANALYZE').run();
  const size = db.statement<{ bytes: number }>(
    'SELECT page_count * page_size AS bytes FROM pragma_page_count(), pragma_page_size()',
  );
  return { db, store, events, metrics, bytes: () => size.get()!.bytes };
}

/** What each reader runs, as the control plane and the API run it. */
const READS: [name: string, run: (s: State) => unknown][] = [
  [
    'health tick (reconcile pass, route sync, metrics collector reads)',
    (s) => {
      s.store.listServices();
      s.store.listInstances({ live: true });
      for (const app of ['app0', 'app1', 'app2']) s.store.listInstances({ app, service: 'web', live: true });
      s.store.listEndedSince(NOW - 5000);
    },
  ],
  ['berth ps (GET /v1/instances)', (s) => s.store.listInstances({ live: true })],
  ['berth ps APP', (s) => s.store.listInstances({ app: 'app7', live: true })],
  [
    'berth metrics APP (last hour)',
    (s) => s.metrics.query({ app: 'app7', from: NOW - 3_600_000, to: NOW }, NOW),
  ],
  ['berth events (newest 100)', (s) => s.events.list({ limit: 100 })],
  ['berth events APP', (s) => s.events.list({ app: 'app7', limit: 100 })],
];

/** Median µs of `run` over `reps` calls, after a warm-up. */
function time(run: () => unknown, reps: number): number {
  for (let i = 0; i < 3; i++) run();
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = process.hrtime.bigint();
    run();
    samples.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      ended: { type: 'string', default: '100000' },
      points: { type: 'string', default: '1000000' },
      rounds: { type: 'string', default: '30' },
    },
  });
  const began = Date.now();
  const none = build(0, 0);
  const past = build(Number(values.ended), Number(values.points));
  // Rows per table (the repositories do not count rows; a benchmark may ask SQLite).
  const rows = (s: State, table: string): number =>
    s.db.statement<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`).get()!.n;
  process.stderr.write(`built in ${((Date.now() - began) / 1000).toFixed(0)} s\n`);
  const results = READS.map(() => ({ none: [] as number[], past: [] as number[] }));
  // Interleaved rounds: whatever else the machine does falls on both alike.
  for (let round = 0; round < Number(values.rounds); round++) {
    READS.forEach(([, run], i) => {
      const first = round % 2 === 0;
      const a = time(() => run(first ? none : past), 20);
      const b = time(() => run(first ? past : none), 20);
      results[i]!.none.push(first ? a : b);
      results[i]!.past.push(first ? b : a);
    });
  }
  console.log(
    `\nthe same present (${APPS} apps × 2 live instances, their last hour of metrics) with no past, and with ` +
      `${rows(past, 'instances') - rows(none, 'instances')} ended instances, ${rows(past, 'events')} events and ` +
      `${rows(past, 'metric_points')} metric points (file ${(none.bytes() / 1048576).toFixed(1)} MB vs ` +
      `${(past.bytes() / 1048576).toFixed(1)} MB); median of ${values.rounds} interleaved rounds, each the median of 20 calls`,
  );
  console.log('| read | no past | with the past | past / none |');
  console.log('| --- | ---: | ---: | ---: |');
  READS.forEach(([name], i) => {
    const a = median(results[i]!.none);
    const b = median(results[i]!.past);
    console.log(`| ${name} | ${a.toFixed(0)} µs | ${b.toFixed(0)} µs | ${(b / a).toFixed(2)} |`);
  });
}

main();
