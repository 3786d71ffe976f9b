// Active health checking with ALB semantics: thresholds, success codes, and an injectable probe.
import http from 'node:http';
import type { HealthCheckConfig, TargetHealth } from '../domain/route-table.js';
import { successCodeMatcher } from '../domain/route-table.js';

/** Outcome of one probe: a status code, or why there was none. */
export type ProbeResult = { status: number } | { error: 'timeout' | 'connection refused' | string };

/** Performs one health check request. Injected so tests can script results. */
export type HealthProbe = (
  target: { host: string; port: number },
  path: string,
  timeoutMs: number,
) => Promise<ProbeResult>;

/** A health change, to be published as an event. */
export interface HealthTransition {
  from: TargetHealth;
  to: TargetHealth;
  reason: string;
}

/**
 * Health state of one target. ALB semantics: a new (`initial`) target becomes healthy after ONE passing check;
 * an unhealthy one needs `healthyThreshold` consecutive passes; a healthy (or initial) one goes unhealthy after
 * `unhealthyThreshold` consecutive failures. Pure: no timers, no I/O.
 */
export class HealthCheck {
  #state: TargetHealth = 'initial';
  #reason = 'registered';
  #passes = 0;
  #failures = 0;
  #config: HealthCheckConfig;
  #isSuccess: (status: number) => boolean;

  constructor(config: HealthCheckConfig) {
    this.#config = config;
    this.#isSuccess = successCodeMatcher(config.successCodes);
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

  /** Applies a new configuration; the current state and streaks are kept. */
  reconfigure(config: HealthCheckConfig): void {
    this.#config = config;
    this.#isSuccess = successCodeMatcher(config.successCodes);
  }

  /** Records a probe result; returns the transition when the state changed. */
  record(result: ProbeResult): HealthTransition | undefined {
    const pass = 'status' in result && this.#isSuccess(result.status);
    const reason = 'status' in result ? `status ${result.status}` : result.error;
    if (pass) {
      this.#passes++;
      this.#failures = 0;
      const needed = this.#state === 'initial' ? 1 : this.#config.healthyThreshold;
      if (this.#state !== 'healthy' && this.#passes >= needed) return this.#transition('healthy', reason);
    } else {
      this.#failures++;
      this.#passes = 0;
      if (this.#state !== 'unhealthy' && this.#failures >= this.#config.unhealthyThreshold) {
        return this.#transition('unhealthy', reason);
      }
    }
    return undefined;
  }

  /** Passive health: a connection to the target failed while serving traffic; take it out at once. */
  markFailing(reason: string): HealthTransition | undefined {
    this.#passes = 0;
    this.#failures = this.#config.unhealthyThreshold;
    if (this.#state === 'unhealthy') return undefined;
    return this.#transition('unhealthy', reason);
  }

  #transition(to: TargetHealth, reason: string): HealthTransition {
    const from = this.#state;
    this.#state = to;
    this.#reason = reason;
    return { from, to, reason };
  }
}

/** The real probe: `GET path` on a fresh connection (like ALB), with a deadline for the whole exchange. */
export const httpProbe: HealthProbe = (target, path, timeoutMs) =>
  new Promise((resolve) => {
    let settled = false;
    const finish = (result: ProbeResult) => {
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
        agent: false,
        headers: { 'user-agent': 'berth-health-check', connection: 'close' },
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
      finish({ error: err.code === 'ECONNREFUSED' ? 'connection refused' : (err.code ?? err.message) });
    });
    req.end();
  });
