// AppManager: releases and deployments on fakes (in-memory store, fake runtime, manual clock), and its choices:
// which release a rollback takes, and which count a new release keeps.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { type ControlWorld, controlWorld, shopSpec } from '../../test/fakes/control-world.js';
import { openTestState } from '../../test/fakes/state.js';
import type { DeploymentState } from '../domain/deployment.js';
import { parseSpec } from '../domain/spec.js';
import { AppManager } from './app-manager.js';
import type { Store } from './store/store.js';

let world: ControlWorld;

describe('AppManager', () => {
  afterEach(async () => {
    await world.stop();
  });

  it('restarts a service rolling: new instances of the same release, the old ones stopped only after', async () => {
    world = controlWorld();
    await world.apply(shopSpec());
    await world.verdict('healthy');
    const before = world.live().map((i) => i.id);
    assert.throws(() => world.apps.restart('shop', 'cron', 'test'), { code: 'not_found' });
    const status = world.apps.restart('shop', 'web', 'test');
    assert.equal(status.outdated, 2);
    await world.settle();
    const started = world.live().filter((i) => !before.includes(i.id));
    assert.ok(started.length > 0, 'replacements start first');
    assert.equal(
      world.live().filter((i) => before.includes(i.id) && i.state === 'healthy').length,
      2,
      'no old instance stops before a replacement is healthy',
    );
    for (let round = 0; round < 5 && world.live().some((i) => before.includes(i.id)); round++) {
      await world.verdict('healthy', (i) => !before.includes(i.id));
      await world.settle();
    }
    const after = world.live();
    assert.equal(after.length, 2);
    assert.ok(after.every((i) => !before.includes(i.id) && i.release === 1 && i.state === 'healthy'));
    assert.equal(world.store.listReleases('shop').length, 1, 'a restart makes no release');
    assert.ok(world.eventKinds().includes('service.restarting'));
  });

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

function setup(): { store: Store; apps: AppManager; source: string } {
  const dir = mkdtempSync(join(tmpdir(), 'berth-apps-'));
  const { store } = openTestState();
  return { store, apps: new AppManager(store, () => {}), source: dir };
}

/** Ends a deployment as `state`, as the deployment tracker would. */
function end(store: Store, id: number, state: Exclude<DeploymentState, 'in_progress'>): void {
  store.transitionDeployment(id, state, null, () => ({
    actor: 'test',
    kind: `deployment.${state}`,
    message: state,
  }));
}

function spec(run: string, instances = 2, extra = '') {
  return parseSpec(`app: shop\nservices:\n  web:\n    run: ${run}\n    instances: ${instances}\n${extra}`, {
    file: 'berth.yaml',
  });
}

/** Applies a release and ends its deployment as `state`. */
function release(
  ctx: ReturnType<typeof setup>,
  run: string,
  state: 'succeeded' | 'rolled_back' | 'failed',
  instances = 2,
) {
  const result = ctx.apps.apply(spec(run, instances), ctx.source, 'test');
  if (result.deployment !== null) end(ctx.store, result.deployment, state);
  if (state === 'rolled_back') ctx.store.setCurrentRelease('shop', result.release - 1);
  return result;
}

describe('AppManager.rollbackTarget', () => {
  it('takes the newest release before the current one that went live, skipping failed and rolled-back ones', () => {
    const ctx = setup();
    release(ctx, 'node v1.js', 'succeeded'); // v1
    release(ctx, 'node v2.js', 'succeeded'); // v2
    release(ctx, 'node v3.js', 'rolled_back'); // v3, current back to v2
    assert.equal(ctx.apps.rollbackTarget('shop').version, 1);
    // `berth rollback shop` → v4 (= v1), live; a second rollback must not pick v3, which was rolled back.
    const rollback = ctx.apps.apply(ctx.apps.rollbackTarget('shop').spec, ctx.source, 'test', {
      kind: 'rollback',
    });
    end(ctx.store, rollback.deployment!, 'succeeded');
    assert.equal(rollback.release, 4);
    assert.equal(ctx.apps.rollbackTarget('shop').version, 2);
    assert.equal(ctx.apps.rollbackTarget('shop', 3).version, 3, 'a named release is taken as asked');
  });

  it('says so when no earlier release went live', () => {
    const ctx = setup();
    release(ctx, 'node v1.js', 'failed');
    release(ctx, 'node v2.js', 'succeeded');
    assert.throws(() => ctx.apps.rollbackTarget('shop'), /no release before v2 that went live/);
  });
});

describe('AppManager counts across releases', () => {
  it('keeps a count set by berth scale when the spec keeps its instances, and says so in the diff', () => {
    const ctx = setup();
    release(ctx, 'node v1.js', 'succeeded', 2);
    ctx.apps.scale('shop', { web: 5 }, 'test');
    const next = ctx.apps.apply(spec('node v2.js', 2), ctx.source, 'test');
    assert.equal(ctx.store.getService('shop', 'web')!.desiredCount, 5);
    assert.ok(
      next.changes.includes(
        '= web: keeps 5 instances (set by berth scale; berth.yaml says 2, change it there to reset)',
      ),
      next.changes.join('\n'),
    );
  });

  it("takes the spec's count when its instances changed", () => {
    const ctx = setup();
    release(ctx, 'node v1.js', 'succeeded', 2);
    ctx.apps.scale('shop', { web: 5 }, 'test');
    const next = ctx.apps.apply(spec('node v1.js', 3), ctx.source, 'test');
    assert.equal(ctx.store.getService('shop', 'web')!.desiredCount, 3);
    assert.ok(next.changes.includes('~ web: instances 5 → 3'), next.changes.join('\n'));
  });

  it('keeps a stopped service stopped, and an autoscaled count within the new bounds', () => {
    const ctx = setup();
    release(ctx, 'node v1.js', 'succeeded', 2);
    ctx.apps.down('shop', 'test');
    ctx.apps.apply(spec('node v2.js', 2), ctx.source, 'test');
    assert.equal(ctx.store.getService('shop', 'web')!.desiredCount, 0);

    const scaled = setup();
    const autoscale = '    autoscale: { min: 1, max: 6, cpu: 70 }\n';
    const first = scaled.apps.apply(spec('node v1.js', 2, autoscale), scaled.source, 'test');
    end(scaled.store, first.deployment!, 'succeeded');
    scaled.apps.scale('shop', { web: 5 }, 'autoscaler');
    scaled.apps.apply(
      spec('node v1.js', 2, '    autoscale: { min: 1, max: 4, cpu: 70 }\n'),
      scaled.source,
      'test',
    );
    assert.equal(scaled.store.getService('shop', 'web')!.desiredCount, 4);
  });

  it('does not count a kept count as a change: the same spec again makes no release', () => {
    const ctx = setup();
    release(ctx, 'node v1.js', 'succeeded', 2);
    ctx.apps.scale('shop', { web: 4 }, 'test');
    const again = ctx.apps.apply(spec('node v1.js', 2), ctx.source, 'test');
    assert.equal(again.created, false);
  });
});
