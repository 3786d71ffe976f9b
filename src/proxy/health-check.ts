// Target health, as the one authority on it: ALB semantics per target, a separable checker, keep-alive probes.
import http from 'node:http';
import type { HealthCheckConfig, TargetHealth } from '../domain/route-table.js';
import { successCodeMatcher } from '../domain/route-table.js';
import { TARGET_HEALTH } from '../domain/target-health.js';

/** Outcome of one probe: a status code, or why there was none. */
export type ProbeResult = { status: number } | { error: 'timeout' | 'connection refused' | string };

/** Where a checker sends probes: one target's address. */
export interface ProbeTarget {
  readonly host: string;
  readonly port: number;
}

/** Probes one target, over one connection kept open between checks where the target allows it. */
export interface Prober {
  check(path: string, timeoutMs: number): Promise<ProbeResult>;
  /** Closes the kept connection (the target left the checker). */
  close(): void;
}

/** Opens a prober for a target. Injected so tests can script results. */
export type HealthProbe = (target: ProbeTarget) => Prober;

/** A change of a target's health, published as a `target_health` event. */
export interface TargetHealthTransition {
  from: TargetHealth;
  to: TargetHealth;
  reason: string;
}

/** While a new target is `initial` within its grace period, it is checked this often (or at the interval, if shorter). */
export const INITIAL_CHECK_MS = 100;

/**
 * The health of one target, with ALB semantics: a new (`initial`) target becomes healthy after ONE passing check;
 * an unhealthy one needs `healthyThreshold` consecutive passes; a healthy (or initial) one goes unhealthy after
 * `unhealthyThreshold` consecutive failures. Failures within `graceMs` of the registration do not count (the app may
 * be booting); passes count at once. Pure: no timers, no I/O; moves only as `TARGET_HEALTH` allows.
 */
export class HealthCheck {
  #state: TargetHealth = 'initial';
  #reason: string;
  #passes = 0;
  #failures = 0;
  #config: HealthCheckConfig;
  #isSuccess: (status: number) => boolean;
  /** When the target was registered (ms, the checker's clock): the grace period counts from here. */
  readonly registeredAt: number;
  /**
   * Restored by the proxy after its own restart: it was serving before, so it has no grace period (it is no
   * booting instance) and takes traffic when failing open, as before the restart.
   */
  readonly restored: boolean;

  constructor(config: HealthCheckConfig, options: { registeredAt?: number; restored?: boolean } = {}) {
    this.#config = config;
    this.#isSuccess = successCodeMatcher(config.successCodes);
    this.registeredAt = options.registeredAt ?? 0;
    this.restored = options.restored ?? false;
    this.#reason = this.restored ? 'restored after a proxy restart' : 'registered';
  }

  get state(): TargetHealth {
    return this.#state;
  }

  get reason(): string {
    return this.#reason;
  }

  get config(): HealthCheckConfig {
    return this.#config;
  }

  /**
   * True when the target may take requests while no target of its group is healthy (ALB's fail open): every target
   * except a new one still booting (`initial` within its grace period), which would only refuse them.
   */
  servesWhenFailingOpen(now: number): boolean {
    return this.#state !== 'initial' || !this.inGrace(now);
  }

