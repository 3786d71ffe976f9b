// Target health, as the one authority on it: ALB semantics per target, a separable checker, keep-alive probes.
import net from 'node:net';
import tls from 'node:tls';
import type { HealthCheckConfig, TargetHealth } from '../domain/route-table.js';
import { successCodeMatcher } from '../domain/route-table.js';
import { TARGET_HEALTH } from '../domain/target-health.js';
import { BodyFramer } from './body-framer.js';
import { connectionFailureReason } from './failure.js';
import { parseResponseHead, ResponseHeadError } from './response-head.js';

/** Outcome of one probe: a status code, or why there was none. */
export type ProbeResult = { status: number } | { error: 'timeout' | 'connection refused' | string };

/** Where a checker sends probes: one target's address. */
export interface ProbeTarget {
  readonly host: string;
  readonly port: number;
  /** Probe over TLS with these settings (an external origin). */
  readonly tls?: tls.ConnectionOptions | undefined;
  /** The Host header to send; default `host:port`. */
  readonly hostHeader?: string | undefined;
}

/** Probes one target, over one connection kept open between checks where the target allows it. */
export interface Prober {
  check(path: string, timeoutMs: number): Promise<ProbeResult>;
  /** Closes the kept connection (the target left the checker). */
  close(): void;
}

/** Opens a prober for a target. Injected so tests can script results. */
export type HealthProbe = (target: ProbeTarget) => Prober;

/** A change of a target's health, published as a `target_health` event. */
export interface TargetHealthTransition {
  from: TargetHealth;
  to: TargetHealth;
  reason: string;
}

/** While a new target is `initial` within its grace period, it is checked this often (or at the interval, if shorter). */
export const INITIAL_CHECK_MS = 100;

/**
 * The health of one target, with ALB semantics: a new (`initial`) target becomes healthy after ONE passing check;
 * an unhealthy one needs `healthyThreshold` consecutive passes; a healthy (or initial) one goes unhealthy after
 * `unhealthyThreshold` consecutive failures. Failures within `graceMs` of the registration do not count (the app may
 * be booting); passes count at once. Pure: no timers, no I/O; moves only as `TARGET_HEALTH` allows.
 */
export class HealthCheck {
  #state: TargetHealth = 'initial';
  #reason: string;
  #passes = 0;
  #failures = 0;
  #config: HealthCheckConfig;
  #isSuccess: (status: number) => boolean;
  /** When the target was registered (ms, the checker's clock): the grace period counts from here. */
  readonly registeredAt: number;
  /**
   * Restored by the proxy after its own restart: it was serving before, so it has no grace period (it is no
   * booting instance) and takes traffic when failing open, as before the restart.
   */
  readonly restored: boolean;
  /** Set in a worker that does not check: the grace period's end as the checking worker has it (`adopt`). */
  #adoptedGraceEndsAt: number | undefined;

