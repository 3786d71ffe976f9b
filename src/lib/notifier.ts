// Wakes whoever waits for a change, so readers of something written in this process need not poll it.
import { type Clock, systemClock } from './clock.js';

export interface WaitOptions {
  signal?: AbortSignal;
  /** Give up after this long (resolves false). */
  timeoutMs?: number;
  clock?: Clock;
}

/**
 * A change notification without payload: a writer calls `notify()` after each change; a reader re-reads what it
 * follows after each wake-up, so a wake-up it missed while reading costs nothing (the next read sees the change).
 */
export class Notifier {
  #waiters = new Set<() => void>();

  /** Wakes every current waiter. */
  notify(): void {
    const waiters = this.#waiters;
    this.#waiters = new Set();
    for (const wake of waiters) wake();
  }

  /** Resolves true at the next `notify()`, false when the timeout passes or the signal aborts first. */
  wait(options: WaitOptions = {}): Promise<boolean> {
    const { signal } = options;
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const stopTimer = new AbortController();
      const finish = (notified: boolean): void => {
        this.#waiters.delete(wake);
        signal?.removeEventListener('abort', aborted);
        stopTimer.abort();
        resolve(notified);
      };
      const wake = (): void => finish(true);
      const aborted = (): void => finish(false);
      this.#waiters.add(wake);
      signal?.addEventListener('abort', aborted, { once: true });
      if (options.timeoutMs !== undefined) {
        void (options.clock ?? systemClock)
          .sleep(options.timeoutMs, { signal: stopTimer.signal })
          .then(() => {
            if (!stopTimer.signal.aborted) finish(false);
          });
      }
    });
  }

  /**
   * Resolves with the first value `read` returns other than undefined, re-reading after each change; undefined
   * when `timeoutMs` passes or the signal aborts first.
   */
  async until<T>(read: () => T | undefined, options: WaitOptions = {}): Promise<T | undefined> {
    const clock = options.clock ?? systemClock;
    const deadline = options.timeoutMs === undefined ? undefined : clock.now() + options.timeoutMs;
    for (;;) {
      const value = read();
      if (value !== undefined) return value;
      const left = deadline === undefined ? undefined : deadline - clock.now();
      if ((left !== undefined && left <= 0) || options.signal?.aborted) return undefined;
      await this.wait({ ...options, ...(left === undefined ? {} : { timeoutMs: left }), clock });
    }
  }
}
