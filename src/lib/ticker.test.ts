// The ticker on a manual clock: cadence, no overlap, errors logged and survived, kicks, runNow and a clean stop.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { ManualClock, settle } from './manual-clock.js';
import { every } from './ticker.js';

/** A logger whose warnings a test can read. */
function recordingLog(): { log: pino.Logger; warnings: string[] } {
  const warnings: string[] = [];
  const log = pino(
    { level: 'warn' },
    { write: (line: string) => warnings.push((JSON.parse(line) as { msg: string }).msg) },
  );
  return { log, warnings };
}

describe('every', () => {
  it('runs once per interval, the first after one interval unless asked to run at once', async () => {
    const clock = new ManualClock(0);
    const runs: number[] = [];
    const ticker = every(1000, () => void runs.push(clock.now()), {
      name: 't',
      log: recordingLog().log,
      clock,
    });
    await clock.advance(3500);
    assert.deepEqual(runs, [1000, 2000, 3000]);
    await ticker.stop();
    const immediate = every(1000, () => void runs.push(clock.now()), {
      name: 'i',
      log: recordingLog().log,
      clock,
      immediate: true,
    });
    await settle();
    assert.equal(runs.at(-1), 3500);
    await immediate.stop();
  });

  it('never overlaps a slow run with the next one', async () => {
    const clock = new ManualClock(0);
    let active = 0;
    let most = 0;
    const ticker = every(
      100,
      async (signal) => {
        active++;
        most = Math.max(most, active);
        await clock.sleep(250, { signal });
        active--;
      },
      { name: 'slow', log: recordingLog().log, clock },
    );
    await clock.advance(2000);
    await ticker.stop();
    assert.equal(most, 1);
  });

  it('logs a failing run with the loop name and keeps going', async () => {
    const clock = new ManualClock(0);
    const { log, warnings } = recordingLog();
    let n = 0;
    const ticker = every(
      10,
      () => {
        n++;
        if (n === 1) throw new Error('boom');
      },
      { name: 'collector', log, clock },
    );
    await clock.advance(30);
    await ticker.stop();
    assert.deepEqual(warnings, ['collector failed']);
    assert.equal(n, 3);
  });

  it('waits retryMs after a failure (a long-poll loop with interval 0 does not spin)', async () => {
    const clock = new ManualClock(0);
    const at: number[] = [];
    const ticker = every(
      0,
      async (signal) => {
        at.push(clock.now());
        if (at.length < 3) throw new Error('proxy down');
        await clock.sleep(10_000, { signal });
      },
      { name: 'poll', log: recordingLog().log, clock, retryMs: 500, immediate: true },
    );
    await clock.advance(1200);
    await ticker.stop();
    assert.deepEqual(at, [0, 500, 1000]);
  });

  it('runs again at once after a kick, and sooner when a run asks for it', async () => {
    const clock = new ManualClock(0);
    const runs: number[] = [];
    const ticker = every(
      1000,
      () => {
        runs.push(clock.now());
        return runs.length === 1 ? 200 : undefined;
      },
      { name: 'k', log: recordingLog().log, clock },
    );
    await clock.advance(1000);
    await clock.advance(200);
    assert.deepEqual(runs, [1000, 1200]);
    ticker.kick();
    await settle();
    assert.deepEqual(runs, [1000, 1200, 1200]);
    await ticker.runNow();
    assert.equal(runs.length, 4);
    await ticker.stop();
  });

  it('stops cleanly: aborts the run under way and waits for it', async () => {
    const clock = new ManualClock(0);
    let ended = false;
    const ticker = every(
      10,
      async (signal) => {
        await clock.sleep(1_000_000, { signal });
        ended = true;
      },
      { name: 's', log: recordingLog().log, clock, immediate: true },
    );
    await settle();
    await ticker.stop();
    assert.equal(ended, true);
    assert.equal(clock.sleeping, 0);
  });
});
