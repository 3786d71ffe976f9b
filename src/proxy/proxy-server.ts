// The proxy: listeners, the swappable route table, target groups, events and metrics, wired together.
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { BerthError } from '../domain/errors.js';
import {
  type MetricsResponse,
  parseRouteTable,
  parseTarget,
  type RouteTable,
  type TargetHealth,
  type TargetStatus,
} from '../domain/route-table.js';
import type { AccessLog } from './access-log.js';
import { CertificateStore } from './certificate-store.js';
import { ClientConnection, type ListenerInfo, type ProxyContext } from './client-connection.js';
import { DEFAULT_PORTS } from './default-ports.js';
import { EventLog } from './event-log.js';
import { type HealthProbe, httpProbe } from './health-check.js';
import { LocalCa } from './local-ca.js';
import { Metrics, type RawMetrics } from './metrics.js';
import { DEFAULT_MAX_HEAD_BYTES } from './request-head.js';
import { RouteTableStore } from './route-table-store.js';
import { Router } from './router.js';
import { StickyCookie } from './sticky-cookie.js';
import { POOL_DEFAULTS, type Target } from './target.js';
import { TargetGroup, type TargetGroupListener } from './target-group.js';
import { sumWorkerMetrics, type WorkerMetrics } from './worker-metrics.js';

/** Options of a proxy server; defaults are what `berth up` uses. */
export interface ProxyServerOptions {
  /** The proxy's state directory (`<data-dir>/proxy`): route-table.json, ca/, certs/. */
  stateDir: string;
  /** Plain HTTP listener port (0 = any free port). Default 8080. */
  httpPort?: number;
  /** TLS listener port (0 = any free port). Default 8443. */
  httpsPort?: number;
  /** Address to listen on; default all interfaces. */
  host?: string;
  /**
   * Bound socket handles to listen on instead of binding `httpPort`/`httpsPort` (a keeper owns them and passes
   * them over IPC; see `src/proxy/keeper.ts`).
   */
  listeners?: { http: object; https: object };
  /** Plain HTTP redirects to HTTPS (except reserved paths). Default true; false serves routes over HTTP too. */
  redirectHttp?: boolean;
  /** Client keep-alive idle timeout. Default 60 s (ALB's idle timeout). */
  clientIdleTimeoutMs?: number;
  /** Largest request head accepted and forwarded (431 above), and largest response head. Default 16 KiB. */
  maxHeadBytes?: number;
  /**
   * Addresses or CIDR blocks (`10.0.0.0/8`, `::1`) of proxies in front of this one: their X-Forwarded-* /
   * Forwarded / X-Real-IP headers are passed on. Anybody else's are dropped. Default: none.
   */
  trustedProxies?: readonly string[];
  accessLog?: AccessLog;
  /** Health probe; the default makes real HTTP requests. */
  probe?: HealthProbe;
  openssl?: string;
  /** TLS session ticket keys (48 bytes), shared by every worker so that any of them resumes any session. */
  ticketKeys?: Buffer;
  /** Set when this proxy is one of several workers on the same listeners (see `keeper.ts`). */
  workers?: ProxyWorkers;
}

/**
 * How one worker of several stands with the others. The authority (the worker that serves the admin API) is the
 * one place where target health is checked and routes are changed and persisted; it publishes that shared state
 * and the followers adopt it, so the control plane sees one proxy.
 */
export interface ProxyWorkers {
  role: 'authority' | 'follower';
  /** Authority: the other workers (pids); a target drains once each has said it is done with it. */
  peers(): readonly number[];
  /** Authority: the shared state changed; publish `sharedState()` to the followers. */
  onSharedChange(): void;
  /**
   * Authority: resolves once every other serving worker has adopted the shared state as it is now (or after a
   * bound, should one not answer): a change the admin API acknowledged is then served by every worker.
   */
  settled(): Promise<void>;
  /** Follower: a connection to a target failed while serving; the authority decides about its health. */
  onPassiveFailure(targetGroup: string, target: string, reason: string): void;
  /** A draining target has nothing in flight here any more. */
  onDrained(targetGroup: string, target: string): void;
}

/** What the authority worker publishes and the followers adopt: routes, targets with their health, drains. */
export interface SharedProxyState {
  table: RouteTable;
  /**
   * Each active target's health as the authority decided it, and when its grace period ends (epoch ms): a new
   * target still booting takes no traffic on any worker, a restored one serves failing open on every worker.
   */
  health: {
    targetGroup: string;
    target: string;
    health: TargetHealth;
    reason: string;
    graceEndsAt: number;
  }[];
  draining: { targetGroup: string; target: string }[];
}

