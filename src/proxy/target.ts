// One registered upstream: address, weight, health, drain state, in-flight leases, metrics and its connection pool.
import { isIP } from 'node:net';
import tls from 'node:tls';
import type {
  HealthCheckConfig,
  OriginConfig,
  TargetConfig,
  TargetState,
  TargetStatus,
} from '../domain/route-table.js';
import { TARGET_LIFECYCLE } from '../domain/target-health.js';
import { HealthCheck } from './health-check.js';
import { Metrics } from './metrics.js';
import { UpstreamConnection } from './upstream-connection.js';

/** Pool limits. The idle timeout stays below Node's default server keepAliveTimeout (5 s) to avoid reuse races. */
export const POOL_DEFAULTS = { maxIdle: 256, idleTimeoutMs: 3000 } as const;

/**
 * A claim on a target, by a request in flight or an upgraded tunnel. `end()` (idempotent) is the only way the
 * target's count goes down, so draining completes exactly when the last lease ends.
 */
export class InFlightLease {
  #end: ((lease: InFlightLease) => void) | null;

  constructor(end: (lease: InFlightLease) => void) {
    this.#end = end;
  }

  get ended(): boolean {
    return this.#end === null;
  }

  end(): void {
    const end = this.#end;
    if (end === null) return;
    this.#end = null;
    end(this);
  }
}

/** TLS to an external origin: SNI and verification against its host name, system CAs plus its own `ca`. */
function originTls(origin: OriginConfig): tls.ConnectionOptions {
  return {
    // SNI takes host names only; an IP address is still verified against the certificate's IP entries.
    ...(isIP(origin.host) === 0 ? { servername: origin.host } : {}),
    checkServerIdentity: (_host, cert) => tls.checkServerIdentity(origin.host, cert),
    // One context per target: `ca` given to each connect would parse every root certificate again each time.
    ...(origin.ca === undefined
      ? {}
      : { secureContext: tls.createSecureContext({ ca: [...tls.rootCertificates, origin.ca] }) }),
    rejectUnauthorized: true,
  };
}

/** A target in a target group. Traffic goes only to `active` targets; see `TargetGroup.candidates`. */
export class Target {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly groupName: string;
  weight: number;
  currentWeight = 0;
  readonly metrics = new Metrics();
  readonly health: HealthCheck;
  /** Open upgraded tunnels, each with how to close it when the drain time is over. */
  readonly #tunnels = new Map<InFlightLease, () => void>();
  #state: TargetState = 'active';
  readonly #idle: UpstreamConnection[] = [];
  readonly #maxIdle: number;
  #onDrained: (() => void) | undefined;
  /** Other proxy workers (pids) that may still have work in flight to this draining target. */
  readonly #heldBy = new Set<number>();
  /** An external origin's TLS settings (SNI, trusted CAs); undefined for plain TCP. */
  readonly tls: tls.ConnectionOptions | undefined;
  /** The newest TLS session ticket an external origin gave, offered by the next connection to it. */
  #tlsSession: Buffer | undefined;
  /** The Host header health checks send: an external origin's own name, else `host:port`. */
  readonly hostHeader: string | undefined;
  /** What the target was made with besides its address: a group whose origin settings change re-creates it. */
  readonly originKey: string;

  constructor(
    groupName: string,
    config: TargetConfig,
    health: HealthCheckConfig,
    checks: { registeredAt?: number; restored?: boolean } = {},
    maxIdle: number = POOL_DEFAULTS.maxIdle,
    origin?: OriginConfig,
  ) {
    this.groupName = groupName;
    this.tls = origin?.tls ? originTls(origin) : undefined;
    this.hostHeader = origin?.host;
    this.originKey = origin === undefined ? '' : JSON.stringify(origin);
    this.id = config.id;
    this.host = config.host;
    this.port = config.port;
    this.weight = config.weight;
    this.health = new HealthCheck(health, checks);
    this.#maxIdle = maxIdle;
  }

  get state(): TargetState {
    return this.#state;
  }

  get inFlight(): number {
    return this.metrics.inFlight;
  }

  /** Open upgraded (tunnelled) connections. */
  get upgraded(): number {
    return this.#tunnels.size;
  }