  /** When the grace period ends (ms); failed checks before it do not count. */
  get graceEndsAt(): number {
    return this.restored ? this.registeredAt : this.registeredAt + (this.#config.graceMs ?? 0);
  }

  /** True while failed checks do not count (`graceMs` after the registration). */
  inGrace(now: number): boolean {
    return now < this.graceEndsAt;
  }

  /** Milliseconds until the next check: quick while a new target boots within its grace, else the interval. */
  nextCheckIn(now: number): number {
    const { intervalMs } = this.#config;
    return this.#state === 'initial' && this.inGrace(now)
      ? Math.min(INITIAL_CHECK_MS, intervalMs)
      : intervalMs;
  }

  /** Applies a new configuration; the current state and streaks are kept. */
  reconfigure(config: HealthCheckConfig): void {
    this.#config = config;
    this.#isSuccess = successCodeMatcher(config.successCodes);
  }

  /** Records a probe result at `now`; returns the transition when the state changed. */
  record(result: ProbeResult, now = Number.POSITIVE_INFINITY): TargetHealthTransition | undefined {
    const pass = 'status' in result && this.#isSuccess(result.status);
    const reason = 'status' in result ? `status ${result.status}` : result.error;
    if (pass) {
      this.#passes++;
      this.#failures = 0;
      const needed = this.#state === 'initial' ? 1 : this.#config.healthyThreshold;
      if (this.#state !== 'healthy' && this.#passes >= needed) return this.#transition('healthy', reason);
      return undefined;
    }
    this.#passes = 0;
    if (this.inGrace(now)) {
      // ECS's grace period: the app may still be booting. The verdict waits; the reason says what was seen.
      this.#failures = 0;
      if (this.#state === 'initial') this.#reason = reason;
      return undefined;
    }
    this.#failures++;
    if (this.#state !== 'unhealthy' && this.#failures >= this.#config.unhealthyThreshold) {
      return this.#transition('unhealthy', reason);
    }
    return undefined;
  }

  /** Passive health: a connection to the target failed while serving traffic; take it out at once. */
  markFailing(reason: string): TargetHealthTransition | undefined {
    this.#passes = 0;
    this.#failures = this.#config.unhealthyThreshold;
    if (this.#state === 'unhealthy') return undefined;
    return this.#transition('unhealthy', reason);
  }

  /**
   * Takes the state decided by the one authority on this target's health (the proxy worker that checks it), in a
   * worker that does not check by itself; returns true when something changed.
   */
  adopt(to: TargetHealth, reason: string): boolean {
    if (this.#state === to && this.#reason === reason) return false;
    this.#state = to;
    this.#reason = reason;
    this.#passes = 0;
    this.#failures = 0;
    return true;
  }

  #transition(to: TargetHealth, reason: string): TargetHealthTransition {
    const from = this.#state;
    TARGET_HEALTH.assert('check', from, to);
    this.#state = to;
    this.#reason = reason;
    this.#passes = 0;
    this.#failures = 0;
    return { from, to, reason };
  }
}

/** A target as the checker sees it: where to probe, and its health to record into. */
export interface CheckedTarget extends ProbeTarget {
  readonly health: HealthCheck;
}

export interface HealthCheckerOptions<T extends CheckedTarget> {
  probe: HealthProbe;
  /** The current health-check configuration of a target's group. */
  configOf(target: T): HealthCheckConfig;
  onChange(target: T, change: TargetHealthTransition): void;
  now?: () => number;
}

/**
 * Runs the active checks of a set of targets: one prober (one kept connection) and one timer per target, no
 * overlapping checks of one target. Separate from the target groups that route traffic, so that the checks of a
 * proxy with several workers can run once and be shared.
 */
export class HealthChecker<T extends CheckedTarget> {
  readonly #options: HealthCheckerOptions<T>;
  readonly #now: () => number;
  readonly #watched = new Map<T, { prober: Prober; timer: NodeJS.Timeout | undefined }>();
  #closed = false;

  constructor(options: HealthCheckerOptions<T>) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Starts checking `target`, the first check at once. */
  watch(target: T): void {
    if (this.#closed || this.#watched.has(target)) return;
    this.#watched.set(target, { prober: this.#options.probe(target), timer: undefined });
    this.#schedule(target, 0);
  }

  /** Stops checking `target` and closes its connection. */
  unwatch(target: T): void {
    const watched = this.#watched.get(target);
    if (!watched) return;
    clearTimeout(watched.timer);
    watched.prober.close();
    this.#watched.delete(target);
  }

  close(): void {
    this.#closed = true;
    for (const target of [...this.#watched.keys()]) this.unwatch(target);
  }

  #schedule(target: T, delayMs: number): void {
    const watched = this.#watched.get(target);
    if (!watched) return;
    watched.timer = setTimeout(async () => {
      const { path, timeoutMs } = this.#options.configOf(target);
      const result = await watched.prober.check(path, timeoutMs);
      if (this.#watched.get(target) !== watched) return; // unwatched meanwhile
      const now = this.#now();
      const change = target.health.record(result, now);
      if (change !== undefined) this.#options.onChange(target, change);
      this.#schedule(target, target.health.nextCheckIn(now));
    }, delayMs);
    watched.timer.unref();
  }
}

/** Idle kept connections close after this long: below Node's default server keep-alive timeout (5 s). */
const PROBE_IDLE_MS = 4000;

/**
 * The real probe: `GET path` with a deadline for the whole exchange, over one keep-alive connection per target
 * (a check every interval costs no TCP handshake). A kept connection the target closed meanwhile is retried once on
 * a new one, so a closed idle connection is never mistaken for a failing target.
 */
export const httpProbe: HealthProbe = (target) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1, timeout: PROBE_IDLE_MS });
  const once = (path: string, timeoutMs: number): Promise<ProbeResult & { stale?: boolean }> =>
    new Promise((resolve) => {
      let settled = false;
      const finish = (result: ProbeResult & { stale?: boolean }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(result);
      };
      const req = http.request(
        {
          host: target.host,
          port: target.port,
          path,
          method: 'GET',
          agent,
          headers: { 'user-agent': 'berth-health-check' },
        },
        (res) => {
          res.resume();
          res.on('end', () => finish({ status: res.statusCode ?? 0 }));
          res.on('error', () => finish({ status: res.statusCode ?? 0 }));
        },
      );
      const timer = setTimeout(() => {
        finish({ error: 'timeout' });
        req.destroy();
      }, timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => {
        const stale = req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
        finish({
          error: err.code === 'ECONNREFUSED' ? 'connection refused' : (err.code ?? err.message),
          ...(stale ? { stale: true } : {}),
        });
      });
      req.end();
    });
  return {
    async check(path, timeoutMs) {
      const first = await once(path, timeoutMs);
      if (!first.stale) return first;
      const { stale: _, ...again } = await once(path, timeoutMs);
      return again;
    },
    close() {
      agent.destroy();
    },
  };
};