/** How long, and how many, drained targets' final counters stay in `metrics()` for the control plane to read. */
const DRAINED_COUNTERS_MS = 5 * 60_000;
const DRAINED_COUNTERS_MAX = 1000;

/** Everything the admin API drives. */
export class ProxyServer {
  readonly events = new EventLog();
  readonly #options: ProxyServerOptions;
  readonly #store: RouteTableStore;
  readonly #certs: CertificateStore;
  readonly #groups = new Map<string, TargetGroup>();
  readonly #retired = new Set<TargetGroup>();
  /**
   * Final counters of targets drained lately, by `group/id`, oldest first: the control plane reads counters every
   * few seconds, and a target (or a whole retired group) that drains between two reads must still be counted.
   */
  readonly #recentlyDrained = new Map<string, { status: TargetStatus; raw: RawMetrics; at: number }>();
  readonly #ctx: ProxyContext;
  #table: RouteTable;
  #http: net.Server | undefined;
  #https: tls.Server | undefined;
  #sweep: NodeJS.Timeout | undefined;
  #ports = { http: 0, https: 0 };
  readonly #listener: TargetGroupListener;
  readonly #workers: ProxyWorkers | undefined;
  /** Follower: the route table last adopted, as JSON (a health change alone does not rebuild the routes). */
  #adoptedTable = '';
  #sticky: StickyCookie | undefined;

