// The control plane's core on fakes: a real store (in memory), AppManager, DeploymentTracker and Reconciler, with
// a manual clock, a fake runtime and the proxy's health verdicts set by the test. Scenarios run in milliseconds.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppManager } from '../../src/control/app-manager.js';
import { DeploymentTracker } from '../../src/control/deploy/deployment-tracker.js';
import { Reconciler, type TrafficControl } from '../../src/control/reconcile/reconciler.js';
import type { Store } from '../../src/control/store/store.js';
import type { ApplyResult } from '../../src/domain/api-types.js';
import type { Instance, InstanceState } from '../../src/domain/instance.js';
import { parseSpec } from '../../src/domain/spec.js';
import { silentLogger } from '../../src/lib/logger.js';
import { ManualClock, settle } from '../../src/lib/manual-clock.js';
import { FakeHost, FakeRuntime } from './fake-runtime.js';
import { FakeTargetHealth } from './fake-target-health.js';
import { openTestState } from './state.js';

/** A moment with round numbers, so event times read easily. */
export const T0 = 1_800_000_000_000;

/** A berth.yaml of app `shop` with one routed, health-checked service `web`. */
export function shopSpec(
  options: { instances?: number; run?: string; env?: string; extra?: string } = {},
): string {
  return [
    'app: shop',
    'routes:',
    '  - host: shop.localhost',
    '    service: web',
    'services:',
    '  web:',
    `    run: ${options.run ?? 'serves'}`,
    `    instances: ${options.instances ?? 2}`,
    '    health: { path: /health, interval: 1s, timeout: 500ms, healthy: 2, unhealthy: 3, grace: 5s }',
    `    env: { RELEASE: "${options.env ?? 'one'}" }`,
    options.extra ?? '',
  ].join('\n');
}

export interface ControlWorld {
  clock: ManualClock;
  store: Store;
  runtime: FakeRuntime;
  host: FakeHost;
  health: FakeTargetHealth;
  apps: AppManager;
  reconciler: Reconciler;
  /** Calls of the fake load balancer: `sync` and `drain <instance>`. */
  traffic: string[];
  /** Applies a spec (as `berth deploy` of `dir` would) and lets the reconciler act on it. */
  apply(yaml: string, dir?: string): Promise<ApplyResult>;
  /** Runs reconcile passes until nothing changes any more. */
  settle(): Promise<void>;
  /** Moves time forward, then settles. */
  advance(ms: number): Promise<void>;
  /** The proxy passes (or fails) the check of every instance in `state` (default: the starting ones). */
  verdict(health: 'healthy' | 'unhealthy', filter?: (instance: Instance) => boolean): Promise<Instance[]>;
  live(): Instance[];
  states(): Record<string, InstanceState>;
  eventKinds(): string[];
  /** A control plane restarted on the same machine and state: a new reconciler and runtime adopt what runs. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export function controlWorld(): ControlWorld {
  const clock = new ManualClock(T0);
  const { store } = openTestState({ clock });
  const host = new FakeHost();
  const health = new FakeTargetHealth();
  const traffic: string[] = [];
  const logDir = mkdtempSync(join(tmpdir(), 'berth-world-'));
  // Where releases "run from": it exists, as an artifact directory would (a rollback checks).
  const sourceDir = mkdtempSync(join(tmpdir(), 'berth-world-src-'));
  let port = 40_000;
  let reconciler: Reconciler;
  const apps = new AppManager(store, () => reconciler.kick(), { clock });
  const tracker = new DeploymentTracker(store, apps, clock);
  const fakeTraffic: TrafficControl = {
    sync: async () => void traffic.push('sync'),
    drain: async (instance) => void traffic.push(`drain ${instance.id}`),
  };
  const makeReconciler = (runtime: FakeRuntime): Reconciler =>
    new Reconciler({
      store,
      runtime,
      clock,
      log: silentLogger,
      logDir,
      health,
      deployments: tracker,
      traffic: fakeTraffic,
      baseEnv: {},
      allocatePort: async () => port++,
    });
  let runtime = new FakeRuntime({ host, clock });
  reconciler = makeReconciler(runtime);
  health.onChange = () => reconciler.kick();
  reconciler.start();

  const fingerprint = (): string =>
    JSON.stringify(store.listInstances().map((i) => [i.id, i.state])) +
    JSON.stringify(store.listDeployments().map((d) => d.state));
  const world: ControlWorld = {
    clock,
    store,
    get runtime() {
      return runtime;
    },
    host,
    health,
    apps,
    get reconciler() {
      return reconciler;
    },
    traffic,
    async apply(yaml, dir = sourceDir) {
      const result = apps.apply(parseSpec(yaml, { file: 'berth.yaml' }), dir, 'test');
      await world.settle();
      return result;
    },
    async settle() {
      for (let round = 0; round < 50; round++) {
        const before = fingerprint();
        await reconciler.settled();
        await settle();
        if (fingerprint() === before) return;
      }
      throw new Error('the reconciler did not settle within 50 passes');
    },
    async advance(ms) {
      await clock.advance(ms);
      await world.settle();
    },
    async verdict(verdict, filter = (i) => i.state === 'starting') {
      const chosen = store.listInstances({ live: true }).filter(filter);
      for (const instance of chosen) health.set(instance.id, verdict);
      await world.settle();
      return chosen;
    },
    live: () => store.listInstances({ live: true }),
    states: () => Object.fromEntries(store.listInstances().map((i) => [i.id, i.state])),
    eventKinds: () => store.listEvents({ limit: 10_000 }).map((e) => e.kind),
    async restart() {
      await reconciler.stop();
      runtime = new FakeRuntime({ host, clock });
      reconciler = makeReconciler(runtime);
      reconciler.start();
      await world.settle();
    },
    async stop() {
      await reconciler.stop();
    },
  };
  return world;
}
