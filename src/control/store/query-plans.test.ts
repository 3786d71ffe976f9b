// Every hot query of the state database runs through an index: checked on the plans SQLite makes for the
// statements as the repositories really run them (EXPLAIN QUERY PLAN with their parameters), so a query that
// would read every row ever written (ended instances, old events, metric points) fails here, not in production.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openTestState, seedInstance } from '../../../test/fakes/state.js';
import type { Instance } from '../../domain/instance.js';
import { emptyDelta, MetricsStore } from '../metrics/metrics-store.js';

const NOW = 1_700_000_000_000;

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
    healthyAt: null,
    endedAt: ended ? createdAt + 1000 : null,
    exitCode: ended ? 0 : null,
    exitSignal: null,
    reason: ended ? 'scale_in' : null,
    logPath: '',
    runtime: 'process',
    state,
  };
}

/** A state database with some of everything, and every statement's plan as it runs. */
function seeded() {
  const state = openTestState({ clock: { now: () => NOW, sleep: async () => {} } });
  const { db, store, events } = state;
  const metrics = new MetricsStore(db);
  for (const app of ['shop', 'blog']) {
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
    for (let i = 0; i < 20; i++)
      seedInstance(store, instance(`${app}-old-${i}`, app, 'stopped', NOW - 100_000 + i));
    seedInstance(store, instance(`${app}-a`, app, 'healthy', NOW - 10));
    seedInstance(store, instance(`${app}-b`, app, 'starting', NOW - 5));
    const sample = {
      app,
      service: 'web',
      release: 1,
      instance: `${app}-a`,
      delta: { ...emptyDelta(), requests: 1 },
    };
    metrics.record(NOW - 60_000, [sample]);
    metrics.record(NOW, [sample]);
  }
  store.createDeployment({
    strategy: 'rolling',
    canary: null,
    app: 'shop',
    kind: 'deploy',
    fromRelease: 0,
    toRelease: 1,
    services: [],
    startedAt: NOW,
  } as never);
  const plans = new Map<string, string[]>();
  db.explainEach((sql, plan) => plans.set(sql.replace(/\s+/g, ' ').trim(), plan));
  return { ...state, metrics, events, plans };
}

type Seeded = ReturnType<typeof seeded>;

/** Each hot query, who runs it, and the index its plan must use (a whole-table SCAN fails every row). */
const HOT: [who: string, run: (s: Seeded) => unknown, uses: RegExp][] = [
  [
    'reconciler, route sync, collector: live instances',
    (s) => s.store.listInstances({ live: true }),
    /instances_live/,
  ],
  [
    "berth ps: an app's live instances",
    (s) => s.store.listInstances({ app: 'shop', live: true }),
    /instances_live/,
  ],
  [
    "autoscaler, route sync: a service's live instances",
    (s) => s.store.listInstances({ app: 'shop', service: 'web', live: true }),
    /instances_live \(app=\? AND service=\?\)/,
  ],
  [
    "berth ps --all, logs: an app's newest instances",
    (s) => s.store.listInstances({ app: 'shop', limit: 200 }),
    /instances_newest \(app=\?\)/,
  ],
  [
    "metrics collector: a service's newest instances",
    (s) => s.store.listInstances({ app: 'shop', service: 'web', limit: 100 }),
    /instances_newest \(app=\? AND service=\?\)/,
  ],
  [
    'metrics collector: instances ended since',
    (s) => s.store.listEndedSince(NOW - 5000),
    /instances_ended \(ended_at>\?\)/,
  ],
  ['an instance by id', (s) => s.store.getInstance('shop-a'), /sqlite_autoindex_instances_1 \(id=\?\)/],
  [
    'deployment tracker: in progress',
    (s) => s.store.listDeployments({ state: 'in_progress' }),
    /deployments_by_state \(state=\?\)/,
  ],
  [
    'canary controller: running canaries',
    (s) => s.store.listDeployments({ state: 'canary' }),
    /deployments_by_state \(state=\?\)/,
  ],
  [
    "an app's deployment in progress",
    (s) => s.store.activeDeployment('shop'),
    /deployments_(by_state|by_app) \(/,
  ],
  [
    "berth releases: an app's deployments",
    (s) => s.store.listDeployments({ app: 'shop' }),
    /deployments_by_app \(app=\?\)/,
  ],
  [
    'history retention: ended before',
    (s) => s.store.pruneEndedInstances(NOW - 50_000, 1000),
    /instances_ended \(ended_at<\?\)/,
  ],
  ['berth events: the newest', (s) => s.events.list({}), /INTEGER PRIMARY KEY \(rowid>\?\)/],
  [
    'berth events APP',
    (s) => s.events.list({ app: 'shop', limit: 50 }),
    /events_by_app \(app=\? AND id>\?\)/,
  ],
  ['berth events -f: what follows', (s) => s.events.list({ after: 3 }), /INTEGER PRIMARY KEY \(rowid>\?\)/],
  [
    'berth metrics APP',
    (s) => s.metrics.query({ app: 'shop', from: NOW - 3_600_000, to: NOW }, NOW),
    /metric_points USING PRIMARY KEY \(resolution=\? AND app=\? AND at>\? AND at<\?\)/,
  ],
  [
    'metrics retention',
    (s) => s.metrics.enforceRetention(NOW),
    /metric_points_by_time \(resolution=\? AND at<\?\)/,
  ],
];

describe('query plans of the hot queries', () => {
  for (const [who, run, uses] of HOT) {
    it(`${who}: through an index, never a scan of the table`, () => {
      const s = seeded();
      run(s);
      assert.ok(s.plans.size > 0, 'the query ran no statement');
      for (const [sql, plan] of s.plans) {
        const scans = plan.filter((line) => /^SCAN (instances|events|metric_points|deployments)$/.test(line));
        assert.deepEqual(scans, [], `${sql}: ${plan.join('; ')}`);
      }
      const all = [...s.plans.values()].flat().join('\n');
      assert.match(all, uses, [...s.plans].map(([sql, plan]) => `${sql}: ${plan.join('; ')}`).join('\n'));
    });
  }
});
