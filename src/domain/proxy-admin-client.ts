// Typed client of the proxy's admin API (unix socket), for the control plane and the CLI.
import http from 'node:http';
import { BerthError, type ErrorCode } from './errors.js';
import type { ProxyHealth } from './proxy-keeper.js';
import type {
  AdminErrorBody,
  EventsResponse,
  MetricsResponse,
  RouteTable,
  RouteTableInput,
  TargetStatus,
} from './route-table.js';
import type { TargetHealthChanges, TargetHealthSnapshot } from './target-health.js';

/** One client per socket path; every call is a fresh request (the admin API is not on a hot path). */
export class ProxyAdminClient {
  readonly #socketPath: string;
  readonly #timeoutMs: number;

  constructor(socketPath: string, options: { timeoutMs?: number } = {}) {
    this.#socketPath = socketPath;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
  }

  /** The worker that answers, its ports, and its keeper's status (workers, crashes, handovers). */
  health(): Promise<ProxyHealth> {
    return this.#call('GET', '/health');
  }

  /** Asks the keeper to hand over to a new worker; 202 at once (poll `health()` for the new worker's pid). */
  restartWorkers(): Promise<{ restarting: boolean; pid: number }> {
    return this.#call('POST', '/keeper/restart');
  }

  getRouteTable(): Promise<RouteTable> {
    return this.#call('GET', '/route-table');
  }

  /** Replaces the whole table atomically. Rejects with `BerthError('invalid_route_table')` and its issues. */
  putRouteTable(table: RouteTableInput): Promise<RouteTable> {
    return this.#call('PUT', '/route-table', table);
  }

  /** Registers a target (or updates its weight). It gets traffic after its first passing health check. */
  registerTarget(
    group: string,
    target: { id: string; host: string; port: number; weight?: number },
  ): Promise<TargetStatus> {
    const { id, ...rest } = target;
    return this.#call('PUT', `/target-groups/${enc(group)}/targets/${enc(id)}`, rest);
  }

  setWeight(group: string, id: string, weight: number): Promise<TargetStatus> {
    return this.#call('PATCH', `/target-groups/${enc(group)}/targets/${enc(id)}`, { weight });
  }

  /** Stops new requests to the target at once; poll `target()`/`waitDrained()` or watch `target_drained` events. */
  deregisterTarget(group: string, id: string): Promise<TargetStatus> {
    return this.#call('DELETE', `/target-groups/${enc(group)}/targets/${enc(id)}`);
  }

  target(group: string, id: string): Promise<TargetStatus> {
    return this.#call('GET', `/target-groups/${enc(group)}/targets/${enc(id)}`);
  }

  /** Resolves when the target has drained or `waitMs` passed (check `state`). */
  waitDrained(group: string, id: string, waitMs: number): Promise<TargetStatus> {
    return this.#call(
      'GET',
      `/target-groups/${enc(group)}/targets/${enc(id)}?waitDrained=${waitMs}`,
      undefined,
      waitMs,
    );
  }

  targets(group?: string): Promise<TargetStatus[]> {
    return this.#call('GET', group === undefined ? '/targets' : `/target-groups/${enc(group)}/targets`);
  }

  metrics(): Promise<MetricsResponse> {
    return this.#call('GET', '/metrics');
  }

  /** Events after `after`; with `waitMs`, waits (long-poll) for the next one when there is none yet. */
  events(after: number, waitMs = 0): Promise<EventsResponse> {
    return this.#call('GET', `/events?after=${after}&wait=${waitMs}`, undefined, waitMs);
  }

  /** Every target's health and the event sequence number it is current as of (then follow `targetHealthChanges`). */
  targetHealth(): Promise<TargetHealthSnapshot> {
    return this.#call('GET', '/target-health');
  }

  /**
   * Health transitions after `after`; with `waitMs`, waits (long-poll) for one when there is none yet. Aborting
   * `signal` ends the wait at once (the promise rejects).
   */
  targetHealthChanges(after: number, waitMs = 0, signal?: AbortSignal): Promise<TargetHealthChanges> {
    return this.#call('GET', `/target-health?after=${after}&wait=${waitMs}`, undefined, waitMs, signal);
  }

  #call<T>(method: string, path: string, body?: unknown, extraMs = 0, signal?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (signal?.aborted) {
        reject(new BerthError('runtime_failure', `proxy admin API: ${method} ${path}: aborted`));
        return;
      }
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = http.request(
        {
          socketPath: this.#socketPath,
          // A fresh connection each time (node's global agent keeps them alive): a worker handing over closes its
          // idle ones, and a request must never be sent on one at that instant.
          agent: false,
          method,
          path,
          headers:
            payload === undefined
              ? {}
              : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
          timeout: this.#timeoutMs + extraMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              reject(new BerthError('internal', `proxy admin API: ${method} ${path}: invalid JSON response`));
              return;
            }
            if ((res.statusCode ?? 500) >= 400) {
              const error = (parsed as AdminErrorBody).error;
              reject(
                new BerthError(
                  (error?.code ?? 'internal') as ErrorCode,
                  error?.message ?? `status ${res.statusCode}`,
                  {
                    issues: error?.issues ?? [],
                  },
                ),
              );
              return;
            }
            resolve(parsed as T);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`proxy admin API: ${method} ${path} timed out`)));
      const abort = (): void => void req.destroy(new Error(`proxy admin API: ${method} ${path}: aborted`));
      signal?.addEventListener('abort', abort, { once: true });
      req.on('close', () => signal?.removeEventListener('abort', abort));
      req.on('error', (err) =>
        reject(new BerthError('runtime_failure', `proxy admin API: ${err.message}`, { cause: err })),
      );
      req.end(payload);
    });
  }
}

function enc(s: string): string {
  return encodeURIComponent(s);
}
