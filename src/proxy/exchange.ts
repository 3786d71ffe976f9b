// One request and its response: target choice, one write per direction, retries only where replay is safe, timeouts.
import { randomUUID } from 'node:crypto';
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { BodyFramer, FramingError } from './body-framer.js';
import type { ClientConnection } from './client-connection.js';
import { classifyFailure, connectionFailureReason, errorResponse, type Failure } from './failure.js';
import { findBareLf } from './field-line.js';
import type { RequestHead } from './request-head.js';
import { parseResponseHead, ResponseHeadError } from './response-head.js';
import type { InFlightLease, Target } from './target.js';
import type { TargetGroup } from './target-group.js';
import { Tunnel } from './tunnel.js';
import type { UpstreamConnection, UpstreamOwner } from './upstream-connection.js';

const CRLF2 = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');
const CHUNKED = 'transfer-encoding: chunked\r\n';
/** Where a CA looks for an HTTP-01 answer (RFC 8555 §8.3). */
const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';
/** A response's own HSTS line, replaced by the route's: the setting in berth.yaml is the one browsers get. */
const STS_LINE = /\r\nstrict-transport-security:[^\r]*/gi;

// Request ids look like UUIDs: a random per-process prefix and a counter. Unique, and far cheaper than a
// random UUID per request (which showed up in profiles).
const ID_PREFIX = randomUUID().slice(0, 24);
let idCounter = 0;

/** A new request id. */
export function nextRequestId(): string {
  idCounter++;
  return ID_PREFIX + idCounter.toString(16).padStart(12, '0');
}

/**
 * Methods whose replay is safe (RFC 9110 §9.2.2), so a request that may have reached the upstream can be sent
 * again after the connection broke: the safe ones always, PUT and DELETE where the target group allows it.
 */
function replaySafe(method: string, group: TargetGroup): boolean {
  switch (method) {
    case 'GET':
    case 'HEAD':
    case 'OPTIONS':
    case 'TRACE':
      return true;
    case 'PUT':
    case 'DELETE':
      return group.config.retryPutDelete;
    default:
      return false;
  }
}

/** Header lines without their Host line (there is at most one: a second is refused as a bad request). */
function withoutHost(kept: string): string {
  const found = HOST_LINE.exec(kept);
  if (found === null) return kept;
  const start = found.index + found[1]!.length;
  return kept.slice(0, start) + kept.slice(kept.indexOf('\r\n', start) + 2);
}

const HOST_LINE = /(^|\r\n)host:/i;

/**
 * Writes a head and a body slice with ONE write call: socket writes (syscalls plus stream bookkeeping) are
 * the proxy's main cost. Small bodies travel inside the latin1 head string (byte-exact), large ones use cork.
 */
function writeJoined(socket: net.Socket, head: string, body: Buffer, start: number, end: number): boolean {
  if (end - start <= 8192)
    return socket.write(end > start ? head + body.toString('latin1', start, end) : head, 'latin1');
  socket.cork();
  socket.write(head, 'latin1');
  // Copied: `body` may be a view into the shared upstream read buffer.
  const more = socket.write(Buffer.from(body.subarray(start, end)));
  socket.uncork();
  return more;
}

/**
 * A request from `client` and its response. Heads are rewritten (the proxy's own framing and forwarding lines),
 * bodies stream through with backpressure both ways. Timeouts are checked by the proxy's sweep: the response
 * head must come within `responseTimeoutMs` of the request being sent, and a body may not stall (no byte either
 * way) for `bodyIdleTimeoutMs`.
 */
