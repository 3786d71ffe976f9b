// One client socket: reads request heads strictly and runs its requests one at a time as exchanges, or a tunnel.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { AcmeChallenge } from '../domain/route-table.js';
import type { AccessLog } from './access-log.js';
import { Exchange, nextRequestId } from './exchange.js';
import { errorResponse } from './failure.js';
import { fieldLinePrefixValid, findBareCr, findBareLf, requestLinePrefixValid } from './field-line.js';
import { HeadError, parseRequestHead, type RequestHead } from './request-head.js';
import type { Router } from './router.js';
import type { Tunnel } from './tunnel.js';

/** What a listener tells its connections. */
export interface ListenerInfo {
  proto: 'http' | 'https';
  /** Port the client connected to (for X-Forwarded-Port). */
  port: number;
  /** Plain-HTTP listener that redirects to HTTPS (except reserved paths). */
  redirect: boolean;
  /** Public HTTPS port, for redirect locations. */
  httpsPort: number;
}

/** Shared, swappable state of the proxy that connections read per request. */
export interface ProxyContext {
  router: Router;
  reservedPathPrefixes: readonly string[];
  /** HTTP-01 answers of the route table by token: served on both listeners, before any route. */
  challenges: ReadonlyMap<string, AcmeChallenge>;
  accessLog: AccessLog | undefined;
  unrouted: { notFound: number; redirected: number; challenges: number };
  /** Set at shutdown: connections close after their current exchange. */
  stopping: boolean;
  connections: Set<ClientConnection>;
  /** Largest request head accepted and forwarded, and largest response head (431 / 502 above it). */
  maxHeadBytes: number;
  /** Clients whose forwarding headers are passed on (proxies in front of this one); undefined: nobody's. */
  trustedProxies: net.BlockList | undefined;
}

/** Why the client socket is paused; it reads again once no reason is left. */
export type PauseReason = 'pipeline' | 'connecting' | 'backpressure';

const CRLF = Buffer.from('\r\n');
const CRLF2 = Buffer.from('\r\n\r\n');
// Pause reasons as bits.
const P_PIPELINE = 1;
const P_CONNECTING = 2;
const P_BACKPRESSURE = 4;
const P_CLOSING = 8;
const BIT: Record<PauseReason, number> = {
  pipeline: P_PIPELINE,
  connecting: P_CONNECTING,
  backpressure: P_BACKPRESSURE,
};

type Phase = 'idle' | 'exchange' | 'tunnel' | 'closed';

/**
 * Serves one client connection. Requests are handled in order; a pipelined request waits (its bytes stay
 * buffered and the socket is paused) until the previous response is complete. Each request is an `Exchange`;
 * after a 101 the connection belongs to a `Tunnel`. Listeners are attached once per socket.
 */
export class ClientConnection {
  readonly socket: net.Socket;
  readonly ctx: ProxyContext;
  readonly listener: ListenerInfo;
  /**
   * Read with the first bytes (a getpeername call, while the socket is surely open), not at accept: many
   * connections end after their TLS handshake.
   */
  #remoteAddress: string | undefined;
  #trusted: boolean | undefined;
  /** Close after the current exchange (asked for, HTTP/1.0, shutdown, or the stream position is lost). */
  closeAfter = false;
  #phase: Phase = 'idle';
  #buf: Buffer | null = null;
  /** How much of an incomplete head in #buf was already checked for a bare LF. */
  #scanned = 0;
  #paused = 0;
  #processing = false;
  #exchange: Exchange | null = null;
  #tunnel: Tunnel | null = null;
  #lastActive = performance.now();

