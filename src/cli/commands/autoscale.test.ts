import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ServiceAutoscaleStatus } from '../../domain/autoscale-types.js';
import { autoscaleNotes } from './scale.js';

const web = {
  service: 'web',
  policy: { min: 1, max: 4, requestsPerMinute: 600, scaleOutCooldownMs: 60_000, scaleInCooldownMs: 300_000 },
} as ServiceAutoscaleStatus;

describe('berth scale on an autoscaled service', () => {
  it('says the autoscaler will move a count within the bounds when its metrics ask', () => {
    assert.deepEqual(autoscaleNotes('shop', { web: 2 }, [web]), [
      'note: web is autoscaled (min 1, max 4): the autoscaler will change 2 when its metrics ask (berth autoscale status shop)',
    ]);
  });

  it('says a count outside the bounds is set back to the nearest bound', () => {
    assert.deepEqual(autoscaleNotes('shop', { web: 6 }, [web]), [
      'note: web is autoscaled (min 1, max 4): the autoscaler will set it back to 4',
    ]);
  });

  it('says 0 pauses the policy, and says nothing for a service without one', () => {
    assert.match(autoscaleNotes('shop', { web: 0 }, [web])[0] ?? '', /leaves it alone/);
    assert.deepEqual(autoscaleNotes('shop', { worker: 3 }, [web]), []);
  });
});
