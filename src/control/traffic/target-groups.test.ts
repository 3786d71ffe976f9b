import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CanaryProgress, Deployment, DeploymentState } from '../../domain/deployment.js';
import { DEFAULT_CANARY_ANALYSIS } from '../../domain/spec-defaults.js';
import { homeTargetGroup, serviceBackends } from './target-groups.js';

function deployment(id: number, state: DeploymentState, canary: Partial<CanaryProgress> | null): Deployment {
  return {
    id,
    app: 'shop',
    kind: 'deploy',
    fromRelease: id,
    toRelease: id + 1,
    state,
    services: [{ name: 'web', threshold: 3, failures: 0 }],
    reason: null,
    startedAt: 0,
    endedAt: null,
    strategy: canary === null ? 'rolling' : 'canary',
    canary:
      canary === null
        ? null
        : {
            services: ['web'],
            steps: [10, 50, 100],
            intervalMs: 1000,
            analysis: DEFAULT_CANARY_ANALYSIS,
            step: 0,
            windowStartedAt: null,
            baseline: {},
            holds: 0,
            last: null,
            ...canary,
          },
  };
}

describe('target groups of a service', () => {
  it('is the first group until a canary; a running canary splits by its step; an abort leaves the old group alone', () => {
    assert.deepEqual(serviceBackends([deployment(1, 'succeeded', null)], 'shop', 'web'), [
      { targetGroup: 'shop.web', weight: 1 },
    ]);
    const running = [deployment(1, 'succeeded', null), deployment(2, 'canary', { step: 1 })];
    assert.deepEqual(serviceBackends(running, 'shop', 'web'), [
      { targetGroup: 'shop.web', weight: 50, release: 'v2' },
      { targetGroup: 'shop.web.v3', weight: 50, release: 'v3' },
    ]);
    assert.equal(
      homeTargetGroup(running, 'shop', 'web'),
      'shop.web.v3',
      'new instances join the canary group',
    );
    const aborted = [deployment(1, 'succeeded', null), deployment(2, 'rolled_back', { step: 1 })];
    assert.deepEqual(serviceBackends(aborted, 'shop', 'web'), [{ targetGroup: 'shop.web', weight: 1 }]);
  });

  it("keeps a promoted canary's group as the service's, through later rolling deploys and the next canary", () => {
    const history = [deployment(2, 'succeeded', { step: 2 }), deployment(3, 'succeeded', null)];
    assert.deepEqual(serviceBackends(history, 'shop', 'web'), [{ targetGroup: 'shop.web.v3', weight: 1 }]);
    assert.deepEqual(serviceBackends([...history, deployment(4, 'canary', {})], 'shop', 'web'), [
      { targetGroup: 'shop.web.v3', weight: 90, release: 'v4' },
      { targetGroup: 'shop.web.v5', weight: 10, release: 'v5' },
    ]);
  });
});
