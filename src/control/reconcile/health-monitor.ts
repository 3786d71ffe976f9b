// Watches the health of each live instance and reports its transitions: starting → healthy ⇄ unhealthy.
import type { Instance } from '../../domain/instance.js';
import type { HealthCheckSpec } from '../../domain/spec.js';
import type { HealthProbe } from './health-probe.js';

/** The health check of an instance's service, exactly as the spec gives it. */
export type HealthCheckSettings = HealthCheckSpec;

/** While starting within its grace period, checks run this often (or at the interval, if shorter). */
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
    // Failures within the grace period do not count (ECS's healthCheckGracePeriod): the app may be booting.
    if (inGrace && !result.ok) watched.failures = 0;
    if (state === 'starting') {
      // As ALB does for a new target: one passing check is enough; `unhealthy` failures after grace fail it.
      if (result.ok) this.#report(watched, 'healthy', result.detail);
      else if (watched.failures >= settings.unhealthyThreshold) {
        this.#report(watched, 'failed_to_start', result.detail);
      }
    } else if (state === 'healthy' && !inGrace && watched.failures >= settings.unhealthyThreshold) {
      this.#report(watched, 'unhealthy', result.detail);
    } else if (state === 'unhealthy' && watched.passes >= settings.healthyThreshold) {
      this.#report(watched, 'healthy', result.detail);
    }
    // Quick checks while a starting instance is in its grace period, so it joins as soon as it answers.
    const every =
      watched.instance.state === 'starting' && inGrace
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
