// Deployments on fakes: success, the circuit breaker, automatic rollback, and how a failing release ends.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { type ControlWorld, controlWorld, shopSpec } from '../../../test/fakes/control-world.js';

let world: ControlWorld;

describe('DeploymentTracker', () => {
  afterEach(async () => {
    await world.stop();
  });

  it('ends a deployment succeeded once every new instance is healthy and nothing old is left', async () => {
    world = controlWorld();
    await world.apply(shopSpec({ instances: 2, env: 'one' }));
    await world.verdict('healthy');
    const result = await world.apply(shopSpec({ instances: 2, env: 'two' }));
    assert.deepEqual(result.changes, ['~ web: env RELEASE']);
    assert.equal(world.store.getDeployment(result.deployment!)?.state, 'in_progress');
    await world.verdict('healthy');
    const deployment = world.store.getDeployment(result.deployment!)!;
    assert.equal(deployment.state, 'succeeded');
    assert.deepEqual(
      world.live().map((i) => i.release),
      [2, 2],
    );
    const done = world.store
      .listEvents({ limit: 100 })
      .find((e) => e.kind === 'deployment.succeeded' && e.data.release === 2);
    assert.match(done?.message ?? '', /shop v2 is live: web 2\/2 healthy/);
  });

  it('trips the circuit breaker at 3 crashed new instances and rolls back; the old instances never stopped', async () => {
    world = controlWorld();
    world.host.programs['crashes'] = { exitAfterMs: 0, exit: { code: 3, signal: null } };
    await world.apply(shopSpec({ instances: 2, env: 'one' }));
    const old = await world.verdict('healthy');
    const result = await world.apply(shopSpec({ instances: 2, env: 'two', run: 'crashes' }));
    // Two crash at once; their replacements wait for the crash-loop backoff.
    await world.advance(1000);
    const deployment = world.store.getDeployment(result.deployment!)!;
    assert.equal(deployment.state, 'rolled_back');
    assert.match(
      deployment.reason ?? '',
      /web: 3 new instances failed, the circuit breaker trips at 3; last: .* exited with code 3/,
    );
    assert.equal(world.store.getApp('shop')?.currentRelease, 1, 'v1 is current again');
    assert.deepEqual(
      world
        .live()
        .map((i) => i.id)
        .sort(),
      old.map((i) => i.id).sort(),
      'the old instances served throughout',
    );
    assert.ok(world.live().every((i) => i.state === 'healthy'));
    const failed = world.store
      .listEvents({ limit: 100 })
      .filter((e) => e.kind === 'deployment.instance_failed');
    assert.deepEqual(
      failed.map((e) => e.data.failures),
      [1, 2, 3],
    );
  });

  it('rolls back a release that never passes its health check, naming the last result', async () => {
    world = controlWorld();
    await world.apply(shopSpec({ instances: 1, env: 'one' }));
    await world.verdict('healthy');
    const result = await world.apply(shopSpec({ instances: 1, env: 'two' }));
    // The proxy turns each new target unhealthy (past its grace); each failed start is replaced after backoff.
    for (let round = 0; round < 3; round++) {
      await world.verdict('unhealthy', (i) => i.state === 'starting' && i.release === 2);
      await world.advance(2000);
    }
    const deployment = world.store.getDeployment(result.deployment!)!;
    assert.equal(deployment.state, 'rolled_back');
    assert.match(deployment.reason ?? '', /never passed its health check \(last: status 500\)/);
    const failedStarts = world.store
      .listEvents({ limit: 100 })
      .filter((e) => e.kind === 'instance.failed_to_start');
    assert.equal(failedStarts.length, 3);
    for (const event of failedStarts) {
      assert.equal(world.store.getInstance(event.instance!)?.state, 'crashed', 'a failed start ends crashed');
    }
    assert.ok(world.live().every((i) => i.release === 1 && i.state === 'healthy'));
  });

  it('ends failed, keeping the new release desired, when autoRollback is off', async () => {
    world = controlWorld();
    world.host.programs['crashes'] = { exitAfterMs: 0, exit: { code: 1, signal: null } };
    await world.apply(shopSpec({ instances: 1, env: 'one' }));
    await world.verdict('healthy');
    const result = await world.apply(
      shopSpec({ instances: 1, env: 'two', run: 'crashes', extra: '    deploy: { autoRollback: false }' }),
    );
    await world.advance(1000);
    await world.advance(2000);
    const deployment = world.store.getDeployment(result.deployment!)!;
    assert.equal(deployment.state, 'failed');
    assert.equal(world.store.getApp('shop')?.currentRelease, 2);
    assert.match(
      world.store.listEvents({ limit: 100 }).find((e) => e.kind === 'deployment.failed')?.message ?? '',
      /v2 failed \(autoRollback is off\)/,
    );
  });

  it('counts an instance that turns unhealthy during the deployment toward the breaker', async () => {
    world = controlWorld();
    await world.apply(shopSpec({ instances: 1, env: 'one' }));
    await world.verdict('healthy');
    const result = await world.apply(shopSpec({ instances: 3, env: 'two' }));
    const fresh = world.live().filter((i) => i.release === 2);
    await world.verdict('healthy', (i) => i.id === fresh[0]!.id);
    world.health.set(fresh[0]!.id, 'unhealthy', 'status 503');
    await world.settle();
    const deployment = world.store.getDeployment(result.deployment!)!;
    assert.equal(deployment.services[0]?.failures, 1);
    assert.equal(deployment.state, 'in_progress');
  });
});