  private constructor(options: ProxyServerOptions) {
    this.#options = options;
    this.#workers = options.workers;
    this.#store = new RouteTableStore(join(options.stateDir, 'route-table.json'));
    this.#certs = new CertificateStore(
      new LocalCa(join(options.stateDir, 'ca'), options.openssl),
      join(options.stateDir, 'certs'),
      { servesHost: (host) => this.#ctx.router.servesHost(host) },
    );
    this.#table = parseRouteTable({});
    this.#ctx = {
      router: new Router([], this.#groups),
      reservedPathPrefixes: this.#table.reservedPathPrefixes,
      challenges: new Map(),
      accessLog: options.accessLog,
      unrouted: { notFound: 0, redirected: 0, challenges: 0 },
      stopping: false,
      connections: new Set(),
      maxHeadBytes: options.maxHeadBytes ?? DEFAULT_MAX_HEAD_BYTES,
      trustedProxies:
        options.trustedProxies === undefined || options.trustedProxies.length === 0
          ? undefined
          : trustedProxyList(options.trustedProxies),
    };
    this.#listener = {
      onHealthChange: (target, change) => {
        // A follower checks nothing itself: a change here is a passive failure, for the authority to decide.
        if (this.#workers?.role === 'follower') {
          this.#workers.onPassiveFailure(target.groupName, target.id, change.reason);
          return;
        }
        this.#workers?.onSharedChange();
        this.events.append({
          type: 'target_health',
          targetGroup: target.groupName,
          target: target.id,
          from: change.from,
          to: change.to,
          reason: change.reason,
        });
      },
      onDrained: (target, forced) => {
        this.#rememberDrained(target);
        this.events.append({
          type: 'target_drained',
          targetGroup: target.groupName,
          target: target.id,
          forced,
        });
        this.#workers?.onDrained(target.groupName, target.id);
        this.#workers?.onSharedChange();
        for (const group of this.#retired) {
          if (group.targets().length === 0) {
            group.close();
            this.#retired.delete(group);
          }
        }
      },
    };
  }

  /** The sticky-cookie key, read (or made) once, when a route first asks for stickiness. */
  #stickyCookie(): StickyCookie {
    if (this.#sticky === undefined) {
      mkdirSync(this.#options.stateDir, { recursive: true, mode: 0o700 });
      this.#sticky = StickyCookie.fromFile(join(this.#options.stateDir, 'sticky-cookie.key'));
    }
    return this.#sticky;
  }

  /** Loads the persisted route table, creates the local CA if needed, and starts listening. */
  static async start(options: ProxyServerOptions): Promise<ProxyServer> {
    const server = new ProxyServer(options);
    await server.#certs.init();
    const persisted = server.#store.load();
    if (persisted !== undefined) {
      try {
        await server.#apply(persisted, false);
      } catch (err) {
        // Certificate files that vanished must not keep the proxy down: serve the routes with the local CA's
        // certificates and say so.
        if (!(err instanceof BerthError) || persisted.certificates.length === 0) throw err;
        process.stderr.write(`${JSON.stringify({ event: 'certificates_skipped', error: err.toJSON() })}\n`);
        await server.#apply({ ...persisted, certificates: [] }, false);
        server.#table = persisted; // keep them configured: the next PUT or restart tries them again
      }
    }
    await server.#listen();
    const clientIdleMs = options.clientIdleTimeoutMs ?? 60_000;
    let ticks = 0;
    // One sweep instead of a timer per request: response timeouts and idle clients every 100 ms, pools every 500 ms.
    server.#sweep = setInterval(() => {
      const now = performance.now();
      for (const conn of server.#ctx.connections) conn.checkTimers(now, clientIdleMs);
      if (++ticks % 5 === 0) {
        for (const group of server.#groups.values()) group.expireIdle(now, POOL_DEFAULTS.idleTimeoutMs);
      }
    }, 100);
    server.#sweep.unref();
    return server;
  }

  get ports(): { http: number; https: number } {
    return { ...this.#ports };
  }

  get caCertPath(): string {
    return join(this.#options.stateDir, 'ca', 'ca.crt');
  }

  async #listen(): Promise<void> {
    const redirect = this.#options.redirectHttp ?? true;
    const httpInfo: ListenerInfo = { proto: 'http', port: 0, redirect, httpsPort: 0 };
    const httpsInfo: ListenerInfo = { proto: 'https', port: 0, redirect: false, httpsPort: 0 };
    // noDelay here, not per socket: the server sets it on each accepted handle (one setsockopt, no JS call).
    const http = net.createServer({ noDelay: true }, (socket) => {
      new ClientConnection(socket, this.#ctx, httpInfo);
    });
    const pem = this.#certs.defaultPem;
    const https = tls.createServer(
      {
        cert: pem.cert,
        key: pem.key,
        SNICallback: this.#certs.sniCallback,
        ALPNProtocols: ['http/1.1'],
        noDelay: true,
        ...(this.#options.ticketKeys === undefined ? {} : { ticketKeys: this.#options.ticketKeys }),
      },
      (socket) => {
        new ClientConnection(socket, this.#ctx, httpsInfo);
      },
    );
    https.on('tlsClientError', () => {});
    const { host, listeners } = this.#options;
    await listen(http, listeners?.http ?? { port: this.#options.httpPort ?? DEFAULT_PORTS.http, host });
    await listen(https, listeners?.https ?? { port: this.#options.httpsPort ?? DEFAULT_PORTS.https, host });
    this.#ports = {
      http: (http.address() as net.AddressInfo).port,
      https: (https.address() as net.AddressInfo).port,
    };
    httpInfo.port = this.#ports.http;
    httpInfo.httpsPort = this.#ports.https;
    httpsInfo.port = this.#ports.https;
    httpsInfo.httpsPort = this.#ports.https;
    this.#http = http;
    this.#https = https;
  }

  /** Replaces the TLS session ticket keys (the keeper rotates them for every worker at once). */
  setTicketKeys(keys: Buffer): void {
    this.#https?.setTicketKeys(keys);
  }

  /** Authority: the state every follower adopts (one synchronous read). */
  sharedState(): SharedProxyState {
    const health: SharedProxyState['health'] = [];
    const draining: SharedProxyState['draining'] = [];
    for (const group of [...this.#groups.values(), ...this.#retired]) {
      for (const t of group.targets()) {
        if (t.state === 'active')
          health.push({
            targetGroup: group.name,
            target: t.id,
            health: t.health.state,
            reason: t.health.reason,
            graceEndsAt: t.health.graceEndsAt,
          });
        else draining.push({ targetGroup: group.name, target: t.id });
      }
    }
    return { table: this.routeTable(), health, draining };
  }

  /**
   * Follower: adopts the authority's state. Targets it no longer lists drain here; the draining ones this worker
   * has nothing in flight to are reported done at once.
   */
  adoptShared(state: SharedProxyState): void {
    const json = JSON.stringify(state.table);
    if (json !== this.#adoptedTable) {
      try {
        // Not `restored`: a target new to this worker is whatever the authority says it is (below).
        this.#applyNow(state.table, false);
      } catch (err) {
        process.stderr.write(
          `${JSON.stringify({ event: 'shared_state_refused', error: err instanceof Error ? err.message : String(err) })}\n`,
        );
        this.#applyNow({ ...state.table, certificates: [] }, false);
      }
      this.#adoptedTable = json;
    }
    for (const h of state.health)
      this.#groups.get(h.targetGroup)?.adoptHealth(h.target, h.health, h.reason, h.graceEndsAt);
    for (const { targetGroup, target } of state.draining) {
      const group = this.#groups.get(targetGroup) ?? [...this.#retired].find((g) => g.name === targetGroup);
      const status = group?.status(target);
      if (status === undefined || status.state === 'drained') this.#workers?.onDrained(targetGroup, target);
    }
  }

  /** Authority: another worker is done with a draining target. */
  peerDrained(targetGroup: string, target: string, worker: number): void {
    for (const t of this.#drainingTargets()) {
      if (t.groupName === targetGroup && t.id === target) t.releaseHold(worker);
    }
  }

  /** Authority: only these workers are left; drains stop waiting for the others. */
  peersLeft(live: readonly number[]): void {
    const alive = new Set(live);
    for (const t of this.#drainingTargets())
      for (const pid of t.heldBy) if (!alive.has(pid)) t.releaseHold(pid);
  }

  /** Authority: a follower saw a connection to a target fail while serving. */
  peerFailure(targetGroup: string, target: string, reason: string): void {
    const group = this.#groups.get(targetGroup);
    const t = group?.get(target);
    if (group !== undefined && t !== undefined) group.markFailing(t, reason);
  }

  #drainingTargets(): Target[] {
    return [...this.#groups.values(), ...this.#retired].flatMap((g) =>
      g.targets().filter((t) => t.state === 'draining'),
    );
  }

  /** Validates, applies atomically and persists a whole route table. Throws `BerthError('invalid_route_table')`. */
  async applyRouteTable(input: unknown): Promise<RouteTable> {
    const table = parseRouteTable(input);
    await this.#apply(table, true);
    await this.#workers?.settled();
    return this.routeTable();
  }

  async #apply(table: RouteTable, persist: boolean): Promise<void> {
    this.#applyNow(table, !persist);
    if (persist) await this.#store.save(this.routeTable());
  }

  /** Swaps the route table in (synchronously: no request sees half of it). */
  #applyNow(table: RouteTable, restored = true): void {
    const follower = this.#workers?.role === 'follower';
    // The parts that can still fail first (the sticky key's file, certificates): then nothing has changed.
    const sticky = table.routes.some((r) => r.stickiness !== undefined) ? this.#stickyCookie() : undefined;
    this.#certs.replace(table.certificates);
    const wanted = new Set(table.targetGroups.map((g) => g.name));
    for (const config of table.targetGroups) {
      const existing = this.#groups.get(config.name);
      if (existing !== undefined) existing.reconfigure(config);
      else {
        this.#groups.set(
          config.name,
          // At start (`persist` false) the targets are the persisted ones: they were serving before the restart.
          new TargetGroup(config, {
            probe: this.#options.probe ?? httpProbe,
            listener: this.#listener,
            restored,
            activeChecks: !follower,
            holders: follower ? undefined : () => this.#workers?.peers() ?? [],
          }),
        );
      }
    }
    for (const [name, group] of [...this.#groups]) {
      if (wanted.has(name)) continue;
      this.#groups.delete(name);
      for (const target of group.targets()) if (target.state === 'active') group.deregister(target.id);
      this.#retired.add(group);
      if (group.targets().length === 0) {
        group.close();
        this.#retired.delete(group);
      }
    }
    this.#table = table;
    // The swap: requests that start from now on see the new routes; requests in flight keep their targets.
    this.#ctx.router = new Router(table.routes, this.#groups, sticky);
    this.#ctx.reservedPathPrefixes = table.reservedPathPrefixes;
    this.#ctx.challenges = new Map(table.challenges.map((c) => [c.token, c]));
    this.events.append({
      type: 'route_table_applied',
      routes: table.routes.length,
      targetGroups: table.targetGroups.length,
    });
    this.#workers?.onSharedChange();
  }

  /** The current table, with each group's current targets. */
  routeTable(): RouteTable {
    return {
      ...this.#table,
      targetGroups: this.#table.targetGroups.map((g) => this.#groups.get(g.name)?.toConfig() ?? g),
    };
  }

  #group(name: string): TargetGroup {
    const group = this.#groups.get(name);
    if (group === undefined) throw new BerthError('not_found', `target group "${name}" does not exist`);
    return group;
  }

  /** Registers (or re-weights) a target; it gets traffic once its first health check passes. */
  async registerTarget(groupName: string, id: string, input: unknown): Promise<TargetStatus> {
    const group = this.#group(groupName);
    const config = parseTarget({ ...(typeof input === 'object' && input !== null ? input : {}), id });
    const target = group.register(config);
    this.#workers?.onSharedChange();
    await this.#store.save(this.routeTable());
    await this.#workers?.settled();
    return target.toStatus();
  }

  /** Sets a target's weight (0 = no new requests, still healthy-checked). */
  async setWeight(groupName: string, id: string, weight: unknown): Promise<TargetStatus> {
    const group = this.#group(groupName);
    if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0 || weight > 1000) {
      throw new BerthError('invalid_request', 'invalid weight', {
        issues: [{ path: 'weight', message: 'must be an integer from 0 to 1000' }],
      });
    }
    if (!group.setWeight(id, weight)) throw new BerthError('not_found', `target "${id}" is not registered`);
    this.#workers?.onSharedChange();
    await this.#store.save(this.routeTable());
    await this.#workers?.settled();
    return group.status(id)!;
  }

  /** Deregisters: no new requests from now; `state` becomes `drained` when in-flight work is done. */
  async deregisterTarget(groupName: string, id: string): Promise<TargetStatus> {
    const group = this.#group(groupName);
    const target = group.deregister(id);
    if (target === undefined) {
      const known = group.status(id);
      if (known !== undefined) return known;
      throw new BerthError('not_found', `target "${id}" is not registered`);
    }
    this.#workers?.onSharedChange();
    await this.#store.save(this.routeTable());
    await this.#workers?.settled();
    return group.status(id)!;
  }

  targetStatus(groupName: string, id: string): TargetStatus {
    const status = this.#group(groupName).status(id);
    if (status === undefined) throw new BerthError('not_found', `target "${id}" is not registered`);
    return status;
  }

  /** Waits until the target is drained (or gone), up to `waitMs`. */
  async waitDrained(groupName: string, id: string, waitMs: number): Promise<TargetStatus> {
    const deadline = Date.now() + waitMs;
    let after = this.events.lastSeq;
    for (;;) {
      const status = this.targetStatus(groupName, id);
      const left = deadline - Date.now();
      if (status.state === 'drained' || left <= 0) return status;
      const { lastSeq } = await this.events.wait(after, left);
      after = lastSeq;
    }
  }

  /**
   * Active and draining targets of one group, or of all groups. `others`: what the other workers counted, added
   * to each target's counters.
   */
  listTargets(groupName?: string, others?: WorkerMetrics): TargetStatus[] {
    const groups =
      groupName === undefined ? [...this.#groups.values(), ...this.#retired] : [this.#group(groupName)];
    return groups.flatMap((g) =>
      g.targets().map((t: Target) => {
        const status = t.toStatus();
        const raw = others?.groups[g.name]?.targets[t.id];
        if (raw === undefined) return status;
        const sum = new Metrics();
        sum.add(t.metrics);
        sum.addRaw(raw);
        const counters = sum.toJSON();
        return { ...status, inFlight: counters.inFlight, counters };
      }),
    );
  }

  #rememberDrained(target: Target): void {
    const now = Date.now();
    const key = `${target.groupName}/${target.id}`;
    this.#recentlyDrained.delete(key);
    this.#recentlyDrained.set(key, { status: target.toStatus(), raw: target.metrics.toRaw(), at: now });
    for (const [oldKey, entry] of this.#recentlyDrained) {
      if (now - entry.at <= DRAINED_COUNTERS_MS && this.#recentlyDrained.size <= DRAINED_COUNTERS_MAX) break;
      this.#recentlyDrained.delete(oldKey);
    }
  }

  /** This worker's own counters, as plain data (what it reports to the keeper), recently drained targets included. */
  workerMetrics(): WorkerMetrics {
    const out: WorkerMetrics = { groups: {}, drained: {}, unrouted: { ...this.#ctx.unrouted } };
    for (const group of [...this.#groups.values(), ...this.#retired]) {
      if (out.groups[group.name] !== undefined) continue; // a retired group of a name in use again
      const targets: WorkerMetrics['groups'][string]['targets'] = {};
      for (const t of group.targets()) targets[t.id] = t.metrics.toRaw();
      out.groups[group.name] = { group: group.metrics.toRaw(), targets };
    }
    const cutoff = Date.now() - DRAINED_COUNTERS_MS;
    for (const [key, { raw, at }] of this.#recentlyDrained) if (at >= cutoff) out.drained[key] = raw;
    return out;
  }

  /**
   * Counters of every group and target, including targets drained in the last few minutes (their final values);
   * `others`: what the other workers counted, added in.
   */
  metrics(others?: WorkerMetrics): MetricsResponse {
    const all = sumWorkerMetrics(
      others === undefined ? [this.workerMetrics()] : [this.workerMetrics(), others],
    );
    const total = new Metrics();
    const targetGroups: MetricsResponse['targetGroups'] = {};
    for (const [name, counted] of Object.entries(all.groups)) {
      const sum = new Metrics();
      sum.addRaw(counted.group);
      for (const raw of Object.values(counted.targets)) sum.addRaw(raw);
      targetGroups[name] = sum.toJSON();
      total.add(sum);
    }
    const targets = this.listTargets(undefined, others);
    const listed = new Set(targets.map((t) => `${t.targetGroup}/${t.id}`));
    const cutoff = Date.now() - DRAINED_COUNTERS_MS;
    for (const [key, { status, at }] of this.#recentlyDrained) {
      if (at < cutoff || listed.has(key)) continue;
      // Every worker's final counts of it: a drain completes only once every worker is done with the target.
      const counted = all.drained[key];
      if (counted === undefined) {
        targets.push(status);
        continue;
      }
      const sum = new Metrics();
      sum.addRaw(counted);
      targets.push({ ...status, counters: sum.toJSON() });
    }
    return {
      total: total.toJSON(),
      targetGroups,
      targets,
      unrouted: all.unrouted,
    };
  }

  /**
   * Graceful stop: stop accepting, let in-flight exchanges finish, then close what is left after `drainMs`. Every
   * response from now on says `Connection: close`. An idle keep-alive connection is not closed: a client may be
   * sending its next request on it at that very instant, and would get a reset instead of an answer. It stays until
   * the client uses it once more (answered, with `Connection: close`), closes it, or `drainMs` runs out.
   */
  async close(drainMs = 10_000): Promise<void> {
    this.#ctx.stopping = true;
    const closing = [closeServer(this.#http), closeServer(this.#https)];
    const deadline = Date.now() + drainMs;
    // The sweep goes on meanwhile: response timeouts, and the usual idle timeout.
    while (this.#ctx.connections.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    clearInterval(this.#sweep);
    for (const conn of [...this.#ctx.connections]) conn.socket.destroy();
    await Promise.all(closing);
    for (const group of [...this.#groups.values(), ...this.#retired]) group.close();
    this.events.wakeAll();
    await this.#options.accessLog?.close();
  }
}

/**
 * A block list of trusted proxy addresses from `10.0.0.0/8`, `192.0.2.7`, `::1`, `fd00::/8` entries. Throws
 * `BerthError('invalid_request')` naming each entry that is not one.
 */
export function trustedProxyList(entries: readonly string[]): net.BlockList {
  const list = new net.BlockList();
  const issues: { path: string; message: string }[] = [];
  entries.forEach((entry, i) => {
    const [address = '', prefix, extra] = entry.trim().split('/');
    const type = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : undefined;
    const bits = prefix === undefined ? undefined : Number(prefix);
    const max = type === 'ipv4' ? 32 : 128;
    if (
      type === undefined ||
      extra !== undefined ||
      (bits !== undefined && (!/^\d{1,3}$/.test(prefix!) || bits > max))
    ) {
      issues.push({ path: `trustedProxies.${i}`, message: `"${entry}" is not an IP address or CIDR block` });
      return;
    }
    if (bits === undefined) list.addAddress(address, type);
    else list.addSubnet(address, bits, type);
  });
  if (issues.length > 0) throw new BerthError('invalid_request', 'invalid trusted proxies', { issues });
  return list;
}

function listen(server: net.Server, on: object): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(on, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function closeServer(server: net.Server | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (server === undefined || !server.listening) resolve();
    else server.close(() => resolve());
  });
}
