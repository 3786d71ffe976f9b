// The proxy keeper as its clients see it (control plane, CLI): its workers and what happened to them.

/** What the keeper recorded; `seq` grows by one per entry for the life of one keeper process. */
export type KeeperEntry =
  | {
      seq: number;
      at: number;
      type: 'worker_started';
      pid: number;
      /** `start`: the keeper's first worker; `crash`: replacing a dead one; `restart`: a handover. */
      reason: 'start' | 'crash' | 'restart';
      /** From spawning the worker until it accepted connections. */
      readyMs: number;
      /** The worker it replaced (null for the first). */
      replaced: number | null;
      /** For `crash`: from the death of the replaced worker until this one accepted (connections waited meanwhile). */
      downMs: number | null;
    }
  | {
      seq: number;
      at: number;
      type: 'worker_crashed';
      pid: number;
      code: number | null;
      signal: string | null;
      upMs: number;
      /** Crash backoff: 0 for a one-off crash, growing while it keeps crashing. */
      restartInMs: number;
    }
  | { seq: number; at: number; type: 'worker_drained'; pid: number; ms: number; forced: boolean }
  | { seq: number; at: number; type: 'restart_failed'; pid: number | null; error: string };

export type KeeperWorkerState = 'starting' | 'serving' | 'draining';

export interface KeeperStatus {
  pid: number;
  /** Epoch ms; with `pid`, names this keeper process. */
  startedAt: number;
  workers: { pid: number; state: KeeperWorkerState; since: number; admin: boolean }[];
  /** A handover (`berth proxy restart`) is in progress. */
  restarting: boolean;
  restarts: number;
  crashes: number;
  /** The latest entries, oldest first (at most 100). */
  journal: KeeperEntry[];
}

/** `GET /health` of the proxy's admin API. */
export interface ProxyHealth {
  ok: boolean;
  /** The worker that answered. */
  pid: number;
  ports: { http: number; https: number };
  /** Null for a proxy run on its own, without a keeper (benchmarks, tests). */
  keeper: KeeperStatus | null;
}

/** `GET /v1/proxy`: the proxy as the control plane sees it. */
export interface ProxyView {
  /** True when the control plane starts and restarts the keeper; false when a service manager runs it. */
  managed: boolean;
  health: ProxyHealth;
}

/** `POST /v1/proxy/restart`: a handover from one worker to a new one. */
export interface ProxyRestartResult {
  keeper: number;
  /** The worker that was serving (it finishes its requests, then exits). */
  from: number;
  /** The worker now serving. */
  to: number;
  /** How long the new worker took to accept connections. */
  readyMs: number;
  /** The whole call. */
  ms: number;
}
