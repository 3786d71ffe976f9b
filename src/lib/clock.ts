// Time as a collaborator: the real clock for production, a manual one (`ManualClock`) for tests.

/** How a sleep behaves besides its length. */
export interface SleepOptions {
  /** Ends the sleep early (without error). */
  signal?: AbortSignal;
  /** The sleep does not keep the process alive (background loops). */
  unref?: boolean;
}

/** What the control plane needs of time. Inject it so tests step time instead of sleeping. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms` milliseconds, or early (without error) when the signal aborts. */
  sleep(ms: number, options?: SleepOptions): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, options = {}) =>
    new Promise((resolve) => {
      const { signal } = options;
      if (signal?.aborted) return resolve();
      const timer = setTimeout(done, Math.max(0, ms));
      if (options.unref) timer.unref();
      signal?.addEventListener('abort', done, { once: true });
      function done(): void {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      }
    }),
};
