// Change notifications: a waiter wakes on notify, gives up on its timeout, and `until` re-reads after each change.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock, settle } from './manual-clock.js';
import { Notifier } from './notifier.js';

describe('Notifier', () => {
  it('wakes every waiter on notify, and a timed-out waiter resolves false', async () => {
    const clock = new ManualClock();
    const notifier = new Notifier();
    const a = notifier.wait({ clock, timeoutMs: 1000 });
    const b = notifier.wait({ clock, timeoutMs: 1000 });
    notifier.notify();
    assert.deepEqual(await Promise.all([a, b]), [true, true]);
    const late = notifier.wait({ clock, timeoutMs: 1000 });
    await clock.advance(1000);
    assert.equal(await late, false);
    assert.equal(clock.sleeping, 0, 'no timer left behind');
  });

  it('`until` returns the first defined read, re-reading after each change', async () => {
    const clock = new ManualClock();
    const notifier = new Notifier();
    let value: number | undefined;
    const result = notifier.until(() => value, { clock, timeoutMs: 5000 });
    await settle();
    notifier.notify();
    value = 7;
    notifier.notify();
    assert.equal(await result, 7);
    const never = notifier.until(() => undefined, { clock, timeoutMs: 5000 });
    await clock.advance(5000);
    assert.equal(await never, undefined);
  });
});