  constructor(socket: net.Socket, ctx: ProxyContext, listener: ListenerInfo) {
    this.socket = socket;
    this.ctx = ctx;
    this.listener = listener;
    ctx.connections.add(this);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => {
      if (this.#exchange !== null) this.#exchange.onClientDrain();
      else this.#tunnel?.onClientDrain();
    });
    socket.on('error', () => {});
    socket.on('close', () => this.#onClose());
  }

  get remoteAddress(): string {
    this.#remoteAddress ??= normalizeAddress(this.socket.remoteAddress);
    return this.#remoteAddress;
  }

  /** The client is a trusted proxy: the forwarding headers it sends are passed on. */
  get trusted(): boolean {
    if (this.#trusted === undefined) {
      const address = this.remoteAddress;
      this.#trusted = this.ctx.trustedProxies?.check(address, net.isIPv6(address) ? 'ipv6' : 'ipv4') ?? false;
    }
    return this.#trusted;
  }

  pause(reason: PauseReason): void {
    if (this.#paused === 0) this.socket.pause();
    this.#paused |= BIT[reason];
  }

  resume(reason: PauseReason): void {
    const bit = BIT[reason];
    if ((this.#paused & bit) === 0) return;
    this.#paused &= ~bit;
    if (this.#paused === 0) this.socket.resume();
  }

  write(data: string | Buffer): boolean {
    return typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data);
  }

  /** Bytes that follow the current request (pipelined): kept, and the socket paused, until it is answered. */
  holdPipelined(bytes: Buffer): void {
    this.#buf = this.#buf === null || this.#buf.length === 0 ? bytes : Buffer.concat([this.#buf, bytes]);
    this.pause('pipeline');
  }

  /**
   * Called by the exchange when it is over. A response that finished before its request body did leaves the
   * stream position unknown, so the connection closes; otherwise the next request (if buffered) starts.
   */
  exchangeEnded(requestBodyDone: boolean, now: number): void {
    this.#exchange = null;
    if (this.#phase === 'closed' || this.socket.destroyed) {
      this.#phase = 'closed';
      return;
    }
    if (this.closeAfter || !requestBodyDone) {
      this.#phase = 'closed';
      this.#paused |= P_CLOSING;
      this.socket.pause();
      this.socket.end();
      return;
    }
    this.#phase = 'idle';
    this.#lastActive = now;
    this.#paused &= ~(P_CONNECTING | P_BACKPRESSURE | P_PIPELINE);
    if (!this.#processing && this.#buf !== null && this.#buf.length > 0) this.#processBuffer();
    if (this.#paused === 0 && this.socket.isPaused()) this.socket.resume();
  }

  /** After a 101: the connection is a tunnel from now on; bytes the client already sent go through it. */
  startTunnel(tunnel: Tunnel): void {
    this.#exchange = null;
    this.#phase = 'tunnel';
    this.#tunnel = tunnel;
    const pending = this.#buf;
    this.#buf = null;
    if (pending !== null && pending.length > 0) tunnel.onClientData(pending);
    this.resume('pipeline');
    this.resume('connecting');
  }

  /**
   * Called by the proxy's sweep (every 100 ms): the current exchange's or tunnel's timeouts, or the keep-alive
   * idle timeout (which also bounds how long a request head may take to arrive).
   */
  checkTimers(now: number, idleTimeoutMs: number): void {
    switch (this.#phase) {
      case 'exchange':
        this.#exchange?.checkTimers(now);
        return;
      case 'tunnel':
        this.#tunnel?.checkTimers(now);
        return;
      case 'idle':
        if (now - this.#lastActive >= idleTimeoutMs) {
          this.#phase = 'closed';
          this.socket.destroy();
        }
        return;
      case 'closed':
        return;
    }
  }

  #onData(chunk: Buffer): void {
    switch (this.#phase) {
      case 'idle':
        this.#remoteAddress ??= normalizeAddress(this.socket.remoteAddress);
        this.#buf = this.#buf === null || this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
        this.#processBuffer();
        return;
      case 'exchange':
        this.#exchange!.onClientData(chunk);
        return;
      case 'tunnel':
        this.#tunnel!.onClientData(chunk);
        return;
      case 'closed':
        return;
    }
  }

  #processBuffer(): void {
    this.#processing = true;
    while (this.#phase === 'idle' && this.#buf !== null && this.#buf.length > 0) {
      const buf = this.#buf;
      let start = 0;
      // Tolerate empty lines between requests (RFC 9112 §2.2).
      while (start + 1 < buf.length && buf[start] === 0x0d && buf[start + 1] === 0x0a) start += 2;
      const max = this.ctx.maxHeadBytes;
      const end = buf.indexOf(CRLF2, start);
      if (end === -1) {
        if (buf.length - start > max) this.#rejectHead(431, 'request head too large');
        else this.#checkPartialHead(buf, start);
        break;
      }
      if (end + 4 - start > max) {
        this.#rejectHead(431, 'request head too large');
        break;
      }
      let head: RequestHead;
      try {
        head = parseRequestHead(start === 0 ? buf : buf.subarray(start), end - start);
      } catch (err) {
        if (!(err instanceof HeadError)) throw err;
        this.#rejectHead(err.status, err.message);
        break;
      }
      const restStart = end + 4;
      this.#buf = null;
      this.#scanned = 0;
      this.#phase = 'exchange';
      if (head.close || this.ctx.stopping) this.closeAfter = true;
      const exchange = new Exchange(this, head, restStart);
      this.#exchange = exchange;
      exchange.start(restStart < buf.length ? buf.subarray(restStart) : null);
    }
    this.#processing = false;
    if (this.#phase === 'idle') this.resume('pipeline');
  }

  /**
   * A head still arriving (in pieces: rare). What has come so far is checked once per new line, so that a head
   * that can never be valid (a bare CR or LF, a bad request line or header) is refused now rather than after
   * the idle timeout: a bare LF, in particular, never ends a head the way every parser would.
   */
  #checkPartialHead(buf: Buffer, start: number): void {
    const from = Math.max(start, this.#scanned);
    if (findBareCr(buf, from) !== -1 || findBareLf(buf, from) !== -1) {
      this.#rejectHead(400, 'bare CR or LF in the head');
      return;
    }
    const lastLine = buf.lastIndexOf(CRLF, buf.length - 2);
    const complete = lastLine > start;
    if (complete && lastLine >= from - 1) {
      try {
        parseRequestHead(buf.subarray(start), lastLine - start, true);
      } catch (err) {
        if (!(err instanceof HeadError)) throw err;
        this.#rejectHead(err.status, err.message);
        return;
      }
    }
    const valid = complete
      ? fieldLinePrefixValid(buf, lastLine + 2, buf.length)
      : requestLinePrefixValid(buf, start, buf.length);
    if (!valid) {
      this.#rejectHead(400, complete ? 'bad header line' : 'bad request line');
      return;
    }
    // A CR at the very end is checked again with the byte that follows it.
    this.#scanned = buf[buf.length - 1] === 0x0d ? buf.length - 1 : buf.length;
  }

  /** A head the proxy will not forward: answer and close (the stream position is lost). */
  #rejectHead(status: number, detail: string): void {
    this.#phase = 'closed';
    this.#buf = null;
    this.socket.end(errorResponse(status, nextRequestId(), true, detail), 'latin1');
  }

  #onClose(): void {
    const phase = this.#phase;
    this.#phase = 'closed';
    this.ctx.connections.delete(this);
    if (phase === 'exchange') this.#exchange?.onClientClose();
    else if (phase === 'tunnel') this.#tunnel?.onClientClose();
  }
}

function normalizeAddress(address: string | undefined): string {
  if (address === undefined) return 'unknown';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
