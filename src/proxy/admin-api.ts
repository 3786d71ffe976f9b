// The admin API: JSON over HTTP on a unix socket with owner-only permissions; the control plane's only way in.
import { chmod, rm } from 'node:fs/promises';
import http from 'node:http';
import { BerthError, httpStatusOf } from '../domain/errors.js';
import type { KeeperStatus, ProxyHealth } from '../domain/proxy-keeper.js';
import type {
  TargetHealthChange,
  TargetHealthChanges,
  TargetHealthSnapshot,
} from '../domain/target-health.js';
import type { ProxyServer } from './proxy-server.js';
import type { WorkerMetrics } from './worker-metrics.js';

/** The worker's line to its keeper, when it has one. */
export interface KeeperLink {
  /** The keeper's latest status (null until it sent one). */
  status(): KeeperStatus | null;
  /** Asks the keeper to hand over to a new worker. */
  restart(): void;
  /** What the other workers (and workers gone) counted, summed; `own` is this worker's, for the keeper to keep. */
  collect(own: WorkerMetrics): Promise<WorkerMetrics>;
}

const MAX_BODY = 16 * 1024 * 1024;
const MAX_WAIT_MS = 60_000;

/**
 * Routes (all JSON):
 *   GET    /health                                   → ProxyHealth { ok, pid, ports, keeper }
 *   POST   /keeper/restart                           → 202 { restarting: true, pid } (409 without a keeper)
 *   GET    /route-table                              → RouteTable (with current targets)
 *   PUT    /route-table                              → RouteTable; 400 invalid_route_table with issues
 *   GET    /targets                                  → TargetStatus[] (every group)
 *   GET    /target-groups/:group/targets             → TargetStatus[]
 *   PUT    /target-groups/:group/targets/:id         { host, port, weight? } → TargetStatus (register)
 *   PATCH  /target-groups/:group/targets/:id         { weight } → TargetStatus
 *   DELETE /target-groups/:group/targets/:id         → TargetStatus (state draining, or drained)
 *   GET    /target-groups/:group/targets/:id[?waitDrained=ms] → TargetStatus
 *   GET    /metrics                                  → MetricsResponse
 *   GET    /events?after=N[&wait=ms]                 → EventsResponse
 *   GET    /target-health                            → TargetHealthSnapshot (every target's health, lastSeq)
 *   GET    /target-health?after=N[&wait=ms]          → TargetHealthChanges (transitions after N, long-poll)
 */
export class AdminApi {
  readonly #proxy: ProxyServer;
  readonly #server: http.Server;
  readonly #aborts = new Set<AbortController>();
  readonly #keeper: KeeperLink | undefined;
  /** Requests that change state, in flight: a handover waits for them (see `stopAccepting`). */
  #changing = 0;
  #changed: (() => void) | undefined;
  #path = '';

