// The proxy keeper (the master of nginx and haproxy): owns the listening sockets and runs the proxy worker on them,
// so a worker can die, be replaced or be upgraded while new connections wait in the kernel's backlog.
//
// The keeper binds each socket but never listens or accepts on it itself: a worker receives the bound handle over
// IPC (`child.send(message, handle)`, which dups the descriptor) and calls listen(2). The socket stays in LISTEN
// state for as long as any process holds a descriptor of it, and the keeper always does; with no worker
// accepting, the kernel completes handshakes into the accept queue (backlog 511) and the next worker accepts
// them. Node's cluster module cannot be used for this: its primary closes a shared handle once no worker uses it.
//
// With several workers (nginx's `worker_processes`), each listens on the same sockets and the kernel spreads the
// connections. The first worker is the authority: it alone serves the admin API, checks target health and persists
// the routes; the keeper relays its shared state to the others (followers), their passive failures and finished
// drains back to it, and sums every worker's counters for it, so the control plane sees one proxy.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { chmodSync, rmSync } from 'node:fs';
import net from 'node:net';
import { getSystemErrorName } from 'node:util';
import type { KeeperEntry, KeeperStatus, KeeperWorkerState } from '../domain/proxy-keeper.js';
import { type BackoffOptions, backoffDelay, nextFailureCount } from '../lib/backoff.js';
import type { SharedProxyState } from './proxy-server.js';
import { NO_WORKER_METRICS, sumWorkerMetrics, type WorkerMetrics } from './worker-metrics.js';

/** A bound, not listening, libuv TCP or pipe handle, as cluster's SharedHandle makes them. */
export interface ListenHandle {
  close(): void;
}

/** The names of the sockets a worker may be given. */
export type ListenerName = 'http' | 'https' | 'admin';

/** Keeper → worker. `listen` carries a handle; `tickets` and then `go` follow the last one. */
export type ToWorker =
  | { type: 'listen'; name: ListenerName }
  | { type: 'tickets'; keys: string }
  | { type: 'go' }
  | { type: 'status'; status: KeeperStatus }
  | { type: 'release-admin' }
  | { type: 'drain' }
  /** To followers: the authority's state, numbered. */
  | { type: 'sync'; state: SharedProxyState; seq: number }
  /** To the authority: a follower serves the shared state numbered `seq` (or a later one). */
  | { type: 'peer-synced'; seq: number; pid: number }
  /** To the authority: a follower is done with a draining target / saw a connection to a target fail. */
  | { type: 'peer-drained'; targetGroup: string; target: string; pid: number }
  | { type: 'peer-failure'; targetGroup: string; target: string; reason: string }
  /** To any worker: send your counters (`report`). */
  | { type: 'report'; id: number }
  /** To the authority: every other worker's counters, and those of workers gone, summed. */
  | { type: 'collected'; id: number; metrics: WorkerMetrics };

/** Worker → keeper. `hello`: its message handler is in place, send the sockets. */
export type FromWorker =
  | { type: 'hello' }
  | { type: 'ready'; ports: { http: number; https: number } }
  | { type: 'admin-released' }
  | { type: 'restart' }
  | { type: 'sync'; state: SharedProxyState; seq: number }
  /** A follower adopted the shared state numbered `seq`. */
  | { type: 'synced'; seq: number }
  | { type: 'drained'; targetGroup: string; target: string }
  | { type: 'failure'; targetGroup: string; target: string; reason: string }
  /** The authority asks for the others' counters, with its own. */
  | { type: 'collect'; id: number; own: WorkerMetrics }
  /** Counters, asked for (`id` > 0) or final (a draining worker before it exits: `id` 0). */
  | { type: 'report'; id: number; metrics: WorkerMetrics };

