// The reconciler on fakes (manual clock, fake runtime, the proxy's verdicts set by the test): starts, health,
// crash loops, OOM kills, adoption after a restart, unhealthy replacement, scale-in during a deploy.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { type ControlWorld, controlWorld, shopSpec, T0 } from '../../../test/fakes/control-world.js';

let world: ControlWorld;

describe('Reconciler', () => {
  afterEach(async () => {
    await world.stop();
  });

  it('starts the desired count, registers them, and makes each healthy only on the proxy’s word', async () => {
    world = controlWorld();
    await world.apply(shopSpec({ instances: 2 }));
    const live = world.live();
    assert.deepEqual(
      live.map((i) => i.state),
      ['starting', 'starting'],
    );
    assert.ok(world.traffic.includes('sync'));
    const [first] = await world.verdict('healthy', (i) => i.id === live[0]!.id);
    assert.equal(world.store.getInstance(first!.id)?.state, 'healthy');
    assert.equal(world.store.getInstance(live[1]!.id)?.state, 'starting');
    const event = world.store.listEvents().find((e) => e.kind === 'instance.healthy');
    assert.equal(event?.message, `${first!.id} starting → healthy (status 200)`);
  });

  it('makes an instance of a service without a health check healthy once it runs', async () => {
    world = controlWorld();
    await world.apply(['app: jobs', 'services:', '  worker:', '    run: serves'].join('\n'));
    assert.deepEqual(
      world.live().map((i) => [i.state, i.reason]),
      [['healthy', null]],
    );
  });

  it('replaces a crash at once, then backs off 1 s, 2 s, 4 s in a crash loop', async () => {
    world = controlWorld();
    world.host.programs['crashes'] = { exitAfterMs: 0, exit: { code: 3, signal: null } };
    await world.apply(['app: jobs', 'services:', '  worker:', '    run: crashes'].join('\n'));
    for (const wait of [0, 1000, 2000, 3999]) await world.advance(wait);
    assert.equal(world.runtime.started.length, 4, 'no start before its backoff ended');
    await world.advance(1);
    assert.equal(world.runtime.started.length, 5);
    const crashes = world.store.listEvents({ limit: 100 }).filter((e) => e.kind === 'instance.crashed');
    assert.deepEqual(
      crashes.slice(0, 4).map((e) => [e.at - T0, e.data.backoffMs]),
      [
        [0, 0],
        [0, 1000],
        [1000, 2000],
        [3000, 4000],
      ],
    );
    assert.match(crashes[1]!.message, /exited with code 3 after 0s; 2 failures in a row, next start in 1s/);
  });

  it('records an OOM kill as instance.memory_exceeded, then the crash, and replaces the instance', async () => {
    world = controlWorld();
    await world.apply(shopSpec({ instances: 1, extra: '    resources: { memory: 64Mi }' }));
    const [victim] = await world.verdict('healthy');
    world.runtime.oomKill(victim!.id, 64 * 1024 * 1024);
    await world.settle();
    const kinds = world.store
      .listEvents({ limit: 100 })
      .filter((e) => e.instance === victim!.id)
      .map((e) => e.kind);
    assert.deepEqual(kinds.slice(-2), ['instance.memory_exceeded', 'instance.crashed']);
    assert.equal(world.store.getInstance(victim!.id)?.exitSignal, 'SIGKILL');
    assert.equal(world.live().length, 1);
    assert.notEqual(world.live()[0]!.id, victim!.id);
  });

  it('after a restart adopts what runs, and ends what stopped meanwhile through the same exit path', async () => {
    world = controlWorld();
    await world.apply(shopSpec({ instances: 3 }));
    const before = await world.verdict('healthy');
    await world.reconciler.stop();
    // While no control plane watches: one instance exits with code 3.
    world.host.end(before[0]!.id, { code: 3, signal: null });
    await world.restart();
    const events = world.store.listEvents({ limit: 100 });
    assert.equal(events.filter((e) => e.kind === 'instance.adopted').length, 2);
    const crash = events.find((e) => e.kind === 'instance.crashed' && e.instance === before[0]!.id);
    assert.match(crash?.message ?? '', /exited with code 3 while the control plane was down/);
    assert.equal(world.live().length, 3, 'replaced');
    assert.equal(world.runtime.started.length, 1, 'the two that run are not started again');
    // An adopted instance's later exit still comes through the new runtime's exit stream.
    world.runtime.crash(before[1]!.id, { code: null, signal: 'SIGKILL' });
    await world.settle();
    assert.equal(world.store.getInstance(before[1]!.id)?.state, 'crashed');
  });

  it('replaces an unhealthy instance, stopping it only once its replacement is healthy', async () => {
    world = controlWorld();
    await world.apply(shopSpec({ instances: 1 }));
    const [patient] = await world.verdict('healthy');
    world.health.set(patient!.id, 'unhealthy', 'status 500');
    await world.settle();
    assert.equal(world.store.getInstance(patient!.id)?.state, 'unhealthy', 'kept while nothing replaces it');
    const [replacement] = world.live().filter((i) => i.state === 'starting');
    assert.ok(replacement);
    await world.verdict('healthy');
    assert.equal(world.store.getInstance(patient!.id)?.state, 'stopped');
    assert.equal(world.store.getInstance(patient!.id)?.reason, 'unhealthy_replaced');
    assert.deepEqual(
      world.live().map((i) => i.id),
      [replacement!.id],
    );
  });

  it('scales in during a deploy: starting instances go first, and the old release keeps the floor', async () => {
    world = controlWorld();
    await world.apply(shopSpec({ instances: 3, env: 'one' }));
    const old = await world.verdict('healthy');
    const deploy = await world.apply(shopSpec({ instances: 3, env: 'two' }));
    assert.equal(
      world.live().filter((i) => i.state === 'starting').length,
      3,
      'a full new set (maxSurge 100 %)',
    );
    world.apps.scale('shop', { web: 1 }, 'test');
    await world.settle();
    const live = world.live();
    assert.equal(live.filter((i) => i.state === 'starting').length, 1, 'two starting ones shed');
    assert.deepEqual(
      live.filter((i) => old.some((o) => o.id === i.id)).map((i) => i.state),
      ['healthy'],
      'one old instance keeps serving until a new one is healthy',
    );
    await world.verdict('healthy');
    assert.deepEqual(
      world.live().map((i) => [i.state, i.release]),
      [['healthy', 2]],
    );
    assert.equal(world.store.getDeployment(deploy.deployment!)?.state, 'succeeded');
    const stops = world.store.listEvents({ limit: 100 }).filter((e) => e.kind === 'instance.stopping');
    assert.deepEqual(stops.map((e) => e.data.reason).sort(), [
      'outdated',
      'outdated',
      'outdated',
      'scale_in',
      'scale_in',
    ]);
  });
});