  constructor(proxy: ProxyServer, options: { keeper?: KeeperLink } = {}) {
    this.#proxy = proxy;
    this.#keeper = options.keeper;
    this.#server = http.createServer((req, res) => {
      const changes = req.method !== 'GET';
      if (changes) this.#changing++;
      this.#handle(req, res)
        .catch((err: unknown) => sendError(res, err))
        .finally(() => {
          if (changes && --this.#changing === 0) this.#changed?.();
        });
    });
  }

  /**
   * Listens on `path` (a stale socket file is removed first) and restricts it to the owner, or on a socket a
   * keeper bound and passed (`{ handle }`), which it owns.
   */
  async listen(on: string | { handle: object }): Promise<void> {
    if (typeof on === 'string') await rm(on, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(on, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    if (typeof on === 'string') {
      await chmod(on, 0o600);
      this.#path = on;
    }
  }

  /**
   * A handover: stops accepting (new requests wait in the socket's backlog for the next worker), answers the
   * event long-polls now, and resolves once no state-changing request is in flight, so that the next worker loads
   * the final persisted state. Reads in flight (a `waitDrained`) are answered here as they end.
   */
  async stopAccepting(): Promise<void> {
    this.#server.close();
    for (const abort of this.#aborts) abort.abort();
    if (this.#changing > 0) await new Promise<void>((resolve) => (this.#changed = resolve));
    this.#changed = undefined;
  }

  async close(): Promise<void> {
    for (const abort of this.#aborts) abort.abort();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    if (this.#path !== '') await rm(this.#path, { force: true });
  }

  /** What the proxy's other workers counted (nothing without a keeper): the admin API answers for all of them. */
  async #others(): Promise<WorkerMetrics | undefined> {
    return this.#keeper?.collect(this.#proxy.workerMetrics());
  }

  /** The health transitions after `after`, waiting up to `wait` for one: the control plane's health stream. */
  async #healthChanges(url: URL, res: http.ServerResponse): Promise<TargetHealthChanges> {
    const after = intParam(url, 'after', 0);
    const wait = Math.min(intParam(url, 'wait', 0), MAX_WAIT_MS);
    const abort = new AbortController();
    this.#aborts.add(abort);
    res.on('close', () => abort.abort());
    try {
      const { events, lastSeq, truncated, epoch } = await this.#proxy.events.wait(after, wait, abort.signal);
      const changes: TargetHealthChange[] = [];
      for (const event of events) {
        if (event.type !== 'target_health') continue;
        const { seq, targetGroup, target, from, to, reason } = event;
        changes.push({ seq, targetGroup, target, from, to, reason });
      }
      return { epoch, lastSeq, truncated, changes };
    } finally {
      this.#aborts.delete(abort);
    }
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const parts = url.pathname
      .split('/')
      .filter((p) => p !== '')
      .map(decodeURIComponent);
    const method = req.method ?? 'GET';
    const proxy = this.#proxy;
    const [p0, p1, p2, p3] = parts;

    if (parts.length === 1 && p0 === 'health' && method === 'GET') {
      const health: ProxyHealth = {
        ok: true,
        pid: process.pid,
        ports: proxy.ports,
        keeper: this.#keeper?.status() ?? null,
      };
      return send(res, 200, health);
    }
    if (parts.length === 2 && p0 === 'keeper' && p1 === 'restart' && method === 'POST') {
      if (this.#keeper === undefined)
        throw new BerthError('conflict', 'this proxy runs without a keeper: restart its process instead');
      this.#keeper.restart();
      return send(res, 202, { restarting: true, pid: process.pid });
    }
    if (parts.length === 1 && p0 === 'route-table') {
      if (method === 'GET') return send(res, 200, proxy.routeTable());
      if (method === 'PUT') return send(res, 200, await proxy.applyRouteTable(await readJson(req)));
    }
    if (parts.length === 1 && p0 === 'targets' && method === 'GET')
      return send(res, 200, proxy.listTargets(undefined, await this.#others()));
    if (parts.length === 1 && p0 === 'metrics' && method === 'GET')
      return send(res, 200, proxy.metrics(await this.#others()));
    if (parts.length === 1 && p0 === 'events' && method === 'GET') {
      const after = intParam(url, 'after', 0);
      const wait = Math.min(intParam(url, 'wait', 0), MAX_WAIT_MS);
      const abort = new AbortController();
      this.#aborts.add(abort);
      res.on('close', () => abort.abort());
      try {
        return send(res, 200, await proxy.events.wait(after, wait, abort.signal));
      } finally {
        this.#aborts.delete(abort);
      }
    }
    if (parts.length === 1 && p0 === 'target-health' && method === 'GET') {
      if (!url.searchParams.has('after')) return send(res, 200, healthSnapshot(proxy));
      return send(res, 200, await this.#healthChanges(url, res));
    }
    if (p0 === 'target-groups' && p1 !== undefined && p2 === 'targets') {
      if (parts.length === 3 && method === 'GET')
        return send(res, 200, proxy.listTargets(p1, await this.#others()));
      if (parts.length === 4 && p3 !== undefined) {
        switch (method) {
          case 'GET': {
            const wait = Math.min(intParam(url, 'waitDrained', 0), MAX_WAIT_MS);
            return send(
              res,
              200,
              wait > 0 ? await proxy.waitDrained(p1, p3, wait) : proxy.targetStatus(p1, p3),
            );
          }
          case 'PUT':
            return send(res, 200, await proxy.registerTarget(p1, p3, await readJson(req)));
          case 'PATCH': {
            const body = await readJson(req);
            const weight =
              typeof body === 'object' && body !== null ? (body as { weight?: unknown }).weight : undefined;
            return send(res, 200, await proxy.setWeight(p1, p3, weight));
          }
          case 'DELETE':
            return send(res, 202, await proxy.deregisterTarget(p1, p3));
        }
      }
    }
    throw new BerthError('not_found', `no admin route ${method} ${url.pathname}`);
  }
}

/** Every target's health, current as of the proxy's last event (one synchronous read: nothing moves meanwhile). */
function healthSnapshot(proxy: ProxyServer): TargetHealthSnapshot {
  return {
    epoch: proxy.events.epoch,
    lastSeq: proxy.events.lastSeq,
    targets: proxy.listTargets().map((t) => ({
      targetGroup: t.targetGroup,
      target: t.id,
      health: t.health,
      reason: t.healthReason,
      state: t.state,
    })),
  };
}

function intParam(url: URL, name: string, fallback: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    throw new BerthError('invalid_request', `query parameter ${name} must be a non-negative integer`, {
      issues: [{ path: name, message: 'must be a non-negative integer' }],
    });
  }
  return n;
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new BerthError('invalid_request', 'request body too large');
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new BerthError('invalid_request', 'request body is not valid JSON');
  }
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: http.ServerResponse, err: unknown): void {
  const error =
    err instanceof BerthError
      ? err
      : new BerthError('internal', err instanceof Error ? err.message : String(err));
  if (res.headersSent) {
    res.destroy();
    return;
  }
  send(res, httpStatusOf(error.code), { error: error.toJSON() });
}