  /** A request is in flight until the lease ends. */
  lease(): InFlightLease {
    this.metrics.inFlight++;
    return new InFlightLease(this.#endRequest);
  }

  /** An upgraded connection is open until the lease ends; `close` ends it when a drain runs out of time. */
  openTunnel(close: () => void): InFlightLease {
    const lease = new InFlightLease(this.#endTunnel);
    this.#tunnels.set(lease, close);
    return lease;
  }

  /** Closes every open tunnel (a drain ran out of time). */
  closeTunnels(): void {
    for (const close of [...this.#tunnels.values()]) close();
  }

  readonly #endRequest = (): void => {
    this.metrics.inFlight--;
    this.#checkDrained();
  };

  readonly #endTunnel = (lease: InFlightLease): void => {
    this.#tunnels.delete(lease);
    this.#checkDrained();
  };

  /** The one transition method of the lifecycle: active → draining → drained (`TARGET_LIFECYCLE`). */
  transition(to: TargetState): boolean {
    const from = this.#state;
    if (from === to) return false;
    TARGET_LIFECYCLE.assert(this.id, from, to);
    this.#state = to;
    if (to === 'drained') this.closeIdle();
    return true;
  }

  /** Starts draining; `onDrained` runs once nothing is in flight and no upgraded connection is open. */
  drain(onDrained: () => void): void {
    this.transition('draining');
    this.#onDrained = onDrained;
    this.closeIdle();
    this.#checkDrained();
  }

  /** The draining is not over until each of these workers has said it has nothing in flight to this target. */
  holdFor(workers: Iterable<number>): void {
    for (const pid of workers) this.#heldBy.add(pid);
  }

  /** A worker finished its work with this target (or is gone). */
  releaseHold(worker: number): void {
    if (this.#heldBy.delete(worker)) this.#checkDrained();
  }

  /** The workers still holding the drain (see `holdFor`). */
  get heldBy(): readonly number[] {
    return [...this.#heldBy];
  }

  #checkDrained(): void {
    if (
      this.#state !== 'draining' ||
      this.metrics.inFlight > 0 ||
      this.#tunnels.size > 0 ||
      this.#heldBy.size > 0
    )
      return;
    const done = this.#onDrained;
    this.#onDrained = undefined;
    done?.();
  }

  /** A pooled idle connection, or a new one. */
  acquire(): UpstreamConnection {
    while (this.#idle.length > 0) {
      const conn = this.#idle.pop()!;
      if (!conn.closed) return conn;
    }
    return this.acquireFresh();
  }

  /** A new connection, bypassing the pool (upgrades, and retries after a stale pooled connection). */
  acquireFresh(): UpstreamConnection {
    this.metrics.activeConnections++;
    if (this.tls === undefined) return new UpstreamConnection(this.host, this.port, this.#onConnectionClosed);
    // TLS: resume the last session the origin gave (an abbreviated handshake for every new pooled connection).
    const secure = this.#tlsSession === undefined ? this.tls : { ...this.tls, session: this.#tlsSession };
    const conn = new UpstreamConnection(this.host, this.port, this.#onConnectionClosed, secure);
    conn.socket.on('session', (session: Buffer) => {
      this.#tlsSession = session;
    });
    return conn;
  }

  /** Returns a connection after a complete exchange; it is closed instead when the pool is full or draining. */
  release(conn: UpstreamConnection, now: number): void {
    conn.owner = null;
    if (conn.closed) return;
    if (this.#state !== 'active' || this.#idle.length >= this.#maxIdle) {
      conn.destroy();
      return;
    }
    conn.idleSince = now;
    this.#idle.push(conn);
  }

  /** Closes connections idle for longer than `idleTimeoutMs` (called by a periodic sweep). */
  expireIdle(now: number, idleTimeoutMs: number): void {
    // Oldest first: the pool is LIFO, so expired connections sit at the bottom.
    let expired = 0;
    while (expired < this.#idle.length && now - this.#idle[expired]!.idleSince >= idleTimeoutMs) expired++;
    if (expired === 0) return;
    for (const conn of this.#idle.splice(0, expired)) conn.destroy();
  }

  closeIdle(): void {
    for (const conn of this.#idle.splice(0)) conn.destroy();
  }

  get idleConnections(): number {
    return this.#idle.length;
  }

  readonly #onConnectionClosed = (conn: UpstreamConnection): void => {
    this.metrics.activeConnections--;
    const i = this.#idle.indexOf(conn);
    if (i !== -1) this.#idle.splice(i, 1);
  };

  toStatus(): TargetStatus {
    return {
      targetGroup: this.groupName,
      id: this.id,
      host: this.host,
      port: this.port,
      weight: this.weight,
      state: this.#state,
      health: this.health.state,
      healthReason: this.health.reason,
      inFlight: this.metrics.inFlight,
      upgraded: this.#tunnels.size,
      counters: this.metrics.toJSON(),
    };
  }

  toConfig(): TargetConfig {
    return { id: this.id, host: this.host, port: this.port, weight: this.weight };
  }
}
