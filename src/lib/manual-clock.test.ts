// The manual clock: sleeps end in deadline order when time is advanced past them, or at once when aborted.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from './manual-clock.js';

describe('ManualClock', () => {
  it('wakes sleepers in deadline order as time advances, and lets each chain run before the next', async () => {
    const clock = new ManualClock(1000);
    const order: string[] = [];
    void clock.sleep(300).then(() => order.push(`b@${clock.now()}`));
    void clock.sleep(100).then(async () => {
      order.push(`a@${clock.now()}`);
      await clock.sleep(100);
      order.push(`a2@${clock.now()}`);
    });
    await clock.advance(250);
    assert.deepEqual(order, ['a@1100', 'a2@1200']);
    assert.equal(clock.now(), 1250);
    await clock.advance(50);
    assert.deepEqual(order, ['a@1100', 'a2@1200', 'b@1300']);
  });

  it('ends a sleep early when its signal aborts', async () => {
    const clock = new ManualClock();
    const abort = new AbortController();
    const slept = clock.sleep(60_000, { signal: abort.signal });
    abort.abort();
    await slept;
    assert.equal(clock.sleeping, 0);
    assert.equal(clock.now(), 0);
  });
});
