// The store's transitions: a legal one writes state and event together; an illegal one writes nothing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openTestState, seedInstance } from '../../../test/fakes/state.js';
import { IllegalTransition } from '../../domain/state-machine.js';
import { ManualClock } from '../../lib/manual-clock.js';

function newInstance(id: string) {
  return {
    id,
    app: 'shop',
    service: 'web',
    release: 1,
    configHash: 'h',
    pid: null,
    processStart: null,
    port: 3000,
    createdAt: 0,
    healthyAt: null,
    endedAt: null,
    exitCode: null,
    exitSignal: null,
    reason: null,
    logPath: '',
    runtime: 'process' as const,
  };
}

describe('Store transitions', () => {
  it('moves an instance and writes its event in one transaction, the event built from the state before', () => {
    const clock = new ManualClock(5000);
    const { store, events } = openTestState({ clock });
    store.insertInstance(newInstance('a'));
    const after = store.transitionInstance('a', 'healthy', null, {
      facts: { healthyAt: clock.now() },
      event: (before) => ({
        actor: 'health',
        kind: 'instance.healthy',
        message: `a ${before.state} → healthy`,
      }),
    });
    assert.equal(after.state, 'healthy');
    assert.equal(store.getInstance('a')?.healthyAt, 5000);
    assert.deepEqual(
      events.list().map((e) => [e.kind, e.message, e.at]),
      [['instance.healthy', 'a starting → healthy', 5000]],
    );
  });

  it('refuses an illegal jump and writes neither the state nor the event', () => {
    const { store, events } = openTestState();
    store.insertInstance(newInstance('a'));
    assert.throws(
      () =>
        store.transitionInstance('a', 'stopped', 'scale_in', {
          event: () => ({ actor: 'x', kind: 'instance.stopped', message: 'no' }),
        }),
      (error: unknown) => error instanceof IllegalTransition && /starting to stopped/.test(error.message),
    );
    assert.equal(store.getInstance('a')?.state, 'starting');
    assert.deepEqual(events.list(), []);
  });

  it('leaves the state unchanged when the event cannot be written', () => {
    const { store } = openTestState();
    store.insertInstance(newInstance('a'));
    assert.throws(() =>
      store.transitionInstance('a', 'crashed', 'exited', {
        event: () => {
          throw new Error('no event');
        },
      }),
    );
    assert.equal(store.getInstance('a')?.state, 'starting');
  });

  it('ends a deployment once: a second end is refused, and followers are woken after the commit', async () => {
    const clock = new ManualClock(1000);
    const { store, events } = openTestState({ clock });
    store.createRelease({ app: 'shop', services: {}, routes: [] } as never, '/tmp', 'v1');
    const deployment = store.createDeployment({
      app: 'shop',
      kind: 'deploy',
      fromRelease: null,
      toRelease: 1,
      services: [{ name: 'web', threshold: 3, failures: 0 }],
      startedAt: 1000,
      strategy: 'rolling',
      canary: null,
    });
    const woken = store.deploymentsChanged.wait();
    await clock.advanceTo(4000);
    const ended = store.transitionDeployment(deployment.id, 'succeeded', null, () => ({
      actor: 'deployer',
      kind: 'deployment.succeeded',
      message: 'live',
    }));
    assert.equal(await woken, true);
    assert.deepEqual([ended.state, ended.endedAt], ['succeeded', 4000]);
    assert.throws(
      () =>
        store.transitionDeployment(deployment.id, 'rolled_back', 'late', () => ({
          actor: 'deployer',
          kind: 'deployment.rolled_back',
          message: 'no',
        })),
      /deployment \d+ cannot go from succeeded to rolled_back \(succeeded is final\)/,
    );
    assert.deepEqual(
      events.list().map((e) => e.kind),
      ['deployment.succeeded'],
    );
  });
});

describe('Store history', () => {
  it('prunes ended instances by age and beyond a count per service, never a live one, and keeps their events', () => {
    const { store, events } = openTestState();
    const ended = (id: string, service: string, endedAt: number) =>
      seedInstance(store, {
        ...newInstance(id),
        service,
        createdAt: endedAt - 10,
        endedAt,
        exitCode: 0,
        state: 'stopped',
        reason: 'scale_in',
      });
    ended('old', 'web', 100);
    for (let i = 1; i <= 4; i++) ended(`web-${i}`, 'web', 1000 + i);
    ended('worker-1', 'worker', 1001);
    seedInstance(store, { ...newInstance('live'), createdAt: 50, state: 'healthy' });
    const before = events.list({ limit: 1000 }).length;

    // Older than 500: `old`; beyond the newest 2 ended per service: web-1 and web-2.
    assert.equal(store.pruneEndedInstances(500, 2), 3);
    assert.deepEqual(
      store.listInstances({}).map((i) => i.id),
      ['web-4', 'web-3', 'live', 'worker-1'],
    );
    const kept = events.list({ limit: 1000 });
    assert.equal(kept.length, before);
    assert.ok(kept.some((e) => e.message === 'web-1 seeded stopped'));
    assert.equal(store.pruneEndedInstances(500, 2), 0);
  });
});
