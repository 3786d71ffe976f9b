// Keeps the proxy running: finds its keeper on the admin socket or starts it detached (it outlives us), watches it,
// starts it again when it dies, and records what the keeper saw (worker crashes, handovers) as `proxy.*` events.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../../domain/errors.js';
import { ProxyAdminClient } from '../../domain/proxy-admin-client.js';
import type { KeeperEntry, ProxyHealth, ProxyRestartResult, ProxyView } from '../../domain/proxy-keeper.js';
import { proxyPaths } from '../../domain/proxy-paths.js';
import { type BackoffOptions, backoffDelay, nextFailureCount } from '../../lib/backoff.js';
import { systemClock } from '../../lib/clock.js';
import { formatDuration } from '../../lib/duration.js';
import type { Logger } from '../../lib/logger.js';
import { identify, runningPid } from '../../lib/process-identity.js';
import type { EventStore } from '../store/event-store.js';

/** Where `proxy.*` events go, and where the last one recorded is found again after a restart. */
export type ProxyEventSink = Pick<EventStore, 'record' | 'list'>;

/** The kinds this supervisor records. */
const PROXY_EVENT_KINDS = ['proxy.started', 'proxy.crashed', 'proxy.restarted', 'proxy.restart_failed'];

export interface ProxySupervisorOptions {
  dataDir: string;
  /** How to run the keeper: e.g. `[process.execPath, '/path/to/dist/src/main/proxy-keeper.js']`. */
  command: string[];
  httpPort: number;
  httpsPort: number;
  /** Address of the proxy's listeners (default: every address). */
  host?: string;
  log: Logger;
  /** Without it nothing is recorded (the supervisor still keeps the proxy running). */
  events?: ProxyEventSink;
  startTimeoutMs?: number;
  /** When set, a keeper started here has its workers write JSON-lines access logs to this file. */
  accessLogFile?: string;
  /**
   * `false` when a service manager (systemd) runs the keeper: wait for it, watch it and record its crashes, but
   * never start it (two starters would race for its ports). Default true.
   */
  manage?: boolean;
  /** How often the keeper's liveness and journal are looked at. Default 500 ms. */
  watchMs?: number;
}

export interface RunningProxy {
  admin: ProxyAdminClient;
  /** The keeper's pid (null when the proxy runs without one, or it is not known). */
  pid: number | null;
  ports: { http: number; https: number };
}

/** The pid file (pid, start time, command line) the proxy keeper of this data directory writes. */
export function proxyPidFile(dataDir: string): string {
  return proxyPaths(dataDir).pidFile;
}

/** The keeper's pid, only while that very process runs (a stale file or a reused pid gives null). */
export function readProxyPid(dataDir: string): number | null {
  return runningPid(proxyPidFile(dataDir)) ?? null;
}

/** A keeper that keeps dying is started again after 0, 1, 2, 4 ... 30 s. */
const KEEPER_RESTART_BACKOFF: BackoffOptions = {
  initialMs: 1000,
  maxMs: 30_000,
  factor: 2,
  resetAfterMs: 60_000,
};

interface KeeperIdentity {
  pid: number;
  startedAt: number;
  /** From /proc: a pid reused by another process never passes for the keeper. */
  startTicks: number | undefined;
}

export class ProxySupervisor {
  readonly #options: ProxySupervisorOptions;
  readonly #admin: ProxyAdminClient;
  #keeper: KeeperIdentity | undefined;
  #child: ChildProcess | undefined;
  /** The last journal entry recorded as an event, per keeper. */
  #cursor: { pid: number; startedAt: number; seq: number } | undefined;
  #watching = false;
  #wake = new AbortController();
  #loop: Promise<void> | undefined;
  #failures = 0;
  #retryAt = 0;
  /** When the keeper was found dead (for the time it took to be back). */
  #downSince: number | undefined;
  /** The ports the proxy served on: a keeper started again takes the same ones, even if asked for "any" (0). */
  #ports: { http: number; https: number } | undefined;

  constructor(options: ProxySupervisorOptions) {
    this.#options = options;
    this.#admin = new ProxyAdminClient(proxyPaths(options.dataDir).adminSocket, { timeoutMs: 2000 });
    const last = options.events?.list({ kinds: PROXY_EVENT_KINDS, limit: 1 })[0]?.data as
      | { keeper?: { pid: number; startedAt: number }; seq?: number }
      | undefined;
    if (last?.keeper !== undefined)
      this.#cursor = { ...last.keeper, seq: last.seq ?? Number.MAX_SAFE_INTEGER };
  }

