// Fail open without booting targets: who a target group sends requests to while no target is healthy.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_BODY_IDLE_TIMEOUT_MS,
  DEFAULT_HEALTH,
  type TargetGroupConfig,
} from '../domain/route-table.js';
import { TargetGroup } from './target-group.js';

function group(graceMs: number, clock: { t: number }, restored = false): TargetGroup {
  const config: TargetGroupConfig = {
    name: 'shop.web',
    balancing: 'round_robin',
    health: { ...DEFAULT_HEALTH, graceMs },
    responseTimeoutMs: 1000,
    bodyIdleTimeoutMs: DEFAULT_BODY_IDLE_TIMEOUT_MS,
    retryPutDelete: false,
    drainMs: 1000,
    targets: [{ id: 'old', host: '127.0.0.1', port: 1, weight: 1 }],
  };
  return new TargetGroup(config, {
    probe: () => ({ check: async () => ({ status: 200 }), close: () => {} }),
    listener: { onHealthChange: () => {}, onDrained: () => {} },
    activeChecks: false,
    restored,
    now: () => clock.t,
  });
}

describe('TargetGroup target selection', () => {
  it('sends nothing to a new target still booting, even failing open, and includes it once its grace is over', () => {
    const clock = { t: 0 };
    const g = group(5000, clock);
    g.markFailing(g.get('old')!, 'connection refused');
    g.register({ id: 'new', host: '127.0.0.1', port: 2, weight: 1 });
    assert.deepEqual([g.pick()?.id, g.pick()?.id], ['old', 'old'], 'the unhealthy one, failing open');
    clock.t = 5000;
    assert.deepEqual(new Set([g.pick()?.id, g.pick()?.id]), new Set(['old', 'new']));
  });

  it('answers from nobody while its only targets are booting (503), and from healthy ones only once one passes', () => {
    const clock = { t: 0 };
    const g = group(5000, clock);
    g.deregister('old');
    g.register({ id: 'new', host: '127.0.0.1', port: 2, weight: 1 });
    assert.equal(g.hasActiveTargets(), false);
    g.get('new')!.health.record({ status: 200 }, 100);
    g.register({ id: 'other', host: '127.0.0.1', port: 3, weight: 1 });
    assert.deepEqual([g.pick()?.id, g.pick()?.id], ['new', 'new']);
  });

  it('keeps serving the targets it restored after a proxy restart while their first checks run', () => {
    const g = group(5000, { t: 0 }, true);
    assert.equal(g.get('old')?.health.state, 'initial');
    assert.equal(g.pick()?.id, 'old');
  });
});

describe('TargetGroup of an external origin', () => {
  it('gives its targets the TLS name and Host of the origin, and makes them anew when the origin settings change', () => {
    const g = group(0, { t: 0 });
    const origin = { host: 'shop.herokuapp.com', tls: true };
    g.reconfigure({
      ...g.config,
      origin,
      targets: [{ id: 'heroku', host: '127.0.0.1', port: 4, weight: 1 }],
    });
    const first = g.get('heroku')!;
    assert.equal(first.hostHeader, 'shop.herokuapp.com');
    assert.equal(first.tls?.servername, 'shop.herokuapp.com');
    g.reconfigure({
      ...g.config,
      origin,
      targets: [{ id: 'heroku', host: '127.0.0.1', port: 4, weight: 2 }],
    });
    assert.equal(g.get('heroku'), first, 'a new weight keeps the target, its pool and its health');
    g.reconfigure({
      ...g.config,
      origin: { ...origin, tls: false },
      targets: [{ id: 'heroku', host: '127.0.0.1', port: 4, weight: 2 }],
    });
    assert.notEqual(
      g.get('heroku'),
      first,
      'other TLS settings: pooled connections made with the old ones go',
    );
    assert.notEqual(first.state, 'active');
    assert.equal(g.get('heroku')?.tls, undefined);
  });
});
