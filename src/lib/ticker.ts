// The one way to run something periodically: no overlap, errors caught and logged, unref'd, a clean stop.
import { type Clock, systemClock } from './clock.js';
import type { Logger } from './logger.js';

export interface TickerOptions {
  /** Names the loop in its log lines. */
  name: string;
  log: Logger;
  clock?: Clock;
  /** Run once at start instead of after the first interval. */
  immediate?: boolean;
  /** Run at multiples of the interval (e.g. collections aligned to buckets). */
  align?: boolean;
  /** Wait this long after a failed run instead of the interval (a loop that long-polls uses 0 as its interval). */
  retryMs?: number;
}

export interface Ticker {
  /** Runs again now (after the current run, if one is under way). */
  kick(): void;
  /** Resolves once a run that started after this call has finished. */
  runNow(): Promise<void>;
  /** Stops: no new run; resolves when the current one has finished (its signal is aborted). */
  stop(): Promise<void>;
}

/**
 * Runs `task` every `intervalMs`. A run may return (or resolve to) a number: the milliseconds until it wants to
 * run again, when sooner than the interval (the reconciler's crash-loop backoff, for example). A run never overlaps the previous one; a failing run is logged and the loop
 * goes on; the waits never keep the process alive; `stop` aborts the run's signal and waits for it to end.
 */
export function every(
  intervalMs: number,
  task: (signal: AbortSignal) => unknown,
  options: TickerOptions,
): Ticker {
  const clock = options.clock ?? systemClock;
  const stopping = new AbortController();
  let wake = new AbortController();
  let waiters: (() => void)[] = [];
  let first = true;
  /** Set by a run that asked to run again sooner than the interval. */
  let soon: number | undefined;
  /** Set by a failed run when `retryMs` is given: the next wait, shorter or longer than the interval. */
  let retry: number | undefined;

  const loop = (async () => {
    while (!stopping.signal.aborted) {
      let delay = intervalMs;
      if (first && options.immediate) delay = 0;
      else if (options.align && intervalMs > 0) delay = intervalMs - (clock.now() % intervalMs);
      if (first) first = false;
      else if (retry !== undefined) delay = retry;
      else if (soon !== undefined) delay = Math.min(delay, soon);
      if (!wake.signal.aborted && delay > 0) {
        await clock.sleep(delay, { signal: wake.signal, unref: true });
      }
      if (stopping.signal.aborted) break;
      // A kick while this run is under way makes the loop run again at once: it may have missed the change.
      wake = new AbortController();
      const finished = waiters;
      waiters = [];
      soon = undefined;
      retry = undefined;
      try {
        const next = await task(stopping.signal);
        if (typeof next === 'number') soon = Math.max(0, next);
      } catch (error) {
        options.log.warn({ err: error, loop: options.name }, `${options.name} failed`);
        retry = options.retryMs;
      }
      for (const resolve of finished) resolve();
    }
    for (const resolve of waiters) resolve();
    waiters = [];
  })();

  return {
    kick() {
      wake.abort();
    },
    runNow() {
      if (stopping.signal.aborted) return Promise.resolve();
      return new Promise((resolve) => {
        waiters.push(resolve);
        wake.abort();
      });
    },
    async stop() {
      stopping.abort();
      wake.abort();
      await loop;
    },
  };
}
