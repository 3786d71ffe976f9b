import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Instance, InstanceState } from '../../domain/instance.js';
import { type DesiredService, type Plan, planChanges } from './plan.js';

function service(overrides: Partial<DesiredService> = {}): DesiredService {
  return {
    app: 'shop',
    name: 'web',
    desiredCount: 3,
    configHash: 'h2',
    nextStartAt: 0,
    maxSurgePercent: 100,
    minHealthyPercent: 100,
    ...overrides,
  };
}

function instance(id: string, state: InstanceState, overrides: Partial<Instance> = {}): Instance {
  return {
    id,
    app: 'shop',
    service: 'web',
    release: 1,
    configHash: 'h2',
    state,
    pid: 100,
    processStart: 1,
    port: 3000,
    createdAt: Number(id.replace(/\D/g, '')),
    healthyAt: null,
    endedAt: null,
    exitCode: null,
    exitSignal: null,
    reason: null,
    logPath: '/dev/null',
    runtime: 'process',
    ...overrides,
  };
}

/** The plan reduced to what a reader checks: how many start, and which stop for what reason. */
function summary(plan: Plan): { start: number; stop: string[]; wakeAt: number | null } {
  return {
    start: plan.start.reduce((sum, action) => sum + action.count, 0),
    stop: plan.stop.map((action) => `${action.instanceId}:${action.reason}`),
    wakeAt: plan.wakeAt,
  };
}

const cases: {
  name: string;
  services: DesiredService[];
  instances: Instance[];
  now?: number;
  expected: ReturnType<typeof summary>;
}[] = [
  {
    name: 'starts every instance of a new service',
    services: [service()],
    instances: [],
    expected: { start: 3, stop: [], wakeAt: null },
  },
  {
    name: 'does nothing when the desired count is healthy',
    services: [service()],
    instances: [instance('i1', 'healthy'), instance('i2', 'healthy'), instance('i3', 'healthy')],
    expected: { start: 0, stop: [], wakeAt: null },
  },
  {
    name: 'counts starting instances toward the desired count',
    services: [service()],
    instances: [instance('i1', 'healthy'), instance('i2', 'starting')],
    expected: { start: 1, stop: [], wakeAt: null },
  },
  {
    name: 'holds a start back while the crash-loop backoff runs and says when to wake',
    services: [service({ nextStartAt: 5000 })],
    instances: [instance('i1', 'healthy')],
    now: 1000,
    expected: { start: 0, stop: [], wakeAt: 5000 },
  },
  {
    name: 'starts once the backoff has passed',
    services: [service({ nextStartAt: 5000 })],
    instances: [instance('i1', 'healthy')],
    now: 5000,
    expected: { start: 2, stop: [], wakeAt: null },
  },
  {
    name: 'scales in by stopping starting instances first, then the newest healthy ones',
    services: [service({ desiredCount: 1 })],
    instances: [instance('i1', 'healthy'), instance('i2', 'healthy'), instance('i3', 'starting')],
    expected: { start: 0, stop: ['i3:scale_in', 'i2:scale_in'], wakeAt: null },
  },
  {
    name: 'starts a replacement for an unhealthy instance but keeps it until the replacement is healthy',
    services: [service()],
    instances: [instance('i1', 'healthy'), instance('i2', 'healthy'), instance('i3', 'unhealthy')],
    expected: { start: 1, stop: [], wakeAt: null },
  },
  {
    name: 'stops the unhealthy instance once its replacement is healthy',
    services: [service()],
    instances: [
      instance('i1', 'healthy'),
      instance('i2', 'healthy'),
      instance('i3', 'unhealthy'),
      instance('i4', 'healthy'),
    ],
    expected: { start: 0, stop: ['i3:unhealthy_replaced'], wakeAt: null },
  },
  {
    name: 'starts the new config beside the old and stops nothing healthy yet',
    services: [service({ desiredCount: 2 })],
    instances: [
      instance('i1', 'healthy', { configHash: 'h1' }),
      instance('i2', 'healthy', { configHash: 'h1' }),
    ],
    expected: { start: 2, stop: [], wakeAt: null },
  },
  {
    name: 'retires old instances, oldest first, as new ones become healthy',
    services: [service({ desiredCount: 2 })],
    instances: [
      instance('i1', 'healthy', { configHash: 'h1' }),
      instance('i2', 'healthy', { configHash: 'h1' }),
      instance('i3', 'healthy'),
      instance('i4', 'starting'),
    ],
    expected: { start: 0, stop: ['i1:outdated'], wakeAt: null },
  },
  {
    name: 'stops outdated instances that serve nothing at once',
    services: [service({ desiredCount: 1 })],
    instances: [
      instance('i1', 'unhealthy', { configHash: 'h1' }),
      instance('i2', 'starting', { configHash: 'h1' }),
    ],
    expected: { start: 1, stop: ['i1:outdated', 'i2:outdated'], wakeAt: null },
  },
  {
    name: 'starts no more new instances than maxSurge allows above the desired count',
    services: [service({ desiredCount: 4, maxSurgePercent: 50 })],
    instances: [1, 2, 3, 4].map((n) => instance(`i${n}`, 'healthy', { configHash: 'h1' })),
    expected: { start: 2, stop: [], wakeAt: null },
  },
  {
    name: 'with minHealthy below 100 % retires old instances before new ones are healthy, to make room',
    services: [service({ desiredCount: 2, maxSurgePercent: 0, minHealthyPercent: 50 })],
    instances: [
      instance('i1', 'healthy', { configHash: 'h1' }),
      instance('i2', 'healthy', { configHash: 'h1' }),
    ],
    expected: { start: 1, stop: ['i1:outdated'], wakeAt: null },
  },
  {
    name: 'keeps every old instance while no new one is healthy at minHealthy 100 %',
    services: [service({ desiredCount: 2 })],
    instances: [
      instance('i1', 'healthy', { configHash: 'h1' }),
      instance('i2', 'healthy', { configHash: 'h1' }),
      instance('i3', 'starting'),
      instance('i4', 'starting'),
    ],
    expected: { start: 0, stop: [], wakeAt: null },
  },
  {
    name: 'stops everything of a service scaled to zero',
    services: [service({ desiredCount: 0 })],
    instances: [instance('i1', 'healthy'), instance('i2', 'healthy', { configHash: 'h1' })],
    expected: { start: 0, stop: ['i1:scale_in', 'i2:outdated'], wakeAt: null },
  },
  {
    name: 'stops the instances of a service that no longer exists',
    services: [],
    instances: [instance('i1', 'healthy'), instance('i2', 'starting')],
    expected: { start: 0, stop: ['i1:service_removed', 'i2:service_removed'], wakeAt: null },
  },
  {
    name: 'leaves draining instances to the stop already under way',
    services: [service({ desiredCount: 1 })],
    instances: [instance('i1', 'healthy'), instance('i2', 'draining')],
    expected: { start: 0, stop: [], wakeAt: null },
  },
];

