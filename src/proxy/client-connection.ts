// The HTTP/1.1 fast path: one client socket, its requests one at a time, forwarded over pooled raw upstream sockets.
import { randomUUID } from 'node:crypto';
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { AccessLog } from './access-log.js';
import { BodyFramer, FramingError } from './body-framer.js';
import { classifyFailure, errorResponse, type Failure } from './failure.js';
import { HeadError, MAX_HEAD_BYTES, parseRequestHead, type RequestHead } from './request-head.js';
import { parseResponseHead, ResponseHeadError } from './response-head.js';
import type { Router } from './router.js';
import type { Target } from './target.js';
import type { TargetGroup } from './target-group.js';
import type { UpstreamConnection, UpstreamOwner } from './upstream-connection.js';

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
  accessLog: AccessLog | undefined;
  unrouted: { notFound: number; redirected: number };
  /** Set at shutdown: connections close after their current exchange. */
  stopping: boolean;
  connections: Set<ClientConnection>;
}

const CRLF2 = Buffer.from('\r\n\r\n');

// Request ids look like UUIDs: a random per-process prefix and a counter. Unique, and far cheaper than a
// random UUID per request (which showed up in profiles).
const ID_PREFIX = randomUUID().slice(0, 24);
let idCounter = 0;
function nextRequestId(): string {
  idCounter++;
  return ID_PREFIX + idCounter.toString(16).padStart(12, '0');
}
const P_PIPELINE = 1;
const P_CONNECTING = 2;
const P_BACKPRESSURE = 4;
const P_CLOSING = 8;

type Phase = 'idle' | 'exchange' | 'tunnel' | 'closed';

/**
 * Serves one client connection. Requests are handled in order; a pipelined request waits (its bytes stay
 * buffered and the socket is paused) until the previous response is complete. Heads are parsed strictly; bodies
 * stream through untouched, with backpressure both ways. Listeners are attached once per socket.
 */
export class ClientConnection implements UpstreamOwner {
  readonly socket: net.Socket;
  readonly #ctx: ProxyContext;
  readonly #listener: ListenerInfo;
  readonly #remoteAddress: string;
  #phase: Phase = 'idle';
  #buf: Buffer | null = null;
  #paused = 0;

  // The current exchange.
  #head: RequestHead | null = null;
  #requestId = '';
  #start = 0;
  #group: TargetGroup | undefined;
  #target: Target | undefined;
  #upstream: UpstreamConnection | null = null;
  #upstreamHead = '';
  #firstBody: Buffer | null = null;
  #retried = false;
  #reqFramer = new BodyFramer();
  #reqBodyDone = true;
  /** The whole request body came with the head (so the request can be replayed on a fresh connection). */
  #wholeBodyInFirst = true;
  #resFramer = new BodyFramer();
  #resHeadBuf: Buffer | null = null;
  #resHeadDone = false;
  #status = 0;
  #sentToClient = false;
  #closeAfter = false;
  #upstreamReusable = true;
  #upstreamPaused = false;
  #bytesIn = 0;
  #bytesOut = 0;
  /** Response-head deadline (performance.now() ms); 0 when none. Checked by a periodic sweep, not a timer per request. */
  #deadline = 0;
  #lastActive = performance.now();
  #aborted = false;