export class Exchange implements UpstreamOwner {
  readonly #client: ClientConnection;
  readonly #head: RequestHead;
  readonly #requestId: string;
  readonly #start = performance.now();
  #group: TargetGroup | undefined;
  #target: Target | undefined;
  #lease: InFlightLease | null = null;
  #tunnelIdleMs = 0;
  /** The matched route's HSTS line on the HTTPS listener, else ''. */
  #hsts = '';
  /** The Set-Cookie line that keeps a sticky route's client on its group, else ''. */
  #setCookie = '';
  #upstream: UpstreamConnection | null = null;
  #upstreamHead = '';
  #firstBody: Buffer | null = null;
  /** How many times this request was sent again (a refused connection may follow a replay: see #fail). */
  #retries = 0;
  /** The one replay so far went to the same target, on a fresh connection (a reused one had broken). */
  #replayedOnSameTarget = false;
  readonly #reqFramer = new BodyFramer();
  #reqBodyDone = true;
  /** The whole request body came with the head (so the request can be sent again on another connection). */
  #wholeBodyInFirst = true;
  /** The upstream does not take the request body yet (not connected, or not reading): the client is paused for it. */
  #requestBlocked = false;
  readonly #resFramer = new BodyFramer();
  #resHeadBuf: Buffer | null = null;
  #resHeadDone = false;
  #status = 0;
  #sentToClient = false;
  #upstreamReusable = true;
  #upstreamPaused = false;
  #bytesIn: number;
  #bytesOut = 0;
  /** Since when the request is fully sent and the response head awaited (ms, monotonic); 0 when not waiting. */
  #waitingSince = 0;
  /** Bumped whenever body bytes move either way; the sweep sees a stall when it stops changing. */
  #progress = 0;
  #seenProgress = 0;
  #stalledSince: number;
  #finished = false;

  constructor(client: ClientConnection, head: RequestHead, headBytes: number) {
    this.#client = client;
    this.#head = head;
    this.#requestId = head.requestId ?? nextRequestId();
    this.#bytesIn = headBytes;
    this.#stalledSince = this.#start;
  }

  /** Starts the exchange with the bytes that came after the head (its body, maybe pipelined requests after it). */
  start(rest: Buffer | null): void {
    const head = this.#head;
    const framer = this.#reqFramer;
    if (head.chunked) framer.reset('chunked');
    else if (head.contentLength > 0) framer.reset('length', head.contentLength);
    else framer.reset('none');
    if (rest !== null) {
      let end: number;
      try {
        end = framer.feed(rest, 0);
      } catch (err) {
        if (!(err instanceof FramingError)) throw err;
        this.#local(400, 'malformed chunked body', true);
        return;
      }
      const bodyEnd = end === -1 ? rest.length : end;
      if (end !== -1 && end < rest.length) this.#client.holdPipelined(rest.subarray(end));
      this.#bytesIn += bodyEnd;
      const forwardEnd = framer.skipFrom !== -1 ? framer.skipFrom : bodyEnd;
      if (forwardEnd > 0) {
        this.#firstBody = rest.subarray(0, forwardEnd);
        if (framer.done && framer.trailersDropped) this.#firstBody = Buffer.concat([this.#firstBody, CRLF]);
      }
    }
    this.#reqBodyDone = framer.done;
    this.#wholeBodyInFirst = framer.done;

    const client = this.#client;
    const ctx = client.ctx;
    if (ctx.challenges.size > 0 && head.target.startsWith(ACME_CHALLENGE_PREFIX) && this.#answerChallenge())
      return;
    const entry = ctx.router.match(head.host, head.target);
    // Plain HTTP goes to HTTPS, except reserved paths and routes that say `redirect: false`.
    if (
      client.listener.redirect &&
      (entry === undefined || entry.route.redirect) &&
      !this.#isReserved(head.target)
    ) {
      this.#redirect();
      return;
    }
    if (entry === undefined) {
      client.ctx.unrouted.notFound++;
      this.#local(404, `No application is configured for host ${head.host}.`, false);
      return;
    }
    this.#tunnelIdleMs = entry.route.tunnelIdleTimeoutMs;
    // HSTS only over TLS: a browser ignores it on plain HTTP, where anyone on the path could have added it.
    if (client.listener.proto === 'https') this.#hsts = entry.hstsLine;
    const group = entry.pickGroup(head.cookie, head.release);
    if (group !== undefined)
      this.#setCookie = entry.stickyLine(group, head.cookie, head.release, client.listener.proto === 'https');
    this.#group = group ?? entry.primaryGroup;
    const target = group?.pick();
    if (group === undefined || target === undefined) {
      this.#fail('no_target');
      return;
    }
    this.#upstreamHead = this.#buildUpstreamHead();
    if (this.#upstreamHead.length > client.ctx.maxHeadBytes) {
      this.#local(431, 'request head too large once forwarded', true);
      return;
    }
    this.#dispatch(target, false);
  }

  /**
   * The head sent upstream: the request line, the client's lines that are kept, the proxy's own framing line and
   * forwarding headers. A trusted proxy's forwarding headers are passed on (X-Forwarded-For appended to).
   */
  #buildUpstreamHead(): string {
    const head = this.#head;
    const client = this.#client;
    const trusted = client.trusted ? head.forwarding : undefined;
    const framing = head.chunked
      ? CHUNKED
      : head.contentLength >= 0
        ? `content-length: ${head.contentLength}\r\n`
        : '';
    const xff = trusted?.for === undefined ? client.remoteAddress : `${trusted.for}, ${client.remoteAddress}`;
    const forwardedHost = trusted?.host ?? head.authority;
    // An external origin serves its own host name: Host is rewritten to it (X-Forwarded-Host keeps the client's).
    const origin = this.#group?.config.origin;
    const kept = origin === undefined ? head.kept : `host: ${origin.host}\r\n${withoutHost(head.kept)}`;
    return (
      `${head.method} ${head.target} ${head.version}\r\n${kept}${framing}${trusted?.lines ?? ''}` +
      `x-forwarded-for: ${xff}\r\nx-forwarded-proto: ${trusted?.proto ?? client.listener.proto}\r\n` +
      (forwardedHost === '' ? '' : `x-forwarded-host: ${forwardedHost}\r\n`) +
      `x-forwarded-port: ${trusted?.port ?? client.listener.port}\r\nx-request-id: ${this.#requestId}\r\n` +
      (head.upgrade !== undefined ? `connection: upgrade\r\nupgrade: ${head.upgrade}\r\n\r\n` : '\r\n')
    );
  }

