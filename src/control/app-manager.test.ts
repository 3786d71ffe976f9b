// AppManager on an in-memory store: releases, deployments, conflicts, rollbacks, scale and down.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { type ControlWorld, controlWorld, shopSpec } from '../../test/fakes/control-world.js';

let world: ControlWorld;

afterEach(async () => {
  await world.stop();
});

describe('AppManager', () => {
  it('makes a release and a deployment in one transaction, and nothing for an unchanged spec', async () => {
    world = controlWorld();
    const first = await world.apply(shopSpec());
    assert.deepEqual([first.release, first.created, first.changes], [1, true, ['+ web: 2 × `serves`']]);
    assert.notEqual(first.deployment, null);
    await world.verdict('healthy');
    const again = await world.apply(shopSpec());
    assert.deepEqual([again.release, again.created, again.deployment], [1, false, null]);
    const scaled = await world.apply(shopSpec({ instances: 3 }));
    assert.deepEqual(scaled.changes, ['~ web: instances 2 → 3']);
    assert.equal(scaled.deployment, null, 'a count change replaces no process');
  });

  it('refuses a second deploy while one is in progress, whole', async () => {
    world = controlWorld();
    await world.apply(shopSpec({ env: 'one' }));
    await world.verdict('healthy');
    await world.apply(shopSpec({ env: 'two' }));
    assert.throws(
      () =>
        world.apps.apply(
          // parse inline to call the manager directly
          JSON.parse(JSON.stringify(world.store.getRelease('shop', 2)!.spec)),
          '/srv/other',
          'test',
        ),
      { code: 'conflict', message: /shop is being deployed \(v2, deployment 2\)/ },
    );
    assert.equal(world.store.listReleases('shop').length, 2, 'no release made');
  });

  it('deploys an earlier release again as a new release (a rollback), through the same path', async () => {
    world = controlWorld();
    await world.apply(shopSpec({ env: 'one' }));
    await world.verdict('healthy');
    await world.apply(shopSpec({ env: 'two' }));
    await world.verdict('healthy');
    const target = world.apps.rollbackTarget('shop');
    assert.equal(target.version, 1);
    const result = world.apps.apply(target.spec, target.sourceDir, 'test', {
      kind: 'rollback',
      description: 'rollback to v1',
    });
    await world.settle();
    assert.deepEqual([result.release, result.description], [3, 'rollback to v1']);
    assert.equal(world.store.getDeployment(result.deployment!)?.kind, 'rollback');
    await world.verdict('healthy');
    assert.equal(world.store.getDeployment(result.deployment!)?.state, 'succeeded');
  });

  it('scales and takes an app down; an unknown service changes nothing', async () => {
    world = controlWorld();
    await world.apply(shopSpec({ instances: 1 }));
    await world.verdict('healthy');
    assert.throws(() => world.apps.scale('shop', { web: 2, cron: 1 }, 'test'), {
      code: 'not_found',
      message: 'shop has no service cron',
    });
    assert.equal(world.store.getService('shop', 'web')?.desiredCount, 1);
    world.apps.scale('shop', { web: 3 }, 'test');
    await world.settle();
    assert.equal(world.live().length, 3);
    world.apps.down('shop', 'test');
    await world.settle();
    assert.equal(world.live().length, 0);
    assert.deepEqual(
      world.store
        .listEvents({ limit: 100 })
        .filter((e) => e.kind === 'service.scaled')
        .map((e) => e.message),
      ['shop/web scaled 1 → 3', 'shop/web scaled 3 → 0'],
    );
  });
});