  constructor(socket: net.Socket, ctx: ProxyContext, listener: ListenerInfo) {
    this.socket = socket;
    this.#ctx = ctx;
    this.#listener = listener;
    this.#remoteAddress = normalizeAddress(socket.remoteAddress);
    ctx.connections.add(this);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => this.#onDrain());
    socket.on('error', () => {});
    socket.on('close', () => this.#onClose());
  }

  /** True while no request is in progress (safe to close at shutdown). */
  get idle(): boolean {
    return this.#phase === 'idle' && (this.#buf === null || this.#buf.length === 0);
  }

  /** Shutdown: close now if idle, else after the current exchange. */
  closeWhenIdle(): void {
    if (this.#phase === 'idle') this.socket.destroy();
    else this.#closeAfter = true;
  }

  #pause(reason: number): void {
    if (this.#paused === 0) this.socket.pause();
    this.#paused |= reason;
  }

  #resume(reason: number): void {
    if ((this.#paused & reason) === 0) return;
    this.#paused &= ~reason;
    if (this.#paused === 0) this.socket.resume();
  }

  // ---- client side ----------------------------------------------------------------------------

  #onData(chunk: Buffer): void {
    switch (this.#phase) {
      case 'idle':
        this.#buf = this.#buf === null || this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
        this.#processBuffer();
        return;
      case 'exchange':
        this.#bytesIn += chunk.length;
        if (!this.#reqBodyDone) {
          this.#forwardBody(chunk);
          return;
        }
        // A pipelined request: keep it until the current response is complete.
        this.#buf = this.#buf === null || this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
        this.#pause(P_PIPELINE);
        return;
      case 'tunnel':
        if (this.#upstream !== null && !this.#upstream.socket.write(chunk)) this.#pause(P_BACKPRESSURE);
        return;
      case 'closed':
        return;
    }
  }

  #processBuffer(): void {
    while (this.#phase === 'idle' && this.#buf !== null && this.#buf.length > 0) {
      const buf = this.#buf;
      let start = 0;
      // Tolerate empty lines between requests (RFC 9112 §2.2).
      while (start + 1 < buf.length && buf[start] === 0x0d && buf[start + 1] === 0x0a) start += 2;
      const end = buf.indexOf(CRLF2, start);
      if (end === -1) {
        if (buf.length - start > MAX_HEAD_BYTES) this.#rejectHead(431, 'request head too large');
        return;
      }
      if (end - start > MAX_HEAD_BYTES) {
        this.#rejectHead(431, 'request head too large');
        return;
      }
      let head: RequestHead;
      try {
        head = parseRequestHead(start === 0 ? buf : buf.subarray(start), end - start);
      } catch (err) {
        this.#rejectHead(err instanceof HeadError ? err.status : 400, (err as Error).message);
        return;
      }
      const restStart = end + 4;
      const rest = restStart < buf.length ? buf.subarray(restStart) : null;
      this.#buf = null;
      this.#bytesIn = restStart;
      this.#startExchange(head, rest);
    }
    if (this.#phase === 'idle') this.#resume(P_PIPELINE);
  }

  /** A head the proxy will not forward: answer and close (the stream position is lost). */
  #rejectHead(status: number, detail: string): void {
    this.#phase = 'closed';
    this.#buf = null;
    this.socket.end(errorResponse(status, nextRequestId(), true, detail), 'latin1');
  }

  #startExchange(head: RequestHead, rest: Buffer | null): void {
    this.#phase = 'exchange';
    this.#head = head;
    this.#start = performance.now();
    this.#requestId = head.requestId ?? nextRequestId();
    this.#status = 0;
    this.#sentToClient = false;
    this.#resHeadDone = false;
    this.#resHeadBuf = null;
    this.#upstreamReusable = true;
    this.#retried = false;
    this.#bytesOut = 0;
    this.#group = undefined;
    this.#target = undefined;
    if (head.close || this.#ctx.stopping) this.#closeAfter = true;

    // Split what arrived after the head into this request's body and what follows (pipelined).
    if (head.chunked) this.#reqFramer.reset('chunked');
    else if (head.contentLength > 0) this.#reqFramer.reset('length', head.contentLength);
    else this.#reqFramer.reset('none');
    let body: Buffer | null = null;
    if (rest !== null) {
      let end: number;
      try {
        end = this.#reqFramer.feed(rest, 0);
      } catch {
        this.#localResponse(400, 'malformed chunked body', true);
        return;
      }
      if (end === -1) body = rest;
      else {
        if (end > 0) body = rest.subarray(0, end);
        if (end < rest.length) {
          this.#buf = rest.subarray(end);
          this.#pause(P_PIPELINE);
        }
      }
    }
    this.#reqBodyDone = this.#reqFramer.done;
    this.#wholeBodyInFirst = this.#reqBodyDone;
    this.#firstBody = body;
    if (body !== null) this.#bytesIn += body.length;

    if (this.#listener.redirect && !this.#isReserved(head.target)) {
      this.#redirect(head);
      return;
    }
    const entry = this.#ctx.router.match(head.host, head.target);
    if (entry === undefined) {
      this.#ctx.unrouted.notFound++;
      this.#localResponse(404, `No application is configured for host ${head.host}.`, false);
      return;
    }
    const group = entry.pickGroup();
    this.#group = group ?? entry.primaryGroup;
    const target = group?.pick();
    if (group === undefined || target === undefined) {
      this.#fail('no_target');
      return;
    }
    const xff =
      head.forwardedFor === undefined ? this.#remoteAddress : `${head.forwardedFor}, ${this.#remoteAddress}`;
    this.#upstreamHead =
      `${head.method} ${head.target} ${head.version}\r\n${head.kept}` +
      `x-forwarded-for: ${xff}\r\nx-forwarded-proto: ${this.#listener.proto}\r\n` +
      (head.rawHost === '' ? '' : `x-forwarded-host: ${head.rawHost}\r\n`) +
      `x-forwarded-port: ${this.#listener.port}\r\nx-request-id: ${this.#requestId}\r\n` +
      (head.upgrade !== undefined ? `connection: upgrade\r\nupgrade: ${head.upgrade}\r\n\r\n` : '\r\n');
    this.#dispatch(target, false);
  }

  #isReserved(target: string): boolean {
    for (const prefix of this.#ctx.reservedPathPrefixes) if (target.startsWith(prefix)) return true;
    return false;
  }

  #redirect(head: RequestHead): void {
    this.#ctx.unrouted.redirected++;
    const status = head.method === 'GET' || head.method === 'HEAD' ? 301 : 308;
    const port = this.#listener.httpsPort === 443 ? '' : `:${this.#listener.httpsPort}`;
    const host = head.host.includes(':') && !head.host.startsWith('[') ? `[${head.host}]` : head.host;
    const location = `https://${host}${port}${head.target}`;
    // A request body we did not read makes the stream unusable: close after answering.
    const close = this.#closeAfter || !this.#reqBodyDone;
    this.#closeAfter = close;
    const response =
      `HTTP/1.1 ${status} ${status === 301 ? 'Moved Permanently' : 'Permanent Redirect'}\r\nlocation: ${location}\r\n` +
      `content-length: 0\r\nx-request-id: ${this.#requestId}\r\n${close ? 'connection: close\r\n' : ''}\r\n`;
    this.#status = status;
    this.#write(response);
    this.#endExchange();
  }

  /** A response the proxy makes itself (404, 400) that involves no target. */
  #localResponse(status: number, detail: string, forceClose: boolean): void {
    const close = forceClose || this.#closeAfter || !this.#reqBodyDone;
    this.#closeAfter = close;
    this.#status = status;
    let response = errorResponse(status, this.#requestId, close, detail);
    if (this.#head?.method === 'HEAD') response = response.slice(0, response.indexOf('\r\n\r\n') + 4);
    this.#write(response);
    this.#endExchange();
  }

  #write(data: string | Buffer): boolean {
    this.#sentToClient = true;
    if (typeof data === 'string') {
      this.#bytesOut += data.length;
      return this.socket.write(data, 'latin1');
    }
    this.#bytesOut += data.length;
    return this.socket.write(data);
  }

  /**
   * Writes a head and a body slice with ONE write call: socket writes (syscalls plus stream bookkeeping) are
   * the proxy's main cost. Small bodies travel inside the latin1 head string (byte-exact), large ones use cork.
   */
  #writeJoined(socket: net.Socket, head: string, body: Buffer, start: number, end: number): boolean {
    if (end - start <= 8192)
      return socket.write(end > start ? head + body.toString('latin1', start, end) : head, 'latin1');
    socket.cork();
    socket.write(head, 'latin1');
    // Copied: `body` may be a view into the shared upstream read buffer.
    const more = socket.write(Buffer.from(body.subarray(start, end)));
    socket.uncork();
    return more;
  }

  #forwardBody(chunk: Buffer): void {
    let end: number;
    try {
      end = this.#reqFramer.feed(chunk, 0);
    } catch (err) {
      if (err instanceof FramingError) {
        this.#abortBoth();
        return;
      }
      throw err;
    }
    let part = chunk;
    if (end !== -1) {
      this.#reqBodyDone = true;
      if (end < chunk.length) {
        this.#buf = chunk.subarray(end);
        this.#pause(P_PIPELINE);
      }
      part = chunk.subarray(0, end);
    }
    const upstream = this.#upstream;
    // No upstream: the response was already produced (an error page); the rest of the body is discarded.
    if (upstream === null || part.length === 0) return;
    if (!upstream.socket.write(part)) this.#pause(P_BACKPRESSURE);
  }

