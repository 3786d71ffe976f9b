import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelay, DEFAULT_BACKOFF, nextFailureCount } from './backoff.js';

describe('backoffDelay', () => {
  it('restarts at once after one failure, then grows exponentially and stops at the cap', () => {
    const options = { initialMs: 100, maxMs: 1000, factor: 2, resetAfterMs: 5000 };
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(n, options)),
      [0, 0, 100, 200, 400, 800, 1000, 1000],
    );
  });

  it('uses one second doubling to a one minute cap by default', () => {
    assert.equal(backoffDelay(2), 1000);
    assert.equal(backoffDelay(3), 2000);
    assert.equal(backoffDelay(20), DEFAULT_BACKOFF.maxMs);
  });
});

describe('nextFailureCount', () => {
  it('counts consecutive quick failures', () => {
    assert.equal(nextFailureCount(3, 10), 4);
  });

  it('starts again from one after an instance stayed up past the reset time', () => {
    assert.equal(nextFailureCount(7, DEFAULT_BACKOFF.resetAfterMs), 1);
  });
});