  /** An HTTP-01 validation request for a token the route table holds: its key authorization. */
  #answerChallenge(): boolean {
    const head = this.#head;
    const query = head.target.indexOf('?');
    const token = head.target.slice(ACME_CHALLENGE_PREFIX.length, query === -1 ? undefined : query);
    const challenge = this.#client.ctx.challenges.get(token);
    if (challenge === undefined || challenge.host !== head.host) return false;
    const client = this.#client;
    client.ctx.unrouted.challenges++;
    const close = client.closeAfter || !this.#reqBodyDone;
    client.closeAfter = close;
    this.#status = 200;
    const body = head.method === 'HEAD' ? '' : challenge.keyAuthorization;
    this.#write(
      `HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${challenge.keyAuthorization.length}\r\n` +
        `x-request-id: ${this.#requestId}\r\n${close ? 'connection: close\r\n' : ''}\r\n${body}`,
    );
    this.#end();
    return true;
  }

  #isReserved(target: string): boolean {
    for (const prefix of this.#client.ctx.reservedPathPrefixes) if (target.startsWith(prefix)) return true;
    return false;
  }

  #redirect(): void {
    const head = this.#head;
    const client = this.#client;
    if (head.host === '') {
      this.#local(400, 'a redirect needs a Host', false);
      return;
    }
    client.ctx.unrouted.redirected++;
    const status = head.method === 'GET' || head.method === 'HEAD' ? 301 : 308;
    const port = client.listener.httpsPort === 443 ? '' : `:${client.listener.httpsPort}`;
    // The host was validated as an authority: nothing in it can end the URL early.
    const location = `https://${head.host}${port}${head.target}`;
    // A request body we did not read makes the stream unusable: close after answering.
    const close = client.closeAfter || !this.#reqBodyDone;
    client.closeAfter = close;
    this.#status = status;
    this.#write(
      `HTTP/1.1 ${status} ${status === 301 ? 'Moved Permanently' : 'Permanent Redirect'}\r\nlocation: ${location}\r\n` +
        `content-length: 0\r\nx-request-id: ${this.#requestId}\r\n${close ? 'connection: close\r\n' : ''}\r\n`,
    );
    this.#end();
  }

  /** A response the proxy makes itself (404, 400, 431) that involves no target. */
  #local(status: number, detail: string, forceClose: boolean): void {
    const client = this.#client;
    const close = forceClose || client.closeAfter || !this.#reqBodyDone;
    client.closeAfter = close;
    this.#status = status;
    this.#write(this.#errorPage(status, close, detail));
    this.#end();
  }

  #errorPage(status: number, close: boolean, detail?: string): string {
    const response = errorResponse(status, this.#requestId, close, detail);
    return this.#head.method === 'HEAD' ? response.slice(0, response.indexOf('\r\n\r\n') + 4) : response;
  }

  #write(data: string | Buffer): boolean {
    this.#sentToClient = true;
    this.#bytesOut += data.length;
    return this.#client.write(data);
  }

  // ---- the request body, from the client --------------------------------------------------------

  /** Bytes from the client while this exchange runs: the rest of its body, then pipelined requests. */
  onClientData(chunk: Buffer): void {
    if (this.#reqBodyDone) {
      this.#client.holdPipelined(chunk);
      return;
    }
    this.#progress++;
    const framer = this.#reqFramer;
    let end: number;
    try {
      end = framer.feed(chunk, 0);
    } catch (err) {
      if (!(err instanceof FramingError)) throw err;
      this.#failRequestBody();
      return;
    }
    const bodyEnd = end === -1 ? chunk.length : end;
    this.#bytesIn += bodyEnd;
    if (end !== -1) {
      this.#reqBodyDone = true;
      if (end < chunk.length) this.#client.holdPipelined(chunk.subarray(end));
      // The request is sent: the response head is awaited from now on.
      if (!this.#resHeadDone) this.#waitingSince = performance.now();
    }
    const upstream = this.#upstream;
    // No upstream: the response was already produced (an error page); the rest of the body is discarded.
    if (upstream === null) return;
    const forwardEnd = framer.skipFrom !== -1 ? framer.skipFrom : bodyEnd;
    let more = true;
    if (forwardEnd > 0)
      more = upstream.socket.write(forwardEnd === chunk.length ? chunk : chunk.subarray(0, forwardEnd));
    if (end !== -1 && framer.trailersDropped) more = upstream.socket.write(CRLF) && more;
    if (!more) {
      this.#requestBlocked = true;
      this.#client.pause('backpressure');
    }
  }

  /** A request body that turned out malformed after its head was forwarded. */
  #failRequestBody(): void {
    if (this.#sentToClient) {
      this.#abort('bad_response');
      return;
    }
    this.#upstreamReusable = false;
    this.#client.closeAfter = true;
    this.#status = 400;
    this.#write(this.#errorPage(400, true, 'malformed chunked body'));
    this.#finish(true);
  }

  onClientDrain(): void {
    this.#progress++;
    if (this.#upstreamPaused && this.#upstream !== null) {
      this.#upstreamPaused = false;
      this.#upstream.socket.resume();
    }
  }

  /** The client went away before the response was complete: record it (499) and abort the upstream request. */
  onClientClose(): void {
    if (this.#finished) return;
    this.#upstreamReusable = false;
    this.#status = classifyFailure('client_gone');
    this.#finish(true);
  }

  // ---- the upstream side --------------------------------------------------------------------------

  #dispatch(target: Target, fresh: boolean): void {
    this.#target = target;
    this.#lease = target.lease();
    const conn = fresh || this.#head.upgrade !== undefined ? target.acquireFresh() : target.acquire();
    conn.owner = this;
    conn.uses++;
    this.#upstream = conn;
    const body = this.#firstBody;
    if (body !== null) writeJoined(conn.socket, this.#upstreamHead, body, 0, body.length);
    else conn.socket.write(this.#upstreamHead, 'latin1');
    // Until connected, hold further body bytes so a refused connection can be retried elsewhere (a stall meanwhile
    // is the target's doing, not the client's).
    if (!conn.connected && !this.#reqBodyDone) {
      this.#requestBlocked = true;
      this.#client.pause('connecting');
    }
    // A request that came whole is sent now: the response timeout runs from here (no extra clock read).
    if (this.#reqBodyDone && this.#waitingSince === 0) this.#waitingSince = this.#start;
  }

  /** Called by the proxy's sweep: the response head timeout, and stalled bodies either way. */
  checkTimers(now: number): void {
    const group = this.#group;
    if (this.#finished || group === undefined) return;
    if (!this.#resHeadDone) {
      if (this.#waitingSince !== 0) {
        if (now - this.#waitingSince >= group.config.responseTimeoutMs) this.#fail('response_timeout');
      } else if (this.#stalled(now, group.config.bodyIdleTimeoutMs)) {
        // The request body stopped: the client stalled, or the upstream stopped reading it.
        this.#fail(this.#requestBlocked ? 'response_timeout' : 'client_timeout');
      }
      return;
    }
    if (!this.#resFramer.done && this.#stalled(now, group.config.bodyIdleTimeoutMs)) {
      // The response body stopped: the client does not read it, or the upstream does not send it.
      this.#abort(this.#upstreamPaused ? 'client_gone' : 'response_timeout');
    }
  }

  #stalled(now: number, limitMs: number): boolean {
    if (this.#progress !== this.#seenProgress) {
      this.#seenProgress = this.#progress;
      this.#stalledSince = now;
      return false;
    }
    return now - this.#stalledSince >= limitMs;
  }

  onUpstreamConnect(conn: UpstreamConnection): void {
    if (conn !== this.#upstream) return;
    this.#requestBlocked = false;
    this.#progress++;
    this.#client.resume('connecting');
  }

  onUpstreamDrain(conn: UpstreamConnection): void {
    if (conn !== this.#upstream) return;
    this.#progress++;
    this.#requestBlocked = false;
    this.#client.resume('backpressure');
  }

  onUpstreamData(conn: UpstreamConnection, chunk: Buffer): void {
    if (conn !== this.#upstream) {
      conn.destroy();
      return;
    }
    this.#progress++;
    if (!this.#resHeadDone) this.#onResponseHeadData(conn, chunk);
    else this.#forwardResponseBody(conn, chunk, 0);
  }

  #onResponseHeadData(conn: UpstreamConnection, chunk: Buffer): void {
    const head = this.#head;
    const client = this.#client;
    const max = client.ctx.maxHeadBytes;
    // `chunk` is only valid during this call; a partial head is kept as a copy.
    let buf = this.#resHeadBuf === null ? chunk : Buffer.concat([this.#resHeadBuf, chunk]);
    for (;;) {
      const end = buf.indexOf(CRLF2);
      if (end === -1) {
        if (buf.length > max || findBareLf(buf, 0) !== -1) this.#fail('bad_response');
        else this.#resHeadBuf = Buffer.from(buf);
        return;
      }
      let res: ReturnType<typeof parseResponseHead>;
      try {
        if (end + 4 > max) throw new ResponseHeadError('response head too large');
        res = parseResponseHead(buf, end);
      } catch (err) {
        if (!(err instanceof ResponseHeadError)) throw err;
        this.#fail('bad_response');
        return;
      }
      const restStart = end + 4;
      if (res.status < 200) {
        if (res.status === 101) {
          if (head.upgrade === undefined) this.#fail('bad_response');
          else this.#startTunnel(conn, `${res.head}connection: upgrade\r\n\r\n`, buf, restStart);
          return;
        }
        // An interim response (100 Continue, 103 Early Hints) goes to HTTP/1.1 clients only (RFC 9110 §15.2).
        if (head.version === 'HTTP/1.1') this.#write(`${res.head}\r\n`);
        buf = buf.subarray(restStart);
        if (buf.length === 0) {
          this.#resHeadBuf = null;
          return;
        }
        continue;
      }
      this.#resHeadBuf = null;
      this.#resHeadDone = true;
      this.#waitingSince = 0;
      this.#status = res.status;
      // The proxy writes its own framing line; the body is delimited the same way.
      const framer = this.#resFramer;
      let framing = '';
      if (head.method === 'HEAD' || res.status === 304) {
        framer.reset('none');
        framing = res.chunked
          ? CHUNKED
          : res.contentLength >= 0
            ? `content-length: ${res.contentLength}\r\n`
            : '';
      } else if (res.status === 204) {
        framer.reset('none');
      } else if (res.chunked) {
        // An HTTP/1.0 client cannot read a chunked body (and was sent an HTTP/1.0 request).
        if (head.version === 'HTTP/1.0') {
          this.#fail('bad_response');
          return;
        }
        framer.reset('chunked');
        framing = CHUNKED;
      } else if (res.contentLength >= 0) {
        framer.reset('length', res.contentLength);
        framing = `content-length: ${res.contentLength}\r\n`;
      } else framer.reset('close');
      if (res.close) this.#upstreamReusable = false;
      // A body delimited by the upstream closing must be delimited the same way towards the client.
      if (framer.mode === 'close' || client.ctx.stopping) client.closeAfter = true;
      let clientHead =
        this.#hsts === ''
          ? `${res.head}${framing}x-request-id: ${this.#requestId}\r\n${this.#setCookie}`
          : `${res.head.replace(STS_LINE, '')}${framing}x-request-id: ${this.#requestId}\r\n${this.#hsts}${this.#setCookie}`;
      if (client.closeAfter) clientHead += 'connection: close\r\n\r\n';
      else if (head.version === 'HTTP/1.0') clientHead += 'connection: keep-alive\r\n\r\n';
      else clientHead += '\r\n';
      if (clientHead.length > max) {
        this.#fail('bad_response');
        return;
      }
      if (restStart === buf.length) {
        this.#write(clientHead);
        if (framer.done) this.#responseComplete(conn, false);
        return;
      }
      let bodyEnd: number;
      try {
        bodyEnd = framer.feed(buf, restStart);
      } catch (err) {
        if (!(err instanceof FramingError)) throw err;
        this.#fail('bad_response');
        return;
      }
      const end2 = bodyEnd === -1 ? buf.length : bodyEnd;
      const forwardEnd = framer.skipFrom !== -1 ? framer.skipFrom : end2;
      const more = writeJoined(client.socket, clientHead, buf, restStart, forwardEnd);
      this.#bytesOut += clientHead.length + forwardEnd - restStart;
      this.#sentToClient = true;
      if (bodyEnd !== -1) {
        if (framer.trailersDropped) this.#write(CRLF);
        this.#responseComplete(conn, bodyEnd < buf.length);
      } else if (!more) {
        this.#upstreamPaused = true;
        conn.socket.pause();
      }
      return;
    }
  }

  #forwardResponseBody(conn: UpstreamConnection, buf: Buffer, start: number): void {
    const framer = this.#resFramer;
    let end: number;
    try {
      end = framer.feed(buf, start);
    } catch (err) {
      if (!(err instanceof FramingError)) throw err;
      // A malformed upstream body after the head was sent: nothing sensible can be told to the client.
      this.#abort('bad_response');
      return;
    }
    const forwardEnd = framer.skipFrom !== -1 ? framer.skipFrom : end === -1 ? buf.length : end;
    // Copied: `buf` is a view into the shared upstream read buffer.
    const more = forwardEnd > start ? this.#write(Buffer.from(buf.subarray(start, forwardEnd))) : true;
    if (end === -1) {
      if (!more) {
        this.#upstreamPaused = true;
        conn.socket.pause();
      }
      return;
    }
    if (framer.trailersDropped) this.#write(CRLF);
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
    if (conn !== this.#upstream || this.#finished) return;
    if (this.#resHeadDone) {
      this.#upstreamReusable = false;
      // The upstream's close delimits a close-delimited response; any other body was cut short.
      if (this.#resFramer.mode === 'close') this.#finish(false);
      else this.#abort('reset_before_response');
      return;
    }
    this.#fail(conn.connected ? 'reset_before_response' : 'connect_failed', conn, error);
  }

  /**
   * The exchange failed before a response head arrived. It is sent again only when replay is safe: a connection
   * that never connected carried no byte, so the request goes to another target (and the failing one is marked
   * unhealthy); a connection that broke before answering may have delivered the request, so it is sent again
   * only for methods that are safe to replay: on a fresh connection to the same target when the broken one was a
   * reused keep-alive connection, and to another target when a fresh connection broke, even after that first
   * replay (a target being killed closes its open connections before its listener, so the fresh connection may
   * still be accepted, then reset). Otherwise the client gets the classified status.
   */
  #fail(failure: Failure, conn?: UpstreamConnection, error?: NodeJS.ErrnoException): void {
    const target = this.#target;
    const group = this.#group;
    this.#waitingSince = 0;
    if (
      conn !== undefined &&
      target !== undefined &&
      group !== undefined &&
      this.#retries < 2 &&
      !this.#sentToClient
    ) {
      // A refused connection carried no byte, so it may follow a replay (a stale pooled connection to a target
      // that just died, then its refusal); a request that may have been delivered is replayed at most once.
      if (failure === 'connect_failed') {
        group.markFailing(target, connectionFailureReason(error));
        const other = group.pick(target);
        if (other !== undefined && other !== target) {
          this.#retry(other, false);
          return;
        }
      } else if (
        failure === 'reset_before_response' &&
        (this.#retries === 0 || (this.#replayedOnSameTarget && conn.uses === 1)) &&
        this.#reqBodyDone &&
        this.#wholeBodyInFirst &&
        replaySafe(this.#head.method, group)
      ) {
        // A reused keep-alive connection may just have been closed by the target as it went idle: a fresh
        // connection to the same target. A fresh connection that broke means the target itself went away
        // mid-request (killed, crashed): another target, as nginx's `proxy_next_upstream error` does.
        const next = conn.uses > 1 ? target : group.pick(target);
        if (next !== undefined && (next !== target || conn.uses > 1)) {
          this.#replayedOnSameTarget = next === target;
          this.#retry(next, next === target);
          return;
        }
      }
    }
    this.#status = classifyFailure(failure);
    this.#upstreamReusable = false;
    const client = this.#client;
    if (!this.#sentToClient) {
      const close = client.closeAfter || !this.#reqBodyDone;
      client.closeAfter = close;
      this.#write(this.#errorPage(this.#status, close));
    } else {
      // An interim response (100 Continue) already went out: no error page can follow it cleanly, so close.
      client.closeAfter = true;
    }
    this.#finish(true);
  }

  #retry(next: Target, fresh: boolean): void {
    this.#retries++;
    this.#target!.metrics.retries++;
    this.#lease?.end();
    this.#lease = null;
    const old = this.#upstream;
    this.#upstream = null;
    if (old !== null) {
      old.owner = null;
      old.destroy();
    }
    this.#resHeadBuf = null;
    if (this.#reqBodyDone) this.#waitingSince = performance.now();
    this.#dispatch(next, fresh);
  }

  #startTunnel(conn: UpstreamConnection, responseHead: string, buf: Buffer, restStart: number): void {
    this.#waitingSince = 0;
    this.#status = 101;
    this.#resHeadDone = true;
    this.#write(responseHead);
    if (restStart < buf.length) this.#write(Buffer.from(buf.subarray(restStart)));
    const now = performance.now();
    this.#record(false, now);
    // The tunnel's lease is taken before the request's ends, so a draining target never looks idle in between.
    const tunnel = new Tunnel(this.#client, conn, this.#target!, this.#tunnelIdleMs, now);
    this.#lease?.end();
    this.#lease = null;
    this.#upstream = null;
    this.#finished = true;
    this.#client.startTunnel(tunnel);
  }

  /** Ends the exchange at once: the client connection is closed, and the exchange recorded with `failure`. */
  #abort(failure: Failure): void {
    this.#status = classifyFailure(failure);
    this.#upstreamReusable = false;
    this.#client.closeAfter = true;
    this.#client.socket.destroy();
    this.#finish(true);
  }

  // ---- the end --------------------------------------------------------------------------------------

  #record(proxyError: boolean, now: number): void {
    const ms = now - this.#start;
    const metrics = this.#target?.metrics ?? this.#group?.metrics;
    metrics?.record(this.#status, proxyError, ms, this.#bytesIn, this.#bytesOut);
    const log = this.#client.ctx.accessLog;
    if (log !== undefined) {
      const head = this.#head;
      log.write({
        time: new Date().toISOString(),
        requestId: this.#requestId,
        client: this.#client.remoteAddress,
        proto: this.#client.listener.proto,
        method: head.method,
        host: head.host,
        path: head.target,
        status: this.#status,
        ms: Math.round(ms * 1000) / 1000,
        bytesIn: this.#bytesIn,
        bytesOut: this.#bytesOut,
        targetGroup: this.#group?.name,
        target: this.#target?.id,
      });
    }
  }

  /** Records the exchange, returns or closes the upstream connection, ends the lease, and hands back the client. */
  #finish(proxyError: boolean): void {
    if (this.#finished) return;
    const now = performance.now();
    this.#record(proxyError, now);
    const target = this.#target;
    const conn = this.#upstream;
    this.#upstream = null;
    if (conn !== null) {
      if (this.#upstreamReusable && this.#reqBodyDone && target !== undefined) target.release(conn, now);
      else {
        conn.owner = null;
        conn.destroy();
      }
    }
    this.#lease?.end();
    this.#lease = null;
    this.#finished = true;
    this.#client.exchangeEnded(this.#reqBodyDone, now);
  }

  /** Ends an exchange that involved no target (a local response or a redirect). */
  #end(): void {
    this.#finished = true;
    this.#client.exchangeEnded(this.#reqBodyDone, performance.now());
  }
}
