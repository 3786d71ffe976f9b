import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openTestState } from '../../../test/fakes/state.js';
import type { Deployment } from '../../domain/deployment.js';
import type { NewEvent } from '../../domain/event.js';
import type { Instance } from '../../domain/instance.js';
import { parseSpec } from '../../domain/spec.js';
import { silentLogger } from '../../lib/logger.js';
import { emptyDelta, MetricsStore } from '../metrics/metrics-store.js';
import type { ServiceRecord } from '../store/store.js';
import { Autoscaler } from './autoscaler.js';

const T0 = 1_700_000_000_000 - (1_700_000_000_000 % 10_000);

/** A store of one autoscaled service whose instances and deployment the test sets; metrics in a real SQLite. */
function world(yaml: string) {
  const { db } = openTestState();
  const metrics = new MetricsStore(db);
  const spec = parseSpec(`app: shop\nservices:\n  web:\n    run: node server.js\n${yaml}`, {
    file: 'berth.yaml',
  });
  const service: ServiceRecord = {
    app: 'shop',
    name: 'web',
    release: 1,
    desiredCount: 1,
    configHash: 'h',
    spec: spec.services.web!,
    sourceDir: '/tmp',
    failures: 0,
    nextStartAt: 0,
  };
  let healthy = 1;
  let deployment: Deployment | undefined;
  let now = T0;
  const events: NewEvent[] = [];
  const scaled: number[] = [];
  const live = (): Instance[] =>
    Array.from({ length: healthy }, (_, i) => ({
      id: `i${i}`,
      app: 'shop',
      service: 'web',
      release: 1,
      configHash: 'h',
      state: 'healthy' as const,
      pid: 100 + i,
      processStart: 1,
      port: 3000 + i,
      createdAt: T0,
      healthyAt: T0,
      endedAt: null,
      exitCode: null,
      exitSignal: null,
      reason: null,
      logPath: '',
      runtime: 'process',
    }));
  const autoscaler = new Autoscaler({
    store: {
      listServices: () => [service],
      listInstances: () => live(),
      activeDeployment: () => deployment,
    },
    metrics,
    scaler: {
      scale: (_app, counts) => {
        service.desiredCount = counts.web!;
        scaled.push(counts.web!);
      },
    },
    events: {
      record: (event) => {
        events.push(event as NewEvent);
        return { id: events.length, at: now, ...event } as never;
      },
      list: () => [],
    },
    alarmStates: () => new Map(),
    clock: { now: () => now, sleep: async () => {} },
    log: silentLogger,
    window: { windowMs: 20_000, collectIntervalMs: 5000 },
  });
  /** `rpm` requests per minute in total, spread over the healthy instances, for `seconds` (collections every 5 s). */
  const load = (rpm: number, seconds: number): void => {
    for (let t = 0; t < seconds; t += 5) {
      now += 5000;
      const perInstance = rpm / 12 / healthy;
      metrics.record(now, [
        ...live().map((i) => ({
          app: 'shop',
          service: 'web',
          release: 1,
          instance: i.id,
          delta: { ...emptyDelta(), requests: perInstance, s2xx: perInstance },
          gauges: {
            inFlight: 0,
            cpuPercent: 5,
            memoryBytes: 1,
            memoryLimit: null,
            healthy: true,
            unhealthy: false,
          },
        })),
        {
          app: 'shop',
          service: 'web',
          release: 1,
          instance: '',
          delta: emptyDelta(),
          serviceHealth: { healthy, unhealthy: 0 },
        },
      ]);
      autoscaler.evaluateNow();
      // The reconciler's part: the new count becomes healthy by the next collection.
      healthy = service.desiredCount;
    }
  };
  return {
    autoscaler,
    load,
    events,
    scaled,
    service,
    setDeploying: (on: boolean) => {
      deployment = on ? ({ id: 1 } as Deployment) : undefined;
    },
  };
}

describe('Autoscaler loop', () => {
  it('scales out under load and in after the cooldown through the scaler, each change an event with its numbers', () => {
    const w = world(
      '    autoscale: { min: 1, max: 4, requestsPerMinute: 600, scaleOutCooldown: 5s, scaleInCooldown: 30s }\n',
    );
    w.load(1800, 30);
    assert.equal(w.service.desiredCount, 3);
    w.load(0, 60);
    assert.equal(w.service.desiredCount, 1);
    assert.deepEqual(
      w.events.map((e) => e.kind),
      w.scaled.map((to, i) => (to > (w.scaled[i - 1] ?? 1) ? 'autoscale.scaled_out' : 'autoscale.scaled_in')),
    );
    const first = w.events[0]!;
    assert.equal(first.actor, 'autoscaler');
    const data = first.data as {
      from: number;
      to: number;
      metrics: { metric: string; observed: number; target: number; implied: number }[];
    };
    assert.equal(data.from, 1);
    assert.equal(data.metrics[0]?.metric, 'requestsPerMinute');
    assert.equal(data.metrics[0]?.target, 600);
    assert.equal(data.metrics[0]?.implied, data.to);
  });

  it('does not scale in while a deployment is in progress, and explains it in status', () => {
    const w = world(
      '    autoscale: { min: 1, max: 4, requestsPerMinute: 600, scaleOutCooldown: 5s, scaleInCooldown: 10s }\n',
    );
    w.load(1800, 20);
    const peak = w.service.desiredCount;
    w.setDeploying(true);
    w.load(0, 40);
    assert.equal(w.service.desiredCount, peak);
    const [status] = w.autoscaler.status('shop');
    assert.match(status!.decision.reason, /no scale-in during a deployment/);
    w.setDeploying(false);
    w.load(0, 5);
    assert.equal(w.service.desiredCount, 1);
  });

  it('leaves a service scaled to 0 by hand alone', () => {
    const w = world('    autoscale: { min: 1, max: 4, requestsPerMinute: 600 }\n');
    w.service.desiredCount = 0;
    w.load(0, 10);
    assert.deepEqual(w.scaled, []);
    assert.match(w.autoscaler.status('shop')[0]!.paused ?? '', /scaled to 0 by hand/);
  });

  it('keeps its cooldowns across a restart: the last changes are read back from the events', () => {
    const { db, events } = openTestState();
    events.record({
      at: T0,
      actor: 'autoscaler',
      kind: 'autoscale.scaled_out',
      app: 'shop',
      service: 'web',
      message: 'm',
      data: { from: 1, to: 3, reason: 'requestsPerMinute asks for 3' },
    });
    const spec = parseSpec('app: shop\nservices:\n  web:\n    run: x\n    autoscale: { max: 4, cpu: 50 }\n', {
      file: 'berth.yaml',
    });
    const autoscaler = new Autoscaler({
      store: {
        listServices: () => [
          {
            app: 'shop',
            name: 'web',
            release: 1,
            desiredCount: 3,
            configHash: 'h',
            spec: spec.services.web!,
            sourceDir: '/tmp',
            failures: 0,
            nextStartAt: 0,
          },
        ],
        listInstances: () => [],
        activeDeployment: () => undefined,
      },
      metrics: new MetricsStore(db),
      scaler: { scale: () => undefined },
      events,
      alarmStates: () => new Map(),
      clock: { now: () => T0 + 1000, sleep: async () => {} },
      log: silentLogger,
    });
    assert.deepEqual(autoscaler.status('shop')[0]?.lastScaleOut, {
      at: T0,
      from: 1,
      to: 3,
      reason: 'requestsPerMinute asks for 3',
    });
  });
});
