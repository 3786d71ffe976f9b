// Exponential backoff with a cap, for restarting crashed instances without hammering the machine.

export interface BackoffOptions {
  /** Delay after the first failure. */
  initialMs: number;
  /** Upper bound of any delay. */
  maxMs: number;
  /** Growth per consecutive failure. */
  factor: number;
  /** An instance that stayed up this long resets the count of consecutive failures. */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  initialMs: 1000,
  maxMs: 60_000,
  factor: 2,
  resetAfterMs: 30_000,
};

/**
 * Delay before restarting after `failures` consecutive failures. The first failure after a good run restarts at
 * once (a one-off crash should cost no time); from the second on the delay grows from `initialMs` to `maxMs`.
 */
export function backoffDelay(failures: number, options: BackoffOptions = DEFAULT_BACKOFF): number {
  if (failures <= 1) return 0;
  const delay = options.initialMs * options.factor ** (failures - 2);
  return Math.min(options.maxMs, Math.round(delay));
}

/**
 * Consecutive failures after an instance that ran for `upMs` exited unexpectedly:
 * a long enough run starts the count again from one.
 */
export function nextFailureCount(
  previousFailures: number,
  upMs: number,
  options: BackoffOptions = DEFAULT_BACKOFF,
): number {
  return upMs >= options.resetAfterMs ? 1 : previousFailures + 1;
}
