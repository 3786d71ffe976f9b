import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openTestState } from '../../../test/fakes/state.js';
import type { NewEvent } from '../../domain/event.js';
import type { Instance, InstanceState } from '../../domain/instance.js';
import { parseSpec } from '../../domain/spec.js';
import { emptyDelta, MetricsStore } from '../metrics/metrics-store.js';
import type { ProcStat } from '../runtime/proc.js';
import type { ServiceRecord } from '../store/store.js';
import { MemoryLimiter } from './memory-limiter.js';
import { observe } from './observations.js';

const T0 = 1_700_000_000_000 - (1_700_000_000_000 % 10_000);
const MiB = 1_048_576;

function serviceRecord(yaml: string, desiredCount: number): ServiceRecord {
  const spec = parseSpec(`app: shop\nservices:\n  web:\n    run: node server.js\n${yaml}`, {
    file: 'berth.yaml',
  });
  return {
    app: 'shop',
    name: 'web',
    release: 1,
    desiredCount,
    configHash: 'h',
    spec: spec.services.web!,
    sourceDir: '/tmp',
    failures: 0,
    nextStartAt: 0,
  };
}

function instance(id: string, state: InstanceState, pid = 100): Instance {
  return {
    id,
    app: 'shop',
    service: 'web',
    release: 1,
    configHash: 'h',
    state,
    pid,
    processStart: 1,
    port: 3000,
    createdAt: T0,
    healthyAt: T0,
    endedAt: null,
    exitCode: null,
    exitSignal: null,
    reason: null,
    logPath: '',
    runtime: 'process',
  };
}

function metricsStore(): MetricsStore {
  return new MetricsStore(openTestState().db);
}

/** One collection: `requests` served by each instance since the last one, with CPU and memory. */
function collect(
  metrics: MetricsStore,
  at: number,
  rows: { instance: string; requests: number; cpu: number; memory: number }[],
): void {
  metrics.record(at, [
    ...rows.map((r) => ({
      app: 'shop',
      service: 'web',
      release: 1,
      instance: r.instance,
      delta: { ...emptyDelta(), requests: r.requests, s2xx: r.requests },
      gauges: {
        inFlight: 0,
        cpuPercent: r.cpu,
        memoryBytes: r.memory,
        memoryLimit: 256 * MiB,
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
      serviceHealth: { healthy: rows.length, unhealthy: 0 },
    },
  ]);
}

describe('autoscale observations from the metrics store', () => {
  const autoscale = '    autoscale: { min: 1, max: 4, requestsPerMinute: 600, cpu: 50, memory: 80 }\n';

  it('divides the service’s requests over the window by the healthy count, and averages CPU and memory % of the limit', () => {
    const metrics = metricsStore();
    const service = serviceRecord(`${autoscale}    resources: { memory: 256Mi }\n`, 2);
    // Steady 5 s collections: a and b serve 50 requests each per collection (1200 rpm together).
    for (let t = -30_000; t <= 60_000; t += 5000) {
      collect(metrics, T0 + t, [
        { instance: 'a', requests: 50, cpu: 40, memory: 128 * MiB },
        { instance: 'b', requests: 50, cpu: 60, memory: 64 * MiB },
      ]);
    }
    const seen = observe(
      metrics,
      service,
      [instance('a', 'healthy'), instance('b', 'healthy')],
      T0 + 60_000,
      { windowMs: 60_000, staleAfterMs: 30_000, collectIntervalMs: 5000 },
    );
    assert.equal(seen.running, 2);
    assert.equal(seen.desired, 2);
    assert.equal(seen.stale, undefined);
    assert.ok(
      Math.abs((seen.values.requestsPerMinute ?? 0) - 600) < 0.001,
      String(seen.values.requestsPerMinute),
    );
    assert.equal(seen.values.cpuPercent, 50);
    assert.equal(seen.values.memoryPercent, 37.5);
  });

  it('counts only healthy instances in the ratio, so one still starting does not dilute the load', () => {
    const metrics = metricsStore();
    const service = serviceRecord(autoscale, 2);
    for (let t = 5000; t <= 30_000; t += 5000) {
      collect(metrics, T0 + t, [{ instance: 'a', requests: 50, cpu: 80, memory: 10 * MiB }]);
    }
    const seen = observe(
      metrics,
      service,
      [instance('a', 'healthy'), instance('b', 'starting')],
      T0 + 30_000,
    );
    assert.equal(seen.running, 1);
    assert.ok((seen.values.requestsPerMinute ?? 0) > 500, String(seen.values.requestsPerMinute));
    assert.equal(seen.values.cpuPercent, 80);
  });

  it('reports stale data when the newest point is older than the limit, and no data before any point', () => {
    const metrics = metricsStore();
    const service = serviceRecord(autoscale, 1);
    assert.match(observe(metrics, service, [instance('a', 'healthy')], T0).stale ?? '', /no metrics/);
    collect(metrics, T0 + 1000, [{ instance: 'a', requests: 5, cpu: 1, memory: MiB }]);
    const seen = observe(metrics, service, [instance('a', 'healthy')], T0 + 50_000, {
      windowMs: 60_000,
      staleAfterMs: 30_000,
      collectIntervalMs: 5000,
    });
    assert.match(seen.stale ?? '', /50s old/);
    assert.deepEqual(seen.values, {});
  });
});

describe('memory limiter', () => {
  function limiter(rss: number[]) {
    const events: NewEvent[] = [];
    const killed: number[] = [];
    let round = 0;
    const service = serviceRecord('    instances: 1\n    resources: { memory: 100Mi }\n', 1);
    const memoryLimiter = new MemoryLimiter({
      store: { listServices: () => [service], listInstances: () => [instance('a', 'healthy', 500)] },
      events: {
        record: (event) => {
          events.push(event as NewEvent);
          return { id: 1, at: 0, ...event } as never;
        },
      },
      log: { warn() {} } as never,
      readProcs: (): ProcStat[] => {
        const value = rss[Math.min(round++, rss.length - 1)]!;
        return [
          // The shim leads the group; its own memory is not the app's.
          { pid: 500, pgrp: 500, state: 'S', cpuTicks: 0, startTicks: 1, rssBytes: 500 * MiB },
          { pid: 501, pgrp: 500, state: 'S', cpuTicks: 0, startTicks: 2, rssBytes: value },
          { pid: 900, pgrp: 900, state: 'S', cpuTicks: 0, startTicks: 3, rssBytes: 900 * MiB },
        ];
      },
      kill: (pid) => killed.push(pid),
    });
    return { memoryLimiter, events, killed };
  }

  it('kills the app processes (not the shim) after two samples in a row over the limit, and records why', () => {
    const { memoryLimiter, events, killed } = limiter([150 * MiB]);
    assert.deepEqual(memoryLimiter.checkNow(), []);
    assert.deepEqual(memoryLimiter.checkNow(), ['a']);
    assert.deepEqual(killed, [501]);
    assert.equal(events[0]?.kind, 'instance.memory_exceeded');
    assert.match(events[0]?.message ?? '', /uses 150\.0 MiB of its 100\.0 MiB memory limit/);
  });

  it('forgives a single peak', () => {
    const { memoryLimiter, killed } = limiter([150 * MiB, 50 * MiB, 150 * MiB, 50 * MiB]);
    for (let i = 0; i < 4; i++) memoryLimiter.checkNow();
    assert.deepEqual(killed, []);
  });
});