export interface KeeperOptions {
  http: { host?: string; port: number };
  https: { host?: string; port: number };
  adminSocket: string;
  /** The argv of one worker (`[node, proxy.js, '--worker', ...]`); it gets its sockets over IPC. */
  worker: string[];
  /** How many workers share the listeners; the first one is the authority (admin API, health). Default 1. */
  workers?: number;
  /** How often the TLS session ticket keys change (every worker gets the new key at once). Default 6 h. */
  ticketRotationMs?: number;
  /** How long a replaced worker may finish its requests before SIGKILL (its own drain is a little shorter). */
  drainMs: number;
  /** How long a new worker may take to accept connections. Default 15 s. */
  readyTimeoutMs?: number;
  /** Crash backoff of each worker slot. */
  backoff?: BackoffOptions;
  /** One JSON object per keeper event (stderr → proxy.log). */
  log?: (event: Record<string, unknown>) => void;
}

/** A one-off crash is replaced at once; a worker that keeps crashing waits 0.5 s, 1 s, 2 s ... up to 10 s. */
export const KEEPER_BACKOFF: BackoffOptions = {
  initialMs: 500,
  maxMs: 10_000,
  factor: 2,
  resetAfterMs: 30_000,
};

const JOURNAL_SIZE = 100;
/** A worker that does not report its counters within this long is counted with its last report. */
const COLLECT_MS = 1000;
/** Session ticket keys: Node's format is 48 bytes (name, HMAC and AES keys). */
const TICKET_KEY_BYTES = 48;
export const TICKET_ROTATION_MS = 6 * 60 * 60 * 1000;
/** Beyond the worker's own drain: time to close its admin API and exit. */
const DRAIN_MARGIN_MS = 5000;

export class KeeperError extends Error {}

export class Keeper {
  readonly #options: KeeperOptions;
  readonly #handles: Record<ListenerName, ListenHandle>;
  readonly #ports: { http: number; https: number };
  readonly #startedAt = Date.now();
  /** The worker of each slot (undefined while one is being started after a crash). */
  readonly #slots: (Worker | undefined)[];
  readonly #failures: number[];
  readonly #timers = new Set<NodeJS.Timeout>();
  /** New workers of a handover, not yet serving, by slot. */
  readonly #incoming = new Map<number, Worker>();
  readonly #draining = new Set<Worker>();
  readonly #journal: KeeperEntry[] = [];
  #seq = 0;
  #restarts = 0;
  #crashes = 0;
  #restarting: Promise<void> | undefined;
  #stopping = false;
  /** The authority's latest state, for followers that start later. */
  #shared: { state: SharedProxyState; seq: number } | undefined;
  #ticketKeys = randomBytes(TICKET_KEY_BYTES);
  /** The counters of workers that exited (their last report, gauges left out). */
  #departed: WorkerMetrics = NO_WORKER_METRICS;
  readonly #collections = new Map<number, { waiting: Set<Worker>; done: () => void }>();

  private constructor(options: KeeperOptions, handles: Record<ListenerName, ListenHandle>) {
    this.#options = options;
    this.#handles = handles;
    this.#ports = { http: portOf(handles.http), https: portOf(handles.https) };
    const count = options.workers ?? 1;
    this.#slots = Array.from({ length: count }, () => undefined);
    this.#failures = Array.from({ length: count }, () => 0);
  }

  /** Binds the sockets and starts the workers; resolves once every worker accepts connections. */
  static async start(options: KeeperOptions): Promise<Keeper> {
    const handles = await bindAll(options);
    const keeper = new Keeper(options, handles);
    const rotation = setInterval(
      () => keeper.#rotateTickets(),
      options.ticketRotationMs ?? TICKET_ROTATION_MS,
    );
    rotation.unref();
    keeper.#timers.add(rotation as unknown as NodeJS.Timeout);
    try {
      for (let slot = 0; slot < keeper.#slots.length; slot++) {
        const worker = keeper.#spawn(slot);
        keeper.#slots[slot] = worker;
        await worker.ready(options.readyTimeoutMs ?? 15_000);
        keeper.#served(worker, 'start', null, null);
      }
    } catch (error) {
      await keeper.stop();
      throw new KeeperError(`the first proxy worker did not start: ${(error as Error).message}`);
    }
    return keeper;
  }