describe('planChanges', () => {
  for (const testCase of cases) {
    it(testCase.name, () => {
      assert.deepEqual(
        summary(planChanges(testCase.services, testCase.instances, testCase.now ?? 0)),
        testCase.expected,
      );
    });
  }

  it('plans each service of several apps on its own', () => {
    const plan = planChanges(
      [service({ desiredCount: 1 }), service({ app: 'blog', desiredCount: 2 })],
      [instance('i1', 'healthy'), instance('i2', 'healthy', { app: 'blog' })],
      0,
    );
    assert.deepEqual(plan.start, [{ app: 'blog', service: 'web', count: 1 }]);
    assert.deepEqual(plan.stop, []);
  });
});

describe('planChanges during a canary (keepOutdated)', () => {
  it("starts the new release's full count beside the old one, whatever maxSurge says, and retires nothing healthy", () => {
    const old = [1, 2].map((n) => instance(`o${n}`, 'healthy', { configHash: 'h1' }));
    const plan = planChanges(
      [service({ desiredCount: 2, maxSurgePercent: 0, minHealthyPercent: 50, keepOutdated: true })],
      old,
      0,
    );
    assert.deepEqual(plan.start, [{ app: 'shop', service: 'web', count: 2 }]);
    assert.deepEqual(plan.stop, []);
  });

  it('keeps the old instances once the new ones are healthy, and retires them when the canary is promoted', () => {
    const live = [
      ...[1, 2].map((n) => instance(`o${n}`, 'healthy', { configHash: 'h1' })),
      ...[3, 4].map((n) => instance(`n${n}`, 'healthy')),
    ];
    const during = planChanges([service({ desiredCount: 2, keepOutdated: true })], live, 0);
    assert.deepEqual(during, { start: [], stop: [], wakeAt: null });
    const promoted = planChanges([service({ desiredCount: 2 })], live, 0);
    assert.deepEqual(promoted.stop.map((s) => s.instanceId).sort(), ['o1', 'o2']);
  });
});