  constructor(config: HealthCheckConfig, options: { registeredAt?: number; restored?: boolean } = {}) {
    this.#config = config;
    this.#isSuccess = successCodeMatcher(config.successCodes);
    this.registeredAt = options.registeredAt ?? 0;
    this.restored = options.restored ?? false;
    this.#reason = this.restored ? 'restored after a proxy restart' : 'registered';
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

  /**
   * True when the target may take requests while no target of its group is healthy (ALB's fail open): every target
   * except a new one still booting (`initial` within its grace period), which would only refuse them.
   */
  servesWhenFailingOpen(now: number): boolean {
    return this.#state !== 'initial' || !this.inGrace(now);
  }

  /** When the grace period ends (ms); failed checks before it do not count. */
  get graceEndsAt(): number {
    if (this.#adoptedGraceEndsAt !== undefined) return this.#adoptedGraceEndsAt;
    return this.restored ? this.registeredAt : this.registeredAt + (this.#config.graceMs ?? 0);
  }

  /** True while failed checks do not count (`graceMs` after the registration). */
  inGrace(now: number): boolean {
    return now < this.graceEndsAt;
  }

  /** Milliseconds until the next check: quick while a new target boots within its grace, else the interval. */
  nextCheckIn(now: number): number {
    const { intervalMs } = this.#config;
    return this.#state === 'initial' && this.inGrace(now)
      ? Math.min(INITIAL_CHECK_MS, intervalMs)
      : intervalMs;
  }

  /** Applies a new configuration; the current state and streaks are kept. */
  reconfigure(config: HealthCheckConfig): void {
    this.#config = config;
    this.#isSuccess = successCodeMatcher(config.successCodes);
  }

  /** Records a probe result at `now`; returns the transition when the state changed. */
  record(result: ProbeResult, now = Number.POSITIVE_INFINITY): TargetHealthTransition | undefined {
    const pass = 'status' in result && this.#isSuccess(result.status);
    const reason = 'status' in result ? `status ${result.status}` : result.error;
    if (pass) {
      this.#passes++;
      this.#failures = 0;
      const needed = this.#state === 'initial' ? 1 : this.#config.healthyThreshold;
      if (this.#state !== 'healthy' && this.#passes >= needed) return this.#transition('healthy', reason);
      return undefined;
    }
    this.#passes = 0;
    if (this.inGrace(now)) {
      // ECS's grace period: the app may still be booting. The verdict waits; the reason says what was seen.
      this.#failures = 0;
      if (this.#state === 'initial') this.#reason = reason;
      return undefined;
    }
    this.#failures++;
    if (this.#state !== 'unhealthy' && this.#failures >= this.#config.unhealthyThreshold) {
      return this.#transition('unhealthy', reason);
    }
    return undefined;
  }

  /** Passive health: a connection to the target failed while serving traffic; take it out at once. */
  markFailing(reason: string): TargetHealthTransition | undefined {
    this.#passes = 0;
    this.#failures = this.#config.unhealthyThreshold;
    if (this.#state === 'unhealthy') return undefined;
    return this.#transition('unhealthy', reason);
  }

  /**
   * Takes the state decided by the one authority on this target's health (the proxy worker that checks it), in a
   * worker that does not check by itself; returns true when something changed.
   */
  adopt(to: TargetHealth, reason: string, graceEndsAt: number): boolean {
    if (this.#state === to && this.#reason === reason && this.#adoptedGraceEndsAt === graceEndsAt)
      return false;
    this.#state = to;
    this.#reason = reason;
    this.#adoptedGraceEndsAt = graceEndsAt;
    this.#passes = 0;
    this.#failures = 0;
    return true;
  }

  #transition(to: TargetHealth, reason: string): TargetHealthTransition {
    const from = this.#state;
    TARGET_HEALTH.assert('check', from, to);
    this.#state = to;
    this.#reason = reason;
    this.#passes = 0;
    this.#failures = 0;
    return { from, to, reason };
  }
}

/** A target as the checker sees it: where to probe, and its health to record into. */
export interface CheckedTarget extends ProbeTarget {
  readonly health: HealthCheck;
}

export interface HealthCheckerOptions<T extends CheckedTarget> {
  probe: HealthProbe;
  /** The current health-check configuration of a target's group. */
  configOf(target: T): HealthCheckConfig;
  onChange(target: T, change: TargetHealthTransition): void;
  now?: () => number;
}

/**
 * Runs the active checks of a set of targets: one prober (one kept connection) and one timer per target, no
 * overlapping checks of one target. Separate from the target groups that route traffic, so that the checks of a
 * proxy with several workers can run once and be shared.
 */
export class HealthChecker<T extends CheckedTarget> {
  readonly #options: HealthCheckerOptions<T>;
  readonly #now: () => number;
  readonly #watched = new Map<T, { prober: Prober; timer: NodeJS.Timeout | undefined }>();
  #closed = false;

  constructor(options: HealthCheckerOptions<T>) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Starts checking `target`, the first check at once. */
  watch(target: T): void {
    if (this.#closed || this.#watched.has(target)) return;
    this.#watched.set(target, { prober: this.#options.probe(target), timer: undefined });
    this.#schedule(target, 0);
  }

  /** Stops checking `target` and closes its connection. */
  unwatch(target: T): void {
    const watched = this.#watched.get(target);
    if (!watched) return;
    clearTimeout(watched.timer);
    watched.prober.close();
    this.#watched.delete(target);
  }

  close(): void {
    this.#closed = true;
    for (const target of [...this.#watched.keys()]) this.unwatch(target);
  }

  #schedule(target: T, delayMs: number): void {
    const watched = this.#watched.get(target);
    if (!watched) return;
    watched.timer = setTimeout(async () => {
      const { path, timeoutMs } = this.#options.configOf(target);
      const result = await watched.prober.check(path, timeoutMs);
      if (this.#watched.get(target) !== watched) return; // unwatched meanwhile
      const now = this.#now();
      const change = target.health.record(result, now);
      if (change !== undefined) this.#options.onChange(target, change);
      this.#schedule(target, target.health.nextCheckIn(now));
    }, delayMs);
    watched.timer.unref();
  }
}

/** Idle kept connections close after this long: below Node's default server keep-alive timeout (5 s). */
const PROBE_IDLE_MS = 4000;

/** A health check answers small: a bigger response head is refused. */
const MAX_PROBE_HEAD_BYTES = 16 * 1024;

const HEAD_END = Buffer.from('\r\n\r\n');
const EMPTY: Buffer = Buffer.alloc(0);

/** A request target the probe sends as is: visible ASCII only (no space, no CR or LF to split the request). */
const SAFE_PATH = /^\/[\x21-\x7e]*$/;

/**
 * The real probe: `GET path` with a deadline for the whole exchange, over one TCP connection per target kept between
 * checks (a check costs one write and one read, no handshake), its response framed by the proxy's own parsers
 * (`parseResponseHead`, `BodyFramer`). Every check of every target runs in the proxy, so this is most of an idle
 * proxy's work: it costs about half of what node's http client did per check (bench/scale). A kept connection the
 * target closed meanwhile is retried once on a new one, so a closed idle connection is never mistaken for a failing
 * target.
 */
export const httpProbe: HealthProbe = (target) => new ConnectionProber(target);

type Attempt = ProbeResult & { stale?: boolean };

class ConnectionProber implements Prober {
  readonly #target: ProbeTarget;
  #socket: net.Socket | undefined;
  #idle: NodeJS.Timeout | undefined;
  /** The exchange under way on the kept socket: where its bytes and its end go. */
  #exchange: { data(chunk: Buffer): void; end(error?: NodeJS.ErrnoException): void } | undefined;
  #closed = false;

  constructor(target: ProbeTarget) {
    this.#target = target;
  }

  async check(path: string, timeoutMs: number): Promise<ProbeResult> {
    if (!SAFE_PATH.test(path)) return { error: 'invalid health-check path' };
    const first = await this.#attempt(path, timeoutMs);
    if (!first.stale) return first;
    const { stale: _, ...again } = await this.#attempt(path, timeoutMs);
    return again;
  }

  close(): void {
    this.#closed = true;
    if (this.#socket) this.#drop(this.#socket);
  }

  #connect(): net.Socket {
    const { host, port, tls: secure } = this.#target;
    const socket =
      secure === undefined ? net.connect({ host, port }) : tls.connect({ host, port, ...secure });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      // Bytes while no check is under way: the target is out of step; start again on a new connection.
      if (this.#socket === socket && this.#exchange) this.#exchange.data(chunk);
      else this.#drop(socket);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (this.#socket === socket) this.#exchange?.end(error);
      this.#drop(socket);
    });
    socket.on('end', () => {
      if (this.#socket === socket) this.#exchange?.end();
      this.#drop(socket);
    });
    return socket;
  }

  #drop(socket: net.Socket): void {
    socket.destroy();
    if (this.#socket !== socket) return;
    this.#socket = undefined;
    clearTimeout(this.#idle);
  }

  /** One request and its response; `stale` when a kept connection turned out closed before any answer. */
  #attempt(path: string, timeoutMs: number): Promise<Attempt> {
    if (this.#closed) return Promise.resolve({ error: 'closed' });
    clearTimeout(this.#idle);
    const reused = this.#socket !== undefined;
    const socket = this.#socket ?? this.#connect();
    this.#socket = socket;
    return new Promise((resolve) => {
      let received = 0;
      let buffered: Buffer = EMPTY;
      let framer: BodyFramer | undefined;
      let status = 0;
      let closeAfter = false;
      const finish = (result: Attempt, keep: boolean): void => {
        if (this.#exchange !== exchange) return;
        this.#exchange = undefined;
        clearTimeout(timer);
        if (keep && !this.#closed) {
          this.#idle = setTimeout(() => this.#drop(socket), PROBE_IDLE_MS);
          this.#idle.unref();
        } else this.#drop(socket);
        resolve(result);
      };
      const parse = (): void => {
        for (;;) {
          if (framer === undefined) {
            const end = buffered.indexOf(HEAD_END);
            if (end === -1) {
              if (buffered.length > MAX_PROBE_HEAD_BYTES)
                throw new ResponseHeadError('response head too large');
              return;
            }
            const head = parseResponseHead(buffered, end);
            buffered = buffered.subarray(end + HEAD_END.length);
            // An interim response (100 Continue, 103 Early Hints): the final one follows.
            if (head.status < 200 && head.status !== 101) continue;
            if (head.status === 101) throw new ResponseHeadError('switching protocols');
            status = head.status;
            closeAfter = head.close;
            framer = new BodyFramer();
            if (status === 204 || status === 304) framer.reset('none');
            else if (head.chunked) framer.reset('chunked');
            else if (head.contentLength >= 0) framer.reset('length', head.contentLength);
            else {
              framer.reset('close');
              closeAfter = true;
            }
          }
          const end = framer.feed(buffered, 0);
          if (end === -1) {
            buffered = EMPTY;
            return;
          }
          // Bytes past the response were never asked for: the connection is not reused.
          finish({ status }, !closeAfter && end === buffered.length);
          return;
        }
      };
      const exchange = {
        data: (chunk: Buffer): void => {
          received += chunk.length;
          buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
          try {
            parse();
          } catch (error) {
            finish({ error: `bad response: ${(error as Error).message}` }, false);
          }
        },
        end: (error?: NodeJS.ErrnoException): void => {
          // A body delimited by the end of the connection is complete now.
          if (error === undefined && framer?.mode === 'close') {
            finish({ status }, false);
            return;
          }
          const stale =
            reused &&
            received === 0 &&
            (error === undefined || error.code === 'ECONNRESET' || error.code === 'EPIPE');
          if (error === undefined) {
            finish({ error: 'connection closed before the response', ...(stale ? { stale } : {}) }, false);
          } else {
            finish({ error: connectionFailureReason(error), ...(stale ? { stale } : {}) }, false);
          }
        },
      };
      this.#exchange = exchange;
      const timer = setTimeout(() => finish({ error: 'timeout' }, false), timeoutMs);
      const { host, port, hostHeader } = this.#target;
      const hostLine = hostHeader ?? `${host.includes(':') ? `[${host}]` : host}:${port}`;
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: ${hostLine}\r\nUser-Agent: berth-health-check\r\nAccept: */*\r\n\r\n`,
      );
    });
  }
}