  get ports(): { http: number; https: number } {
    return { ...this.#ports };
  }

  status(): KeeperStatus {
    const workers = [...this.#slots, ...this.#incoming.values(), ...this.#draining]
      .filter((w): w is Worker => w !== undefined)
      .map((w) => ({ pid: w.pid, state: w.state, since: w.since, admin: w.admin }));
    // The one keeper status names every worker; the incoming authority of a handover is listed once.
    return {
      pid: process.pid,
      startedAt: this.#startedAt,
      workers,
      restarting: this.#restarting !== undefined,
      restarts: this.#restarts,
      crashes: this.#crashes,
      journal: [...this.#journal],
    };
  }

  /**
   * Hands every slot over to a new worker: the old one stops taking admin requests, the new one loads the
   * persisted state and accepts, then the old one stops accepting and finishes what it has. Connections are never
   * refused: between the two they wait in the backlog. A second call during a handover joins it.
   */
  restart(): Promise<void> {
    this.#restarting ??= (async () => {
      try {
        for (let slot = 0; slot < this.#slots.length && !this.#stopping; slot++) await this.#handOver(slot);
      } finally {
        this.#restarting = undefined;
        this.#publish();
      }
    })();
    this.#publish();
    return this.#restarting;
  }

  /** Drains every worker (each finishes its requests, up to `drainMs`), then closes the sockets. */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const timer of this.#timers) clearTimeout(timer);
    for (const collection of this.#collections.values()) collection.done();
    this.#timers.clear();
    const all = [...this.#slots, ...this.#incoming.values(), ...this.#draining].filter(
      (w): w is Worker => w !== undefined,
    );
    await Promise.all(all.map((w) => w.drain(this.#options.drainMs + DRAIN_MARGIN_MS)));
    // Closing the admin socket's handle unlinks its file (the keeper bound it).
    for (const handle of Object.values(this.#handles)) handle.close();
  }

  #spawn(slot: number): Worker {
    const worker = new Worker(this.#options.worker, slot === 0, {
      onHello: () => {
        worker.send({ type: 'listen', name: 'http' }, this.#handles.http);
        worker.send({ type: 'listen', name: 'https' }, this.#handles.https);
        if (worker.admin) worker.send({ type: 'listen', name: 'admin' }, this.#handles.admin);
        worker.send({ type: 'tickets', keys: this.#ticketKeys.toString('base64') });
        worker.send({ type: 'go' });
        worker.send({ type: 'status', status: this.status() });
        if (!worker.admin && this.#shared !== undefined) worker.send({ type: 'sync', ...this.#shared });
      },
      onRestart: () => {
        void this.restart();
      },
      onMessage: (message) => this.#relay(worker, message),
      onExit: (code, signal) => {
        this.#departedWorker(worker);
        this.#onExit(slot, worker, code, signal);
      },
    });
    this.#log({ event: 'worker_spawned', pid: worker.pid, slot });
    return worker;
  }

  /** The worker that serves the admin API and decides target health (none while it is being replaced). */
  #authority(): Worker | undefined {
    return [...this.#slots, ...this.#incoming.values()].find((w) => w?.admin);
  }

  /** Every live worker but `except`: the followers, and the old workers of a handover still finishing. */
  #others(except: Worker | undefined): Worker[] {
    return [...this.#slots, ...this.#incoming.values(), ...this.#draining].filter(
      (w): w is Worker => w !== undefined && w !== except && w.alive,
    );
  }

  /** Carries what one worker says to the ones it concerns. */
  #relay(from: Worker, message: FromWorker): void {
    const authority = this.#authority();
    switch (message.type) {
      case 'sync':
        if (from !== authority) return; // an old authority of a handover, no longer in charge
        this.#shared = { state: message.state, seq: message.seq };
        for (const worker of this.#others(from)) worker.send(message);
        return;
      case 'synced':
        if (from !== authority) authority?.send({ type: 'peer-synced', seq: message.seq, pid: from.pid });
        return;
      case 'drained':
        if (from !== authority) authority?.send({ ...message, type: 'peer-drained', pid: from.pid });
        return;
      case 'failure':
        if (from !== authority) authority?.send({ ...message, type: 'peer-failure' });
        return;
      case 'collect':
        from.lastReport = message.own;
        this.#collect(from, message.id);
        return;
      case 'report': {
        from.lastReport = message.metrics;
        const collection = this.#collections.get(message.id);
        if (collection?.waiting.delete(from) && collection.waiting.size === 0) collection.done();
        return;
      }
      default:
        return;
    }
  }

  /** Asks every other worker for its counters (up to `COLLECT_MS`), then answers `to` with their sum. */
  #collect(to: Worker, id: number): void {
    // A worker still starting has counted nothing yet (and cannot answer before it serves).
    const others = this.#others(to).filter((w) => w.state !== 'starting');
    const done = () => {
      clearTimeout(timer);
      this.#collections.delete(id);
      const reports = others.map((w) => w.lastReport).filter((r): r is WorkerMetrics => r !== undefined);
      to.send({ type: 'collected', id, metrics: sumWorkerMetrics([...reports, this.#departed]) });
    };
    const timer = setTimeout(done, COLLECT_MS);
    this.#collections.set(id, { waiting: new Set(others), done });
    if (others.length === 0) done();
    for (const worker of others) worker.send({ type: 'report', id });
  }

  /** A worker exited: its counts stay in the sums (the targets the authority still has), its gauges go. */
  #departedWorker(worker: Worker): void {
    for (const collection of this.#collections.values()) {
      if (collection.waiting.delete(worker) && collection.waiting.size === 0) collection.done();
    }
    if (worker.lastReport === undefined) return;
    const only = this.#authority()?.lastReport;
    this.#departed = sumWorkerMetrics([this.#departed, worker.lastReport], {
      gauges: false,
      ...(only === undefined ? {} : { only }),
    });
  }

  #rotateTickets(): void {
    this.#ticketKeys = randomBytes(TICKET_KEY_BYTES);
    const keys = this.#ticketKeys.toString('base64');
    for (const worker of this.#others(undefined)) worker.send({ type: 'tickets', keys });
    this.#log({ event: 'ticket_keys_rotated' });
  }

  #onExit(slot: number, worker: Worker, code: number | null, signal: string | null): void {
    if (this.#draining.delete(worker)) {
      this.#record({
        type: 'worker_drained',
        pid: worker.pid,
        ms: Date.now() - worker.since,
        forced: code !== 0,
      });
      return;
    }
    // A new worker of a handover that died before serving: the handover reports it.
    if (this.#incoming.get(slot) === worker || this.#slots[slot] !== worker) return;
    this.#slots[slot] = undefined;
    if (this.#stopping) return;
    const upMs = Date.now() - worker.startedAt;
    const backoff = this.#options.backoff ?? KEEPER_BACKOFF;
    this.#failures[slot] = nextFailureCount(this.#failures[slot]!, upMs, backoff);
    // A handover in progress brings a new worker for this slot anyway.
    const restartInMs = this.#incoming.has(slot) ? 0 : backoffDelay(this.#failures[slot]!, backoff);
    this.#crashes++;
    const crashed = this.#record({
      type: 'worker_crashed',
      pid: worker.pid,
      code,
      signal,
      upMs,
      restartInMs,
    });
    if (this.#incoming.has(slot)) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      void this.#replaceCrashed(slot, worker.pid, crashed.at);
    }, restartInMs);
    this.#timers.add(timer);
  }

  async #replaceCrashed(slot: number, replaced: number, crashedAt: number): Promise<void> {
    if (this.#stopping || this.#slots[slot] !== undefined) return;
    const worker = this.#spawn(slot);
    this.#slots[slot] = worker;
    try {
      await worker.ready(this.#options.readyTimeoutMs ?? 15_000);
    } catch (error) {
      // It died (its exit schedules the next try, with backoff) or hangs: kill it, and the exit does the same.
      this.#log({ event: 'worker_not_ready', pid: worker.pid, error: (error as Error).message });
      worker.kill();
      return;
    }
    this.#served(worker, 'crash', replaced, Date.now() - crashedAt);
  }

  async #handOver(slot: number): Promise<void> {
    const old = this.#slots[slot];
    if (old === undefined || old.state !== 'serving') return; // being replaced after a crash already
    // The old worker stops taking admin requests first, so that no route change reaches it after the new worker
    // has loaded the persisted table; admin requests wait in the backlog meanwhile (a few hundred ms).
    const wasAdmin = old.admin;
    if (wasAdmin) {
      await old.releaseAdmin(5000).catch(() => undefined);
      old.admin = false;
    }
    const fresh = this.#spawn(slot);
    this.#incoming.set(slot, fresh);
    this.#publish();
    try {
      await fresh.ready(this.#options.readyTimeoutMs ?? 15_000);
    } catch (error) {
      this.#incoming.delete(slot);
      fresh.kill();
      this.#record({ type: 'restart_failed', pid: fresh.pid, error: (error as Error).message });
      if (this.#slots[slot] === old && wasAdmin) {
        old.admin = true;
        old.send({ type: 'listen', name: 'admin' }, this.#handles.admin);
      } else if (this.#slots[slot] === undefined) void this.#replaceCrashed(slot, old.pid, Date.now());
      return;
    }
    this.#incoming.delete(slot);
    this.#slots[slot] = fresh;
    this.#restarts++;
    this.#served(fresh, 'restart', old.pid, null);
    if (old.state === 'serving') {
      this.#draining.add(old);
      this.#publish();
      void old.drain(this.#options.drainMs + DRAIN_MARGIN_MS);
    }
  }

  #served(
    worker: Worker,
    reason: 'start' | 'crash' | 'restart',
    replaced: number | null,
    downMs: number | null,
  ) {
    this.#record({
      type: 'worker_started',
      pid: worker.pid,
      reason,
      readyMs: worker.since - worker.startedAt,
      replaced,
      downMs,
    });
  }

  #record(entry: DistributiveOmit<KeeperEntry, 'seq' | 'at'>): KeeperEntry {
    const full = { ...entry, seq: ++this.#seq, at: Date.now() } as KeeperEntry;
    this.#journal.push(full);
    if (this.#journal.length > JOURNAL_SIZE) this.#journal.shift();
    this.#log({ event: full.type, ...full });
    this.#publish();
    return full;
  }

  /** Every worker gets the keeper's status when it changes (the admin worker serves it on `GET /health`). */
  #publish(): void {
    const status = this.status();
    for (const worker of [...this.#slots, ...this.#incoming.values()]) {
      if (worker?.state === 'serving') worker.send({ type: 'status', status });
    }
  }

  #log(event: Record<string, unknown>): void {
    this.#options.log?.({ time: new Date().toISOString(), ...event });
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

interface WorkerEvents {
  onHello(): void;
  onRestart(): void;
  onMessage(message: FromWorker): void;
  onExit(code: number | null, signal: string | null): void;
}

/** One worker process and the keeper's side of its IPC channel. */
class Worker {
  /** It serves the admin API and is the authority on target health (the old one of a handover no longer is). */
  admin: boolean;
  /** Its counters, as last reported. */
  lastReport: WorkerMetrics | undefined;
  readonly startedAt = Date.now();
  state: KeeperWorkerState = 'starting';
  /** When it entered its current state. */
  since = Date.now();
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  readonly #waiting = new Map<FromWorker['type'], () => void>();
  #exitReason: Error | undefined;

  constructor(argv: string[], admin: boolean, events: WorkerEvents) {
    this.admin = admin;
    const [file, ...args] = argv;
    // Same process group as the keeper: a service manager's stop reaches the workers too, and they drain.
    this.#child = spawn(file!, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.#child.on('error', () => {
      // A send to a worker that just died: its exit is what counts.
    });
    this.#child.on('message', (message: FromWorker) => {
      if (message.type === 'hello') events.onHello();
      else if (message.type === 'restart') events.onRestart();
      else if (message.type === 'ready') {
        this.state = 'serving';
        this.since = Date.now();
      } else events.onMessage(message);
      this.#waiting.get(message.type)?.();
    });
    this.#exited = new Promise((resolve) => {
      this.#child.once('exit', (code, signal) => {
        this.#exitReason = new Error(
          signal
            ? `worker ${this.pid} was killed by ${signal}`
            : `worker ${this.pid} exited with code ${code}`,
        );
        for (const wake of this.#waiting.values()) wake();
        events.onExit(code, signal);
        resolve();
      });
    });
  }

  get pid(): number {
    return this.#child.pid ?? 0;
  }

  get alive(): boolean {
    return this.#exitReason === undefined && this.#child.connected;
  }

  send(message: ToWorker, handle?: ListenHandle): void {
    if (!this.#child.connected) return;
    // The keeper keeps its own descriptor: a native handle is not closed after sending (only net.Socket's are).
    this.#child.send(message, handle as net.Server | undefined);
  }

  /** Resolves once the worker accepts connections; rejects if it exits first or takes longer than `ms`. */
  ready(ms: number): Promise<void> {
    return this.#next('ready', ms);
  }

  releaseAdmin(ms: number): Promise<void> {
    this.send({ type: 'release-admin' });
    return this.#next('admin-released', ms);
  }

  /** Asks it to stop accepting and finish its requests; SIGKILL after `ms`. Resolves once it has exited. */
  async drain(ms: number): Promise<void> {
    if (this.#exitReason !== undefined) return;
    if (this.state !== 'draining') {
      this.state = 'draining';
      this.since = Date.now();
    }
    this.send({ type: 'drain' });
    if (!this.#child.connected) this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.kill(), ms);
    await this.#exited;
    clearTimeout(timer);
  }

  kill(): void {
    if (this.#exitReason === undefined) this.#child.kill('SIGKILL');
  }

  #next(type: FromWorker['type'], ms: number): Promise<void> {
    if (type === 'ready' && this.state === 'serving') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (error?: Error) => {
        clearTimeout(timer);
        this.#waiting.delete(type);
        if (error) reject(error);
        else resolve();
      };
      const timer = setTimeout(() => done(new Error(`worker ${this.pid}: no ${type} within ${ms}ms`)), ms);
      if (this.#exitReason !== undefined) done(this.#exitReason);
      else this.#waiting.set(type, () => done(this.#exitReason));
    });
  }
}

/** Node's own (undocumented, stable since v0.x: cluster depends on it) way to bind without listening. */
const createServerHandle = (
  net as unknown as {
    _createServerHandle(
      address: string | null,
      port: number,
      addressType: number,
      fd?: number,
    ): ListenHandle | number;
  }
)._createServerHandle;

async function bindAll(options: KeeperOptions): Promise<Record<ListenerName, ListenHandle>> {
  const bound: ListenHandle[] = [];
  try {
    const http = await bindTcp(options.http.host, options.http.port, 'HTTP');
    bound.push(http);
    const https = await bindTcp(options.https.host, options.https.port, 'HTTPS');
    bound.push(https);
    // The keeper's lock on the data dir makes it the only one here: a socket file left by a dead keeper goes.
    rmSync(options.adminSocket, { force: true });
    const admin = check(
      createServerHandle(options.adminSocket, -1, -1),
      `the admin socket ${options.adminSocket}`,
    );
    // Owner only; nobody can connect before a worker listens, so the moment between bind and chmod is safe.
    chmodSync(options.adminSocket, 0o600);
    return { http, https, admin };
  } catch (error) {
    for (const handle of bound) handle.close();
    throw error;
  }
}

/** Binds (with `SO_REUSEADDR`, as node's servers do); a port still held by a worker of a dead keeper is retried. */
async function bindTcp(host: string | undefined, port: number, what: string): Promise<ListenHandle> {
  let address: string | null = host ?? null;
  let family = host === undefined ? 4 : net.isIP(host);
  if (host !== undefined && family === 0) {
    const found = await lookup(host);
    address = found.address;
    family = found.family;
  }
  const deadline = Date.now() + 3000;
  for (;;) {
    const handle = createServerHandle(address, port, family);
    if (typeof handle !== 'number' || getSystemErrorName(handle) !== 'EADDRINUSE' || Date.now() > deadline) {
      return check(handle, `the ${what} port ${host ?? '*'}:${port}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function check(handle: ListenHandle | number, what: string): ListenHandle {
  if (typeof handle !== 'number') return handle;
  const name = getSystemErrorName(handle);
  const hint =
    name === 'EADDRINUSE'
      ? ' (in use by another program)'
      : name === 'EACCES'
        ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)'
        : '';
  throw new KeeperError(`cannot bind ${what}: ${name}${hint}`);
}

function portOf(handle: ListenHandle): number {
  const out: { port?: number } = {};
  (handle as unknown as { getsockname(out: object): number }).getsockname(out);
  return out.port ?? 0;
}
