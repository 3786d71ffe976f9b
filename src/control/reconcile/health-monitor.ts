// Watches the health of each live instance and reports its transitions: starting → healthy ⇄ unhealthy.
import type { Instance } from '../../domain/instance.js';
import type { HealthCheckSpec } from '../../domain/spec.js';
import type { HealthProbe } from './health-probe.js';

/** The health check of an instance's service, exactly as the spec gives it. */
export type HealthCheckSettings = HealthCheckSpec;

/**
 * A starting instance that has not passed a check this long after its grace period failed to start.
 * Generous on purpose: a slow start should not be mistaken for a crash loop.
 */
export const START_ALLOWANCE_MS = 30_000;

/** While starting, checks run this often (or at the interval, if shorter) so healthy instances join quickly. */
export const STARTING_PROBE_MS = 100;

export type HealthTransition = 'healthy' | 'unhealthy' | 'failed_to_start';

export interface HealthChange {
  instanceId: string;
  to: HealthTransition;
  /** The last check's result, e.g. `status 500`, `connection refused`, `timeout after 1000ms`. */
  reason: string;
}

interface Watched {
  instance: Instance;
  settings: HealthCheckSettings | null;
  passes: number;
  failures: number;
  nextCheckAt: number;
  checking: boolean;
  lastResult: string;
}

export interface HealthMonitorOptions {
  probe: HealthProbe;
  now: () => number;
  onChange: (change: HealthChange) => void;
}

export class HealthMonitor {
  readonly #watched = new Map<string, Watched>();
  readonly #options: HealthMonitorOptions;

  constructor(options: HealthMonitorOptions) {
    this.#options = options;
  }

  /** Watches exactly these instances from now on (new ones are added, missing ones dropped). */
  sync(instances: readonly Instance[], settingsOf: (instance: Instance) => HealthCheckSettings | null): void {
    const ids = new Set(instances.map((instance) => instance.id));
    for (const id of this.#watched.keys()) if (!ids.has(id)) this.#watched.delete(id);
    for (const instance of instances) {
      const watched = this.#watched.get(instance.id);
      if (watched) {
        watched.instance = instance;
        continue;
      }
      this.#watched.set(instance.id, {
        instance,
        settings: settingsOf(instance),
        passes: 0,
        failures: 0,
        nextCheckAt: this.#options.now(),
        checking: false,
        lastResult: 'not checked yet',
      });
    }
  }

  /** Runs the checks that are due. Resolves when they have all answered. */
  async checkDue(): Promise<void> {
    const now = this.#options.now();
    const due = [...this.#watched.values()].filter((w) => !w.checking && w.nextCheckAt <= now);
    await Promise.all(due.map((watched) => this.#check(watched)));
  }

  async #check(watched: Watched): Promise<void> {
    const { instance, settings } = watched;
    if (instance.state === 'draining') return;
    if (settings === null || instance.port === null) {
      // Nothing to check (a worker): running is healthy.
      if (instance.state === 'starting') this.#report(watched, 'healthy', 'no health check: running');
      return;
    }
    watched.checking = true;
    const result = await this.#options.probe(
      instance.port,
      settings.path,
      settings.timeoutMs,
      settings.successCodes,
    );
    watched.checking = false;
    if (!this.#watched.has(instance.id)) return;
    const now = this.#options.now();
    watched.lastResult = result.detail;
    if (result.ok) {
      watched.passes += 1;
      watched.failures = 0;
    } else {
      watched.failures += 1;
      watched.passes = 0;
    }
    const state = watched.instance.state;
    const inGrace = now < instance.createdAt + settings.graceMs;
    if (state === 'starting') {
      // As ALB does for a new target: one passing check is enough.
      if (result.ok) this.#report(watched, 'healthy', result.detail);
      else if (now >= instance.createdAt + settings.graceMs + START_ALLOWANCE_MS) {
        this.#report(watched, 'failed_to_start', result.detail);
      }
    } else if (state === 'healthy' && !inGrace && watched.failures >= settings.unhealthyThreshold) {
      this.#report(watched, 'unhealthy', result.detail);
    } else if (state === 'unhealthy' && watched.passes >= settings.healthyThreshold) {
      this.#report(watched, 'healthy', result.detail);
    }
    const every =
      watched.instance.state === 'starting'
        ? Math.min(STARTING_PROBE_MS, settings.intervalMs)
        : settings.intervalMs;
    watched.nextCheckAt = now + every;
  }

  #report(watched: Watched, to: HealthTransition, reason: string): void {
    // Mirror the new state at once so one result is never reported twice.
    watched.instance = {
      ...watched.instance,
      state: to === 'failed_to_start' ? 'draining' : to,
    };
    watched.passes = 0;
    watched.failures = 0;
    this.#options.onChange({ instanceId: watched.instance.id, to, reason });
  }
}