  #onDrain(): void {
    if (this.#upstreamPaused && this.#upstream !== null) {
      this.#upstreamPaused = false;
      this.#upstream.socket.resume();
    }
  }

  #onClose(): void {
    const phase = this.#phase;
    this.#phase = 'closed';
    this.#ctx.connections.delete(this);
    if (phase === 'exchange') {
      // The client went away before the response was complete: record 499 and abort the upstream request.
      // (After a broken upstream body the proxy closed the client itself: that is a 502.)
      this.#status = this.#aborted
        ? classifyFailure('reset_before_response')
        : classifyFailure('client_gone');
      this.#upstreamReusable = false;
      this.#finish(true);
    } else if (phase === 'tunnel') {
      this.#upstream?.destroy();
    }
  }

  // ---- upstream side --------------------------------------------------------------------------

  #dispatch(target: Target, fresh: boolean): void {
    this.#target = target;
    target.metrics.inFlight++;
    const conn = fresh || this.#head!.upgrade !== undefined ? target.acquireFresh() : target.acquire();
    conn.owner = this;
    conn.uses++;
    this.#upstream = conn;
    const socket = conn.socket;
    const body = this.#firstBody;
    if (body !== null) this.#writeJoined(socket, this.#upstreamHead, body, 0, body.length);
    else socket.write(this.#upstreamHead, 'latin1');
    // Until connected, hold further body bytes so a refused connection can be retried elsewhere.
    if (!conn.connected && !this.#reqBodyDone) this.#pause(P_CONNECTING);
    const timeoutMs = this.#group?.config.responseTimeoutMs ?? 30_000;
    this.#deadline = performance.now() + timeoutMs;
  }

  /**
   * Called by the proxy's sweep (every 100 ms): fails an exchange whose response head is late (504) and closes a
   * connection idle for longer than `idleTimeoutMs` (which also bounds how long a request head may take).
   */
  checkTimers(now: number, idleTimeoutMs: number): void {
    if (this.#phase === 'exchange') {
      if (this.#deadline !== 0 && now >= this.#deadline && !this.#resHeadDone) this.#fail('response_timeout');
    } else if (this.#phase === 'idle' && now - this.#lastActive >= idleTimeoutMs) {
      this.#phase = 'closed';
      this.socket.destroy();
    }
  }

  onUpstreamConnect(conn: UpstreamConnection): void {
    if (conn === this.#upstream) this.#resume(P_CONNECTING);
  }

  onUpstreamDrain(conn: UpstreamConnection): void {
    if (conn === this.#upstream) this.#resume(P_BACKPRESSURE);
  }

  onUpstreamData(conn: UpstreamConnection, chunk: Buffer): void {
    if (conn !== this.#upstream) {
      conn.destroy();
      return;
    }
    if (this.#phase === 'tunnel') {
      if (!this.#write(Buffer.from(chunk))) {
        this.#upstreamPaused = true;
        conn.socket.pause();
      }
      return;
    }
    if (this.#phase !== 'exchange') return;
    if (!this.#resHeadDone) {
      this.#onResponseHeadData(conn, chunk);
      return;
    }
    this.#forwardResponseBody(conn, chunk, 0);
  }

  #onResponseHeadData(conn: UpstreamConnection, chunk: Buffer): void {
    // `chunk` is only valid during this call; a partial head is kept as a copy.
    let buf = this.#resHeadBuf === null ? chunk : Buffer.concat([this.#resHeadBuf, chunk]);
    for (;;) {
      const end = buf.indexOf(CRLF2);
      if (end === -1) {
        if (buf.length > MAX_HEAD_BYTES) this.#fail('bad_response');
        else this.#resHeadBuf = Buffer.from(buf);
        return;
      }
      let res: ReturnType<typeof parseResponseHead>;
      try {
        res = parseResponseHead(buf, end);
      } catch (err) {
        if (err instanceof ResponseHeadError) {
          this.#fail('bad_response');
          return;
        }
        throw err;
      }
      const restStart = end + 4;
      if (res.status < 200) {
        if (res.status === 101) {
          if (this.#head!.upgrade === undefined) {
            this.#fail('bad_response');
            return;
          }
          this.#startTunnel(conn, buf, restStart);
          return;
        }
        // Interim response (100 Continue, 103 Early Hints): pass it on and wait for the final one.
        this.#write(Buffer.from(buf.subarray(0, restStart)));
        buf = buf.subarray(restStart);
        if (buf.length === 0) {
          this.#resHeadBuf = null;
          return;
        }
        continue;
      }
      this.#resHeadBuf = null;
      this.#resHeadDone = true;
      this.#deadline = 0;
      const head = this.#head!;
      this.#status = res.status;
      if (head.method === 'HEAD' || res.status === 204 || res.status === 304) this.#resFramer.reset('none');
      else if (res.chunked) this.#resFramer.reset('chunked');
      else if (res.contentLength >= 0) this.#resFramer.reset('length', res.contentLength);
      else this.#resFramer.reset('close');
      if (res.close) this.#upstreamReusable = false;
      // A body delimited by the upstream closing must be delimited the same way towards the client.
      if (this.#resFramer.mode === 'close' || this.#ctx.stopping) this.#closeAfter = true;
      let clientHead = `${res.head}x-request-id: ${this.#requestId}\r\n`;
      if (this.#closeAfter) clientHead += 'connection: close\r\n\r\n';
      else if (head.version === 'HTTP/1.0') clientHead += 'connection: keep-alive\r\n\r\n';
      else clientHead += '\r\n';
      if (restStart < buf.length) {
        let end: number;
        try {
          end = this.#resFramer.feed(buf, restStart);
        } catch {
          this.#fail('bad_response');
          return;
        }
        const bodyEnd = end === -1 ? buf.length : end;
        const more = this.#writeJoined(this.socket, clientHead, buf, restStart, bodyEnd);
        this.#bytesOut += clientHead.length + bodyEnd - restStart;
        this.#sentToClient = true;
        if (end !== -1) this.#responseComplete(conn, end < buf.length);
        else if (!more) {
          this.#upstreamPaused = true;
          conn.socket.pause();
        }
      } else {
        this.#write(clientHead);
        if (this.#resFramer.done) this.#responseComplete(conn, false);
      }
      return;
    }
  }

  #forwardResponseBody(conn: UpstreamConnection, buf: Buffer, start: number): void {
    let end: number;
    try {
      end = this.#resFramer.feed(buf, start);
    } catch {
      // A malformed upstream body after the head was sent: nothing sensible can be told to the client.
      this.#upstreamReusable = false;
      this.#abortBoth();
      return;
    }
    if (end === -1) {
      if (!this.#write(Buffer.from(start === 0 ? buf : buf.subarray(start)))) {
        this.#upstreamPaused = true;
        conn.socket.pause();
      }
      return;
    }
    if (end > start) this.#write(Buffer.from(buf.subarray(start, end)));
    this.#responseComplete(conn, end < buf.length);
  }

  #responseComplete(conn: UpstreamConnection, extraBytes: boolean): void {
    // Extra bytes after a complete response mean the upstream is confused; never reuse such a connection.
    if (extraBytes) this.#upstreamReusable = false;
    if (this.#upstreamPaused) {
      this.#upstreamPaused = false;
      conn.socket.resume();
    }
    this.#finish(false);
  }

  onUpstreamClosed(conn: UpstreamConnection, error: NodeJS.ErrnoException | undefined): void {
    if (conn !== this.#upstream) return;
    if (this.#phase === 'tunnel') {
      this.socket.end();
      return;
    }
    if (this.#phase !== 'exchange') return;
    if (this.#resHeadDone) {
      if (this.#resFramer.mode === 'close') {
        // The upstream's close delimits this response.
        this.#upstreamReusable = false;
        this.#finish(false);
      } else {
        this.#upstreamReusable = false;
        this.#abortBoth();
      }
      return;
    }
    this.#fail(conn.connected ? 'reset_before_response' : 'connect_failed', conn, error);
  }

  /**
   * The exchange failed before a response head arrived. A connection that never connected is retried once on
   * another target (and that target is marked failing); a reused keep-alive connection that the upstream had
   * closed is retried once on a fresh connection when the request had no streamed body. Otherwise the client
   * gets the classified status.
   */
  #fail(failure: Failure, conn?: UpstreamConnection, error?: NodeJS.ErrnoException): void {
    const target = this.#target;
    const group = this.#group;
    this.#deadline = 0;
    if (
      conn !== undefined &&
      target !== undefined &&
      group !== undefined &&
      !this.#retried &&
      !this.#sentToClient
    ) {
      if (failure === 'connect_failed') {
        group.markFailing(
          target,
          error?.code === 'ECONNREFUSED' ? 'connection refused' : (error?.code ?? 'connect failed'),
        );
        const other = group.pick(target);
        if (other !== undefined && other !== target) {
          this.#retry(target, other, false);
          return;
        }
      } else if (
        failure === 'reset_before_response' &&
        conn.uses > 1 &&
        this.#reqBodyDone &&
        this.#bodyReplayable()
      ) {
        this.#retry(target, target, true);
        return;
      }
    }
    this.#status = classifyFailure(failure);
    this.#upstreamReusable = false;
    if (!this.#sentToClient) {
      const close = this.#closeAfter || !this.#reqBodyDone;
      this.#closeAfter = close;
      let response = errorResponse(this.#status, this.#requestId, close);
      if (this.#head?.method === 'HEAD') response = response.slice(0, response.indexOf('\r\n\r\n') + 4);
      this.#write(response);
    } else {
      // An interim response (100 Continue) already went out: no final response can follow, so close.
      this.#closeAfter = true;
    }
    this.#finish(true);
  }

  #bodyReplayable(): boolean {
    // Only the bytes that came with the head are kept; a body that streamed in later cannot be replayed.
    return this.#wholeBodyInFirst;
  }

  #retry(failed: Target, next: Target, fresh: boolean): void {
    this.#retried = true;
    failed.metrics.inFlight--;
    failed.metrics.retries++;
    failed.checkDrained();
    const old = this.#upstream;
    this.#upstream = null;
    if (old !== null) {
      old.owner = null;
      old.destroy();
    }
    this.#resHeadBuf = null;
    this.#dispatch(next, fresh);
  }

  #startTunnel(conn: UpstreamConnection, buf: Buffer, restStart: number): void {
    this.#deadline = 0;
    this.#status = 101;
    this.#resHeadDone = true;
    this.#write(Buffer.from(buf.subarray(0, restStart)));
    if (restStart < buf.length) this.#write(Buffer.from(buf.subarray(restStart)));
    const target = this.#target!;
    this.#recordExchange(false);
    target.metrics.inFlight--;
    this.#phase = 'tunnel';
    target.upgraded.add(this.socket);
    const pending = this.#buf;
    this.#buf = null;
    if (pending !== null && pending.length > 0) conn.socket.write(pending);
    this.#resume(P_PIPELINE | P_CONNECTING);
    this.socket.once('close', () => {
      target.upgraded.delete(this.socket);
      target.checkDrained();
    });
    // The client's end is handled by Node (allowHalfOpen false); the upstream's end closes the client.
  }

  #abortBoth(): void {
    this.#aborted = true;
    this.#upstreamReusable = false;
    this.#closeAfter = true;
    this.socket.destroy();
    // #onClose finishes the exchange (recorded as 499 when no response completed).
  }

  // ---- end of an exchange ---------------------------------------------------------------------

  #recordExchange(proxyError: boolean): void {
    const ms = performance.now() - this.#start;
    const metrics = this.#target?.metrics ?? this.#group?.metrics;
    metrics?.record(this.#status, proxyError, ms, this.#bytesIn, this.#bytesOut);
    const log = this.#ctx.accessLog;
    if (log !== undefined && this.#head !== null) {
      log.write({
        time: new Date().toISOString(),
        requestId: this.#requestId,
        client: this.#remoteAddress,
        proto: this.#listener.proto,
        method: this.#head.method,
        host: this.#head.host,
        path: this.#head.target,
        status: this.#status,
        ms: Math.round(ms * 1000) / 1000,
        bytesIn: this.#bytesIn,
        bytesOut: this.#bytesOut,
        targetGroup: this.#group?.name,
        target: this.#target?.id,
      });
    }
  }

  /** Records the exchange, returns or closes the upstream connection, and moves on to the next request. */
  #finish(proxyError: boolean): void {
    this.#deadline = 0;
    this.#recordExchange(proxyError);
    const target = this.#target;
    const conn = this.#upstream;
    this.#upstream = null;
    if (conn !== null) {
      if (this.#upstreamReusable && this.#reqBodyDone && target !== undefined)
        target.release(conn, performance.now());
      else {
        conn.owner = null;
        conn.destroy();
      }
    }
    if (target !== undefined) {
      target.metrics.inFlight--;
      target.checkDrained();
    }
    this.#endExchange();
  }

  #endExchange(): void {
    this.#head = null;
    this.#firstBody = null;
    this.#target = undefined;
    this.#group = undefined;
    if (this.#phase === 'closed') return;
    // A response that finished before its request body did leaves the stream position unknown: close.
    if (this.#closeAfter || !this.#reqBodyDone) {
      this.#phase = 'closed';
      this.#pause(P_CLOSING);
      this.socket.end();
      return;
    }
    this.#phase = 'idle';
    this.#lastActive = performance.now();
    this.#paused &= ~(P_CONNECTING | P_BACKPRESSURE | P_PIPELINE);
    if (this.#buf !== null && this.#buf.length > 0) this.#processBuffer();
    if (this.#paused === 0 && this.socket.isPaused()) this.socket.resume();
  }
}

function normalizeAddress(address: string | undefined): string {
  if (address === undefined) return 'unknown';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