  get managed(): boolean {
    return this.#options.manage ?? true;
  }

  /** Returns the running proxy, starting its keeper first if nothing answers on the admin socket. */
  async ensureRunning(): Promise<RunningProxy> {
    const existing = await this.#admin.health().catch(() => undefined);
    if (existing) {
      this.#options.log.info(
        { ports: existing.ports, keeper: existing.keeper?.pid },
        'proxy already running',
      );
      this.#know(existing);
      return this.#running(existing);
    }
    const health = this.managed ? await this.#start() : await this.#awaitExternal();
    return this.#running(health);
  }

  /** Watches the keeper until `stop`: restarts it when it dies (when managed), records the keeper's journal. */
  watch(): void {
    if (this.#watching) return;
    this.#watching = true;
    this.#loop = (async () => {
      while (this.#watching) {
        const wake = this.#wake;
        await this.#tick().catch((error: unknown) =>
          this.#options.log.warn({ err: error }, 'proxy watch failed; trying again'),
        );
        await systemClock.sleep(this.#options.watchMs ?? 500, { signal: wake.signal });
        if (wake.signal.aborted) this.#wake = new AbortController();
      }
    })();
  }

  /** Stops watching. The keeper and its workers keep serving. */
  async stop(): Promise<void> {
    this.#watching = false;
    this.#wake.abort();
    await this.#loop;
  }

  /** What `berth proxy` shows. */
  async view(): Promise<ProxyView> {
    const health = await this.#admin.health().catch((error: unknown) => {
      throw new BerthError('runtime_failure', `the proxy does not answer: ${(error as Error).message}`);
    });
    await this.#recordJournal(health);
    return { managed: this.managed, health };
  }

  /**
   * `berth proxy restart`: the keeper hands over to a new worker (it loads the persisted routes and accepts; the
   * old one stops accepting and finishes its requests). Resolves once the new worker serves.
   */
  async restart(timeoutMs = 30_000): Promise<ProxyRestartResult> {
    const startedAt = Date.now();
    const before = await this.#admin.health().catch((error: unknown) => {
      throw new BerthError('runtime_failure', `the proxy does not answer: ${(error as Error).message}`);
    });
    if (before.keeper === null) {
      throw new BerthError(
        'conflict',
        'this proxy runs without a keeper: it cannot hand over; restart its process',
      );
    }
    const after = before.keeper.journal.at(-1)?.seq ?? 0;
    await this.#admin.restartWorkers();
    const deadline = startedAt + timeoutMs;
    for (;;) {
      await systemClock.sleep(50);
      const now = await this.#admin.health().catch(() => undefined);
      const fresh =
        now?.keeper?.pid === before.keeper.pid ? now.keeper.journal.filter((e) => e.seq > after) : [];
      const failed = fresh.find(
        (e): e is Extract<KeeperEntry, { type: 'restart_failed' }> => e.type === 'restart_failed',
      );
      const started = fresh.find(
        (e): e is Extract<KeeperEntry, { type: 'worker_started' }> =>
          e.type === 'worker_started' && e.reason === 'restart',
      );
      if (now !== undefined && (failed !== undefined || started !== undefined)) {
        await this.#recordJournal(now);
        if (failed !== undefined) {
          throw new BerthError(
            'runtime_failure',
            `the new proxy worker did not start (${failed.error}); worker ${before.pid} keeps serving`,
          );
        }
        return {
          keeper: before.keeper.pid,
          from: before.pid,
          to: started!.pid,
          readyMs: started!.readyMs,
          ms: Date.now() - startedAt,
        };
      }
      if (Date.now() > deadline) {
        throw new BerthError(
          'runtime_failure',
          `the proxy did not hand over within ${formatDuration(timeoutMs)}`,
        );
      }
    }
  }

  async #tick(): Promise<void> {
    if (this.#keeper !== undefined && !this.#alive(this.#keeper)) this.#keeperDied(this.#keeper);
    if (this.#keeper === undefined) {
      if (this.managed) {
        if (Date.now() < this.#retryAt) return;
        try {
          const health = await this.#start();
          this.#keeperBack(health, 'restarted');
        } catch (error) {
          this.#failures = nextFailureCount(this.#failures, 0, KEEPER_RESTART_BACKOFF);
          const delay = Math.max(1000, backoffDelay(this.#failures, KEEPER_RESTART_BACKOFF));
          this.#retryAt = Date.now() + delay;
          this.#options.log.error({ err: error, retryInMs: delay }, 'the proxy keeper did not start again');
        }
        return;
      }
      const health = await this.#admin.health().catch(() => undefined);
      if (health?.keeper) {
        this.#know(health);
        this.#keeperBack(health, 'back (started by its service manager)');
      }
      return;
    }
    const health = await this.#admin.health().catch(() => undefined);
    if (health !== undefined) await this.#recordJournal(health);
  }

  #alive(keeper: KeeperIdentity): boolean {
    const running = identify(keeper.pid);
    return (
      running !== undefined && (keeper.startTicks === undefined || running.startTicks === keeper.startTicks)
    );
  }

  #keeperDied(keeper: KeeperIdentity): void {
    this.#keeper = undefined;
    this.#child = undefined;
    this.#downSince = Date.now();
    this.#options.events?.record({
      actor: 'proxy',
      kind: 'proxy.crashed',
      message:
        `proxy keeper ${keeper.pid} died after ${formatDuration(Date.now() - keeper.startedAt)}: ` +
        'its worker stops accepting, so connections are refused until a keeper runs again; ' +
        (this.managed ? 'starting it again' : 'its service manager starts it again'),
      data: { what: 'keeper', keeper: { pid: keeper.pid, startedAt: keeper.startedAt } },
    });
  }

  #keeperBack(health: ProxyHealth, how: string): void {
    const downMs = this.#downSince === undefined ? null : Date.now() - this.#downSince;
    this.#downSince = undefined;
    const keeper = health.keeper;
    if (keeper === null) return;
    this.#options.events?.record({
      actor: 'proxy',
      kind: 'proxy.restarted',
      message:
        `proxy keeper ${how}: pid ${keeper.pid}, worker ${health.pid}` +
        (downMs === null ? '' : `, ${formatDuration(downMs)} after the last one died`),
      data: {
        what: 'keeper',
        keeper: { pid: keeper.pid, startedAt: keeper.startedAt },
        seq: keeper.journal.at(-1)?.seq ?? 0,
        worker: health.pid,
        downMs,
      },
    });
    this.#cursor = { pid: keeper.pid, startedAt: keeper.startedAt, seq: keeper.journal.at(-1)?.seq ?? 0 };
  }

  /** Journal entries not recorded yet become events (with the time they happened: the keeper keeps 100). */
  async #recordJournal(health: ProxyHealth): Promise<void> {
    const keeper = health.keeper;
    const events = this.#options.events;
    if (keeper === null || events === undefined) return;
    const cursor = this.#cursor;
    const sameKeeper = cursor?.pid === keeper.pid && cursor.startedAt === keeper.startedAt;
    for (const entry of keeper.journal) {
      if (sameKeeper && entry.seq <= cursor.seq) continue;
      const event = eventOf(entry);
      if (event !== undefined) {
        events.record({
          actor: 'proxy',
          at: entry.at,
          ...event,
          data: { ...entry, keeper: { pid: keeper.pid, startedAt: keeper.startedAt } },
        });
      }
      this.#cursor = { pid: keeper.pid, startedAt: keeper.startedAt, seq: entry.seq };
    }
  }

  #know(health: ProxyHealth): void {
    this.#ports = health.ports;
    if (health.keeper === null) return;
    const identity = identify(health.keeper.pid);
    this.#keeper = {
      pid: health.keeper.pid,
      startedAt: health.keeper.startedAt,
      startTicks: identity?.startTicks,
    };
  }

  #running(health: ProxyHealth): RunningProxy {
    return { admin: this.#admin, pid: health.keeper?.pid ?? null, ports: health.ports };
  }

  async #awaitExternal(): Promise<ProxyHealth> {
    const deadline = Date.now() + (this.#options.startTimeoutMs ?? 30_000);
    for (;;) {
      const health = await this.#admin.health().catch(() => undefined);
      if (health) {
        this.#know(health);
        return health;
      }
      if (Date.now() > deadline) {
        throw new BerthError(
          'runtime_failure',
          `the proxy did not answer on ${proxyPaths(this.#options.dataDir).adminSocket}; with --external-proxy its keeper is started by its own unit (systemctl status berth-proxy)`,
        );
      }
      await systemClock.sleep(200);
    }
  }

  /** Starts a keeper detached (its own process group, no pipes to us) and waits until its worker answers. */
  async #start(): Promise<ProxyHealth> {
    const paths = proxyPaths(this.#options.dataDir);
    mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
    const logPath = join(paths.dir, 'proxy.log');
    const logFile = openSync(logPath, 'a', 0o600);
    const [executable, ...args] = this.#options.command;
    const child = spawn(
      executable!,
      [
        ...args,
        '--data-dir',
        this.#options.dataDir,
        '--http-port',
        String(this.#options.httpPort || (this.#ports?.http ?? 0)),
        '--https-port',
        String(this.#options.httpsPort || (this.#ports?.https ?? 0)),
        ...(this.#options.host === undefined ? [] : ['--host', this.#options.host]),
        ...(this.#options.accessLogFile === undefined
          ? []
          : ['--access-log-file', this.#options.accessLogFile]),
      ],
      { detached: true, stdio: ['ignore', logFile, logFile] },
    );
    closeSync(logFile);
    child.unref();
    let exited: ((code: number | null) => void) | undefined;
    const exit = new Promise<number | null>((resolve) => {
      exited = resolve;
    });
    child.once('exit', (code) => {
      exited?.(code);
      // Its death is seen at once, not at the next look.
      if (this.#child === child) this.#wake.abort();
    });
    const deadline = Date.now() + (this.#options.startTimeoutMs ?? 15_000);
    for (;;) {
      const health = await Promise.race([
        this.#admin.health().catch(() => undefined),
        exit.then((code) => {
          throw new BerthError(
            'runtime_failure',
            `the proxy keeper exited with code ${code} at start; see ${logPath}`,
          );
        }),
      ]);
      if (health !== undefined && health.keeper !== null && health.keeper.pid === child.pid) {
        this.#child = child;
        this.#know(health);
        this.#options.log.info(
          { keeper: child.pid, worker: health.pid, ports: health.ports },
          'proxy started',
        );
        if (this.#downSince === undefined) {
          this.#options.events?.record({
            actor: 'system',
            kind: 'proxy.started',
            message: `proxy started: keeper ${child.pid}, worker ${health.pid}, HTTP :${health.ports.http}, HTTPS :${health.ports.https}`,
            data: {
              what: 'keeper',
              keeper: { pid: health.keeper.pid, startedAt: health.keeper.startedAt },
              seq: health.keeper.journal.at(-1)?.seq ?? 0,
              worker: health.pid,
              ports: health.ports,
            },
          });
          this.#cursor = {
            pid: health.keeper.pid,
            startedAt: health.keeper.startedAt,
            seq: health.keeper.journal.at(-1)?.seq ?? 0,
          };
        }
        this.#failures = 0;
        return health;
      }
      if (Date.now() > deadline) {
        child.kill('SIGTERM');
        throw new BerthError('runtime_failure', `the proxy did not answer on ${paths.adminSocket} in time`);
      }
      await systemClock.sleep(50);
    }
  }
}

/** The event of a journal entry; starts and drains of workers are in the keeper's log only. */
function eventOf(entry: KeeperEntry): { kind: string; message: string } | undefined {
  switch (entry.type) {
    case 'worker_crashed': {
      const how = entry.signal ? `killed by ${entry.signal}` : `exited with code ${entry.code}`;
      return {
        kind: 'proxy.crashed',
        message:
          `proxy worker ${entry.pid} ${how} after ${formatDuration(entry.upMs)}; ` +
          (entry.restartInMs === 0
            ? 'the keeper replaces it now'
            : `it keeps crashing: the keeper replaces it in ${formatDuration(entry.restartInMs)} (crash backoff)`) +
          ' while new connections wait in the backlog',
      };
    }
    case 'worker_started':
      if (entry.reason === 'crash') {
        return {
          kind: 'proxy.restarted',
          message: `proxy worker ${entry.pid} serving in place of ${entry.replaced}, ${formatDuration(entry.downMs ?? entry.readyMs)} after it died`,
        };
      }
      if (entry.reason === 'restart') {
        return {
          kind: 'proxy.restarted',
          message: `proxy handed over from worker ${entry.replaced} to ${entry.pid} (ready in ${formatDuration(entry.readyMs)}); ${entry.replaced} finishes its requests`,
        };
      }
      return undefined;
    case 'restart_failed':
      return {
        kind: 'proxy.restart_failed',
        message: `proxy restart failed: ${entry.error}; the old worker keeps serving`,
      };
    case 'worker_drained':
      return undefined;
  }
}
