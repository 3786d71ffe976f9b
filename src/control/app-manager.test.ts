// Unit tests of AppManager's choices: which release a rollback takes, and which count a new release keeps.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseSpec } from '../domain/spec.js';
import { silentLogger } from '../lib/logger.js';
import { AppManager } from './app-manager.js';
import { EventLog } from './event-log.js';
import { Store } from './store/store.js';

function setup(): { store: Store; apps: AppManager; source: string } {
  const dir = mkdtempSync(join(tmpdir(), 'berth-apps-'));
  const store = new Store(join(dir, 'state.db'));
  return { store, apps: new AppManager(store, new EventLog(store, silentLogger), () => {}), source: dir };
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
  if (result.deployment !== null)
    ctx.store.updateDeployment(result.deployment, { state, endedAt: Date.now() });
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
    ctx.store.updateDeployment(rollback.deployment!, { state: 'succeeded', endedAt: Date.now() });
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
    scaled.store.updateDeployment(first.deployment!, { state: 'succeeded', endedAt: Date.now() });
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
