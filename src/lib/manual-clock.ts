// A clock that moves only when a test says so: sleeps end in time order as `advance` passes their deadline.
import type { Clock, SleepOptions } from './clock.js';

interface Sleeper {
  at: number;
  order: number;
  resolve: () => void;
}

/** Lets every chain of promises started by a woken sleeper run until it waits again (or ends). */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * `lib/clock.ts`'s promise of a manual clock: `now()` is what the test set, and `sleep` resolves only when
 * `advance` (or `advanceTo`) moves time to its deadline. Between two wake-ups, the woken code runs until it
 * waits again, so a test reads like a timeline: `await clock.advance(1000)` and assert.
 */
export class ManualClock implements Clock {
  #now: number;
  #order = 0;
  #sleepers: Sleeper[] = [];

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  sleep(ms: number, options: SleepOptions = {}): Promise<void> {
    const { signal } = options;
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const sleeper: Sleeper = {
        at: this.#now + Math.max(0, ms),
        order: this.#order++,
        resolve: () => {
          signal?.removeEventListener('abort', abort);
          resolve();
        },
      };
      const abort = (): void => {
        this.#sleepers = this.#sleepers.filter((s) => s !== sleeper);
        sleeper.resolve();
      };
      signal?.addEventListener('abort', abort, { once: true });
      this.#sleepers.push(sleeper);
    });
  }

  /** How many sleeps are waiting for time to move. */
  get sleeping(): number {
    return this.#sleepers.length;
  }

  /** The earliest deadline of a waiting sleep, if any. */
  get nextDeadline(): number | undefined {
    return this.#sleepers.reduce<number | undefined>(
      (min, s) => (min === undefined || s.at < min ? s.at : min),
      undefined,
    );
  }

  /** Moves time forward by `ms`, waking each sleeper at its deadline in order and letting its code run. */
  advance(ms: number): Promise<void> {
    return this.advanceTo(this.#now + ms);
  }

  async advanceTo(time: number): Promise<void> {
    await settle();
    for (;;) {
      const due = this.#sleepers
        .filter((s) => s.at <= time)
        .sort((a, b) => a.at - b.at || a.order - b.order)[0];
      if (due === undefined) break;
      this.#sleepers = this.#sleepers.filter((s) => s !== due);
      this.#now = Math.max(this.#now, due.at);
      due.resolve();
      await settle();
    }
    this.#now = Math.max(this.#now, time);
    await settle();
  }
}
