// The differential oracle of the proxy's HTTP/1.1 engine: llhttp (Node's parser) and h11 (Python) frame what it forwarded.
//
// A request case is raw bytes sent to the proxy on a fresh connection. The recording backend answers every request
// with `Connection: close`, so each upstream connection carries exactly one request as the proxy framed it; both
// parsers must frame that connection's bytes as exactly one request (same method, target, headers, body, nothing
// left over), or agree that it was cut short (the proxy aborted it). What the client got back must parse cleanly
// too. A response case is raw bytes a crafted backend answers with; what reaches the client must parse the same
// with both parsers, followed by an intact second response on the same connection. Refusing (4xx/5xx from the
// proxy itself) always satisfies the oracle; a case may also demand one outcome.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import { createRequire } from 'node:module';
import net from 'node:net';
import { join } from 'node:path';

// ---- llhttp, driven directly (the parser node:http runs) ----------------------------------------

interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize?: number): void;
  execute(data: Buffer): number | (Error & { code?: string; bytesParsed?: number });
  finish(): undefined | (Error & { code?: string });
  close(): void;
  [callback: number]: unknown;
}
interface LlhttpModule {
  HTTPParser: {
    new (): LlhttpParser;
    REQUEST: number;
    RESPONSE: number;
    kOnMessageBegin: number;
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
    kOnExecute: number;
  };
  methods: string[];
}
// `_http_common` is node:http's own module; its HTTPParser is llhttp with node's callbacks.
const { HTTPParser, methods: LLHTTP_METHODS } = createRequire(import.meta.url)(
  '_http_common',
) as LlhttpModule;

/** One message as a parser framed it. Header names are lower-cased. */
export interface FramedMessage {
  method?: string;
  target?: string;
  status?: number;
  informational?: boolean;
  version: string;
  headers: [string, string][];
  body: Buffer;
  complete: boolean;
  trailers: [string, string][];
}

/** Everything a parser made of a byte stream. `trailing`: bytes it received but did not frame. */
export interface Framing {
  messages: FramedMessage[];
  error: string | undefined;
  trailing: number;
}

function pairs(list: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < list.length; i += 2) out.push([list[i]!.toLowerCase(), list[i + 1]!]);
  return out;
}

/**
 * Frames `data` with llhttp, strict (no lenient flags), with node's default head limit. `server`: requests from a
 * client; `client`: responses from a server to requests with `requestMethods` (HEAD responses have no body).
 */
export function llhttpFrame(
  role: 'server' | 'client',
  data: Buffer,
  eof: boolean,
  requestMethods: readonly string[] = [],
): Framing {
  const parser = new HTTPParser();
  parser.initialize(role === 'server' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {}, http.maxHeaderSize);
  const messages: FramedMessage[] = [];
  let current: FramedMessage | undefined;
  let inBody = false;
  let pending: string[] = [];
  let pendingUrl = '';
  let finals = 0;
  parser[HTTPParser.kOnMessageBegin] = () => {
    pending = [];
    pendingUrl = '';
  };
  parser[HTTPParser.kOnHeaders] = (headers: string[], url: string) => {
    if (inBody && current !== undefined) current.trailers.push(...pairs(headers));
    else {
      pending.push(...headers);
      pendingUrl += url ?? '';
    }
  };
  parser[HTTPParser.kOnHeadersComplete] = (
    major: number,
    minor: number,
    headers: string[] | undefined,
    method: number | undefined,
    url: string | undefined,
    status: number | undefined,
    _statusMessage: string | undefined,
    _upgrade: boolean,
  ): number => {
    current = {
      version: `${major}.${minor}`,
      headers: pairs(headers ?? pending),
      body: Buffer.alloc(0),
      complete: false,
      trailers: [],
    };
    messages.push(current);
    inBody = true;
    if (role === 'server') {
      current.method = LLHTTP_METHODS[method ?? -1] ?? String(method);
      current.target = url || pendingUrl;
      return 0;
    }
    current.status = status;
    if (status !== undefined && status >= 100 && status < 200 && status !== 101) {
      current.informational = true;
      return 1;
    }
    const requestMethod = requestMethods[finals++];
    return requestMethod === 'HEAD' ? 1 : 0;
  };
  parser[HTTPParser.kOnBody] = (chunk: Buffer) => {
    if (current !== undefined) current.body = Buffer.concat([current.body, chunk]);
  };
  parser[HTTPParser.kOnMessageComplete] = () => {
    if (current !== undefined) current.complete = true;
    inBody = false;
  };
  parser[HTTPParser.kOnExecute] = () => {};
  let error: string | undefined;
  let consumed = data.length;
  if (data.length > 0) {
    const ret = parser.execute(data);
    if (typeof ret === 'number') consumed = ret;
    else error = ret.code ?? ret.message;
  }
  if (eof && error === undefined) {
    const fin = parser.finish();
    if (fin instanceof Error) error = fin.code ?? fin.message;
  }
  parser.close();
  return { messages, error, trailing: error === undefined ? data.length - consumed : 0 };
}

/** Where the message llhttp refuses in `data` starts: just after the last request it framed completely. */
function refusedFrom(data: Buffer): number {
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.REQUEST, {}, http.maxHeaderSize);
  let completed = false;
  for (const k of [
    HTTPParser.kOnMessageBegin,
    HTTPParser.kOnHeaders,
    HTTPParser.kOnBody,
    HTTPParser.kOnExecute,
  ])
    parser[k] = () => {};
  parser[HTTPParser.kOnHeadersComplete] = () => 0;
  parser[HTTPParser.kOnMessageComplete] = () => {
    completed = true;
  };
  // One byte at a time, to know the offset at which each request completes.
  let start = 0;
  for (let i = 0; i < data.length; i++) {
    if (typeof parser.execute(data.subarray(i, i + 1)) !== 'number') break;
    if (completed) start = i + 1;
    completed = false;
  }
  parser.close();
  return start;
}

// ---- h11, in a Python process (Debian: python3-h11) -------------------------------------------

/** One job for h11: see test/h11-frame.py. */
export interface H11Job {
  role: 'server' | 'client';
  data: Buffer;
  eof?: boolean;
  requests?: { method: string; target: string }[];
}

const H11_SCRIPT = join(import.meta.dirname, '..', '..', 'test', 'h11-frame.py');

/** A Python with h11, or undefined (the differential tests then skip with the package name). */
export function findPythonWithH11(): string | undefined {
  const candidates = [process.env.BERTH_PYTHON, '/usr/bin/python3', 'python3'].filter(
    (p): p is string => p !== undefined && p !== '',
  );
  for (const python of candidates) {
    const probe = spawnSync(python, ['-c', 'import h11'], { stdio: 'ignore', timeout: 10_000 });
    if (probe.status === 0) return python;
  }
  return undefined;
}

export const H11_MISSING = 'needs Python h11 (Debian package python3-h11)';

/** A long-lived h11 process answering framing jobs in order. */
export class H11 {
  readonly #child: ChildProcess;
  readonly #waiting: { resolve: (f: Framing) => void; reject: (e: Error) => void }[] = [];
  #out = '';
  #stderr = '';

  constructor(python: string) {
    this.#child = spawn(python, [H11_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stdout!.setEncoding('utf8');
    this.#child.stdout!.on('data', (text: string) => {
      this.#out += text;
      for (let nl = this.#out.indexOf('\n'); nl !== -1; nl = this.#out.indexOf('\n')) {
        const line = this.#out.slice(0, nl);
        this.#out = this.#out.slice(nl + 1);
        const raw = JSON.parse(line) as {
          messages: (Omit<FramedMessage, 'body'> & { body: string })[];
          error: string | null;
          trailing: number;
        };
        this.#waiting.shift()?.resolve({
          messages: raw.messages.map((m) => ({
            ...m,
            headers: m.headers.map(([k, v]) => [k.toLowerCase(), v] as [string, string]),
            trailers: m.trailers.map(([k, v]) => [k.toLowerCase(), v] as [string, string]),
            body: Buffer.from(m.body, 'base64'),
          })),
          error: raw.error ?? undefined,
          trailing: raw.trailing,
        });
      }
    });
    this.#child.stderr!.on('data', (c: Buffer) => {
      this.#stderr += c.toString();
    });
    this.#child.on('exit', (code) => {
      for (const w of this.#waiting.splice(0))
        w.reject(new Error(`h11 exited with ${code}: ${this.#stderr}`));
    });
  }

  frame(jobs: readonly H11Job[]): Promise<Framing[]> {
    const results = jobs.map(
      (job) =>
        new Promise<Framing>((resolve, reject) => {
          this.#waiting.push({ resolve, reject });
          this.#child.stdin!.write(
            `${JSON.stringify({ role: job.role, data: job.data.toString('base64'), eof: job.eof === true, requests: job.requests ?? [] })}\n`,
          );
        }),
    );
    return Promise.all(results);
  }

  async close(): Promise<void> {
    this.#child.stdin!.end();
    if (this.#child.exitCode === null) await new Promise((resolve) => this.#child.once('exit', resolve));
  }
}

// ---- comparing framings ------------------------------------------------------------------------

function describeMessage(m: FramedMessage): string {
  const start = m.method !== undefined ? `${m.method} ${m.target}` : `${m.status}`;
  return `${start} HTTP/${m.version} body ${JSON.stringify(m.body.toString('latin1'))}${m.complete ? '' : ' (incomplete)'}`;
}

/** Describes how two framings of the same bytes differ, or undefined when they agree. */
export function framingDifference(a: Framing, b: Framing, names = ['llhttp', 'h11']): string | undefined {
  if ((a.error === undefined) !== (b.error === undefined))
    return `${names[0]} error ${a.error ?? 'none'}, ${names[1]} error ${b.error ?? 'none'}`;
  const n = Math.max(a.messages.length, b.messages.length);
  for (let i = 0; i < n; i++) {
    const x = a.messages[i];
    const y = b.messages[i];
    if (x === undefined || y === undefined) {
      return `${names[0]} framed ${a.messages.length} messages, ${names[1]} ${b.messages.length}: ${[...a.messages, ...b.messages].map(describeMessage).join(' | ')}`;
    }
    if (
      x.method !== y.method ||
      x.target !== y.target ||
      x.status !== y.status ||
      x.complete !== y.complete ||
      !x.body.equals(y.body)
    ) {
      return `message ${i}: ${names[0]} ${describeMessage(x)}; ${names[1]} ${describeMessage(y)}`;
    }
    if (JSON.stringify(x.headers) !== JSON.stringify(y.headers))
      return `message ${i} headers: ${names[0]} ${JSON.stringify(x.headers)}; ${names[1]} ${JSON.stringify(y.headers)}`;
    if (JSON.stringify(x.trailers) !== JSON.stringify(y.trailers))
      return `message ${i} trailers: ${names[0]} ${JSON.stringify(x.trailers)}; ${names[1]} ${JSON.stringify(y.trailers)}`;
  }
  // Unused bytes after complete messages (a message cut short keeps its partial bytes buffered: not compared).
  const lastComplete = a.messages.at(-1)?.complete ?? true;
  if (a.error === undefined && lastComplete && a.trailing !== b.trailing)
    return `${names[0]} left ${a.trailing} bytes, ${names[1]} ${b.trailing}`;
  return undefined;
}

function header(m: FramedMessage, name: string): string | undefined {
  return m.headers.find(([k]) => k === name)?.[1];
}

// ---- backends ----------------------------------------------------------------------------------

export const HEALTH_PATH = '/__health';

/** One upstream connection the recording backend accepted. */
export interface RecordedConnection {
  chunks: Buffer[];
  closed: boolean;
  health: boolean;
  whenClosed: Promise<void>;
}

/**
 * A raw TCP backend that records every byte it receives. It frames requests with llhttp only to know when to
 * answer: each request gets a small 200 with `x-backend: oracle` and `connection: close`.
 */
export class RecordingBackend {
  readonly connections: RecordedConnection[] = [];
  /** Called whenever bytes arrive or a connection ends (a client waiting on the backend re-checks then). */
  onActivity: (() => void) | undefined;
  readonly #server: net.Server;
  port = 0;

  constructor() {
    this.#server = net.createServer((socket) => {
      let closedResolve!: () => void;
      const rec: RecordedConnection = {
        chunks: [],
        closed: false,
        health: false,
        whenClosed: new Promise((resolve) => {
          closedResolve = resolve;
        }),
      };
      this.connections.push(rec);
      const parser = new HTTPParser();
      parser.initialize(HTTPParser.REQUEST, {}, http.maxHeaderSize);
      let answered = false;
      const answer = (status: number) => {
        if (answered) return;
        answered = true;
        const body = status === 200 ? 'ok' : 'bad';
        socket.end(
          `HTTP/1.1 ${status} ${status === 200 ? 'OK' : 'Bad Request'}\r\nx-backend: oracle\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
        );
      };
      parser[HTTPParser.kOnMessageBegin] = () => {};
      parser[HTTPParser.kOnHeaders] = () => {};
      parser[HTTPParser.kOnHeadersComplete] = (
        _ma: number,
        _mi: number,
        _h: unknown,
        _m: number,
        url: string | undefined,
      ) => {
        if (url === HEALTH_PATH && rec.chunks.length === 1) rec.health = true;
        return 0;
      };
      parser[HTTPParser.kOnBody] = () => {};
      parser[HTTPParser.kOnMessageComplete] = () => answer(200);
      parser[HTTPParser.kOnExecute] = () => {};
      socket.on('data', (chunk: Buffer) => {
        rec.chunks.push(chunk);
        if (!answered) {
          const ret = parser.execute(chunk);
          if (typeof ret !== 'number') answer(400);
        }
        this.onActivity?.();
      });
      socket.on('error', () => {});
      socket.on('close', () => {
        rec.closed = true;
        parser.close();
        closedResolve();
        this.onActivity?.();
      });
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as net.AddressInfo).port;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

/** A crafted upstream response: the exact bytes a backend answers `/r/<id>` with. */
export interface CraftedResponse {
  bytes: Buffer;
  /** The backend closes the connection after writing them. */
  close: boolean;
}

/** A raw TCP backend that answers `/r/<id>` with crafted bytes and `/ok` with a plain 200 `ok`. */
export class CraftedBackend {
  readonly cases = new Map<string, CraftedResponse>();
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  port = 0;

  constructor() {
    this.#server = net.createServer((socket) => {
      this.#sockets.add(socket);
      let buf = '';
      socket.on('data', (chunk: Buffer) => {
        buf += chunk.toString('latin1');
        for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
          const line = buf.slice(0, buf.indexOf('\r\n'));
          buf = buf.slice(end + 4);
          const target = line.split(' ')[1] ?? '';
          const crafted = target.startsWith('/r/') ? this.cases.get(target.slice(3)) : undefined;
          if (crafted !== undefined) {
            socket.write(crafted.bytes);
            if (crafted.close) {
              socket.end();
              return;
            }
          } else if (target === HEALTH_PATH) {
            socket.end('HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
            return;
          } else {
            socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
          }
        }
      });
      socket.on('error', () => {});
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as net.AddressInfo).port;
  }

  close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

// ---- the client side -------------------------------------------------------------------------

interface ClientResult {
  received: Buffer;
  closedByProxy: boolean;
  timedOut: boolean;
  ms: number;
}

/**
 * Sends `bytes` on a new connection and collects the answer until `done(received)` holds (checked on each answer
 * and whenever `watch` reports activity elsewhere), the proxy closes, or `deadlineMs`; then closes the connection.
 * `settled`, checked once at `settled.afterMs`, ends the wait early (as timed out) when it holds.
 */
function talk(
  port: number,
  bytes: Buffer,
  done: (received: Buffer) => boolean,
  deadlineMs: number,
  watch?: (recheck: (() => void) | undefined) => void,
  split: readonly number[] = [],
  settled?: { afterMs: number; holds: (received: Buffer) => boolean },
): Promise<ClientResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let finished = false;
    const finish = (closedByProxy: boolean, timedOut: boolean) => {
      if (finished) return;
      finished = true;
      watch?.(undefined);
      clearTimeout(timer);
      socket.destroy();
      resolve({ received: Buffer.concat(chunks), closedByProxy, timedOut, ms: performance.now() - started });
    };
    // A deadline that passes while this process is not running (a busy machine, or the other lanes' work) must not
    // beat an answer that arrived meanwhile: timers run before I/O in a turn of the event loop, so the verdict
    // waits for the I/O of the next turn (an answer waiting in the socket is read first).
    const timer = setTimeout(() => setImmediate(() => finish(false, true)), deadlineMs);
    if (settled !== undefined)
      setTimeout(() => {
        if (!finished && settled.holds(Buffer.concat(chunks))) finish(false, true);
      }, settled.afterMs);
    socket.setNoDelay(true);
    socket.on('connect', async () => {
      // Pieces a millisecond apart reach the proxy as separate reads, as from a slow client.
      let from = 0;
      for (const at of [...split, bytes.length]) {
        if (at <= from || at > bytes.length) continue;
        if (from > 0) await new Promise((resolve) => setTimeout(resolve, 1));
        if (finished) return;
        socket.write(bytes.subarray(from, at));
        from = at;
      }
    });
    watch?.(() => {
      if (!finished && done(Buffer.concat(chunks))) finish(false, false);
    });
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (done(Buffer.concat(chunks))) finish(false, false);
    });
    socket.on('error', () => {});
    socket.on('close', () => finish(true, false));
  });
}

function finalResponses(framing: Framing): FramedMessage[] {
  return framing.messages.filter((m) => m.informational !== true);
}

/** A request refused by the proxy: a final 4xx/5xx that the recording backend did not make. */
function isRequestRefusal(m: FramedMessage): boolean {
  return m.status !== undefined && m.status >= 400 && header(m, 'x-backend') === undefined;
}

/** An error page of the proxy itself (crafted backends never send these headers). */
function isProxyErrorPage(m: FramedMessage): boolean {
  return (
    m.status !== undefined &&
    m.status >= 500 &&
    header(m, 'cache-control') === 'no-store' &&
    header(m, 'content-type') === 'text/html; charset=utf-8'
  );
}

/** What a request case is required to end in; `either` leaves it to the oracle alone. */
export type Expectation = 'forward' | 'refuse' | 'either';

export interface RequestCase {
  name: string;
  bytes: Buffer;
  expect: Expectation;
  /** For refusals: the status the proxy must answer with. */
  status?: number;
  /** Offsets at which the bytes are cut into pieces sent a millisecond apart (default: one write). */
  split?: number[];
  /** Extra assertion on the outcome; returns what is wrong, or undefined. */
  check?: (outcome: RequestOutcome) => string | undefined;
}

export interface RequestOutcome {
  client: ClientResult;
  /** The client's bytes as llhttp frames them (responses). */
  responses: FramedMessage[];
  /** Each upstream connection the case produced, as llhttp framed it (h11 agreed, or the case failed). */
  forwarded: { bytes: Buffer; framing: Framing }[];
  refusal: FramedMessage | undefined;
}

export interface ResponseCase {
  name: string;
  /** The bytes the backend answers with. */
  response: Buffer;
  /** The backend closes the connection after writing them. */
  close?: boolean;
  method?: 'GET' | 'HEAD';
  /** HTTP version of the client's request. */
  version?: '1.1' | '1.0';
  expect: Expectation;
  /** When forwarded: the status and decoded body the client must get. */
  status?: number;
  body?: string;
  check?: (outcome: ResponseOutcome) => string | undefined;
}

export interface ResponseOutcome {
  client: ClientResult;
  responses: FramedMessage[];
  refusal: FramedMessage | undefined;
}

/** How long a client waits for an answer it is owed (a refusal, or its request at the backend). */
const ANSWER_DEADLINE_MS = 5000;

/** Runs cases against a proxy whose route `p.localhost` goes to `recording` and `r.localhost` to `crafted`. */
export class Oracle {
  readonly #port: number;
  readonly #recording: RecordingBackend;
  readonly #crafted: CraftedBackend;
  readonly #h11: H11;
  #nextId = 0;

  constructor(proxyPort: number, recording: RecordingBackend, crafted: CraftedBackend, h11: H11) {
    this.#port = proxyPort;
    this.#recording = recording;
    this.#crafted = crafted;
    this.#h11 = h11;
  }

  /**
   * Runs one request case; resolves with what failed (undefined when it passed). `deadlineMs` bounds how long
   * the client waits for answers.
   */
  async request(c: RequestCase, deadlineMs = 3000): Promise<string | undefined> {
    const run = await this.runRequest(c, deadlineMs);
    const [clientH11, ...upstreamH11] = await this.#h11.frame(run.jobs);
    return this.judgeRequest(c, run, clientH11!, upstreamH11);
  }

  /** The live part of a request case; `jobs` are for h11 (client bytes first, then each upstream connection). */
  async runRequest(
    c: RequestCase,
    deadlineMs: number,
  ): Promise<{ outcome: RequestOutcome; clientFraming: Framing; jobs: H11Job[]; awaited: boolean }> {
    const mark = this.#recording.connections.length;
    // What to wait for: llhttp's reading of the client's bytes (only a hint: the proxy may frame differently).
    const hint = llhttpFrame('server', c.bytes, false);
    const completeHint = hint.messages.filter((m) => m.complete).length;
    const methods = hint.messages.map((m) => m.method ?? 'GET');
    // A refusal is awaited for bytes llhttp refuses once a head ended (or a bare CR or LF shows it never will):
    // before that, the proxy may wait for the rest of a line it cannot judge yet.
    // Judged on the refused message's own bytes: a head that ended before it (a complete request) does not count.
    const from = hint.error === undefined || completeHint === 0 ? 0 : refusedFrom(c.bytes);
    const text = c.bytes.subarray(from).toString('latin1');
    const judgeable = text.includes('\r\n\r\n') || /\r(?!\n)|(?<!\r)\n/.test(text.replace(/\r$/, ''));
    const expected = completeHint + (hint.error !== undefined && judgeable ? 1 : 0);
    const partial = hint.error === undefined && hint.messages.some((m) => !m.complete);
    const upstream = () => this.#recording.connections.slice(mark).filter((r) => !r.health);
    const awaited = expected > 0 || partial;
    // What is awaited gets ANSWER_DEADLINE_MS (a busy machine is slow, not wrong); after `deadlineMs` the wait
    // ends anyway once the case got an answer or reached the backend (the proxy may wait on bytes llhttp refused).
    const answered = (received: Buffer) =>
      upstream().length > 0 || finalResponses(llhttpFrame('client', received, false, methods)).length > 0;
    let framedLength = -1;
    let finals = 0;
    const client = await talk(
      this.#port,
      c.bytes,
      (received) => {
        // Nothing framed (an unfinished head): only the proxy's answer or the deadline ends the wait.
        if (expected === 0 && !partial) return false;
        // Framed again only when more arrived (this is also checked on every upstream activity).
        if (received.length !== framedLength) {
          framedLength = received.length;
          finals = finalResponses(llhttpFrame('client', received, false, methods)).filter(
            (m) => m.complete,
          ).length;
        }
        if (finals < expected) return false;
        if (!partial) return true;
        // The last request's body is incomplete: let its head reach the backend before hanging up.
        const last = upstream()[completeHint];
        return last !== undefined && Buffer.concat(last.chunks).includes('\r\n\r\n');
      },
      awaited ? Math.max(deadlineMs, ANSWER_DEADLINE_MS) : deadlineMs,
      (recheck) => {
        this.#recording.onActivity = recheck;
      },
      c.split,
      awaited && deadlineMs < ANSWER_DEADLINE_MS ? { afterMs: deadlineMs, holds: answered } : undefined,
    );
    // Every upstream connection of this case ends (the proxy aborts what it was still sending when the client left).
    const pending = this.#recording.connections.slice(mark).filter((r) => !r.closed);
    await Promise.race([
      Promise.all(pending.map((r) => r.whenClosed)),
      new Promise((resolve) => setTimeout(resolve, 3000)),
    ]);
    const connections = upstream();
    const forwarded = connections.map((r) => {
      const bytes = Buffer.concat(r.chunks);
      return { bytes, framing: llhttpFrame('server', bytes, false) };
    });
    const clientFraming = llhttpFrame('client', client.received, client.closedByProxy, methods);
    const responses = clientFraming.messages;
    const refusal = finalResponses(clientFraming).find(isRequestRefusal);
    // h11 needs the requests the responses answer: those llhttp framed, then GETs (a refusal answers a request
    // llhttp could not frame, and the proxy may have framed more requests than llhttp did).
    const answers = Math.max(methods.length, finalResponses(clientFraming).length) + 1;
    const requests = Array.from({ length: answers }, (_, i) => ({
      method: methods[i] ?? 'GET',
      target: '/',
    }));
    const jobs: H11Job[] = [
      { role: 'client', data: client.received, eof: client.closedByProxy, requests },
      ...forwarded.map((f) => ({ role: 'server' as const, data: f.bytes })),
    ];
    return {
      outcome: { client, responses, forwarded, refusal },
      clientFraming,
      jobs,
      awaited,
    };
  }

  /** The verdict of a request case once h11 has framed its bytes. */
  judgeRequest(
    c: RequestCase,
    run: { outcome: RequestOutcome; clientFraming: Framing; awaited: boolean },
    clientH11: Framing,
    upstreamH11: Framing[],
  ): string | undefined {
    const { outcome, clientFraming } = run;
    const problems: string[] = [];
    // The client side: a sequence of responses both parsers agree on, none cut short by the proxy.
    const clientDiff = framingDifference(clientFraming, clientH11);
    if (clientDiff !== undefined) problems.push(`responses to the client: ${clientDiff}`);
    else if (clientFraming.error !== undefined)
      problems.push(`responses to the client do not parse: ${clientFraming.error}`);
    else if (outcome.client.closedByProxy && clientFraming.messages.some((m) => !m.complete))
      problems.push('the proxy closed the client connection in the middle of a response');
    // An unfinished head may be waited on for ever; anything llhttp could frame (or refuse) must get an answer.
    if (
      run.awaited &&
      outcome.client.timedOut &&
      outcome.refusal === undefined &&
      outcome.forwarded.length === 0
    )
      problems.push('no answer before the deadline');
    // Each upstream connection: one request, framed alike by both parsers, nothing after it.
    outcome.forwarded.forEach((f, i) => {
      const h11 = upstreamH11[i]!;
      const diff = framingDifference(f.framing, h11);
      const where = `upstream connection ${i + 1} (${JSON.stringify(f.bytes.toString('latin1').slice(0, 400))})`;
      if (diff !== undefined) problems.push(`${where}: parsers disagree: ${diff}`);
      else if (f.framing.error !== undefined) problems.push(`${where}: not valid HTTP: ${f.framing.error}`);
      else if (f.framing.messages.length > 1)
        problems.push(`${where}: ${f.framing.messages.length} requests where the proxy sent one`);
      else if (f.framing.messages[0]?.complete === true && f.framing.trailing > 0)
        problems.push(`${where}: ${f.framing.trailing} bytes after the request`);
    });
    const forwardedCount = outcome.forwarded.filter((f) => f.framing.messages[0]?.complete === true).length;
    if (c.expect === 'forward') {
      if (outcome.refusal !== undefined)
        problems.push(`expected it forwarded, the proxy answered ${outcome.refusal.status}`);
      else if (forwardedCount === 0) problems.push('expected it forwarded, nothing reached the backend');
    } else if (c.expect === 'refuse') {
      // An abort counts as a refusal: the proxy closed both sides before the request was complete upstream.
      const aborted =
        outcome.client.closedByProxy &&
        outcome.forwarded.some((f) => f.framing.messages[0]?.complete !== true);
      if (outcome.refusal === undefined && !aborted)
        problems.push(
          `expected a refusal, got ${
            finalResponses(clientFraming)
              .map((m) => m.status)
              .join(', ') || 'no response'
          }`,
        );
      else if (c.status !== undefined && outcome.refusal !== undefined && outcome.refusal.status !== c.status)
        problems.push(`expected ${c.status}, the proxy answered ${outcome.refusal.status}`);
    }
    const extra = c.check?.(outcome);
    if (extra !== undefined) problems.push(extra);
    return problems.length === 0 ? undefined : problems.join('\n  ');
  }

  /** Runs one response case; resolves with what failed (undefined when it passed). */
  async response(c: ResponseCase, deadlineMs = 3000): Promise<string | undefined> {
    const id = String(++this.#nextId);
    this.#crafted.cases.set(id, { bytes: c.response, close: c.close === true });
    const method = c.method ?? 'GET';
    const version = c.version ?? '1.1';
    const methods = version === '1.1' ? [method, 'GET'] : [method];
    const bytes = Buffer.from(
      `${method} /r/${id} HTTP/${version}\r\nHost: r.localhost\r\n\r\n` +
        (version === '1.1' ? 'GET /ok HTTP/1.1\r\nHost: r.localhost\r\n\r\n' : ''),
      'latin1',
    );
    const client = await talk(
      this.#port,
      bytes,
      (received) =>
        finalResponses(llhttpFrame('client', received, false, methods)).filter((m) => m.complete).length >=
        methods.length,
      deadlineMs,
    );
    this.#crafted.cases.delete(id);
    const framing = llhttpFrame('client', client.received, client.closedByProxy, methods);
    const [h11] = await this.#h11.frame([
      {
        role: 'client',
        data: client.received,
        eof: client.closedByProxy,
        requests: methods.map((m) => ({ method: m, target: '/' })),
      },
    ]);
    const problems: string[] = [];
    const diff = framingDifference(framing, h11!);
    const finals = finalResponses(framing);
    // Cut short by the proxy: a response it had started and then had to abort (a malformed body after the head).
    const unfinished = llhttpFrame('client', client.received, false, methods);
    const aborted =
      client.closedByProxy &&
      unfinished.error === undefined &&
      unfinished.messages.length > 0 &&
      !unfinished.messages.at(-1)!.complete &&
      framing.error !== undefined;
    if (diff !== undefined) problems.push(`parsers disagree on what the client got: ${diff}`);
    else if (framing.error !== undefined && !aborted)
      problems.push(`what the client got does not parse: ${framing.error}`);
    else if (framing.trailing > 0) problems.push(`${framing.trailing} bytes after the responses`);
    const first = finals[0];
    const refusal = first !== undefined && isProxyErrorPage(first) ? first : undefined;
    if (first === undefined) problems.push('no response');
    else if (refusal === undefined && !aborted) {
      if (c.status !== undefined && first.status !== c.status)
        problems.push(`status ${first.status}, expected ${c.status}`);
      if (c.body !== undefined && first.body.toString('latin1') !== c.body)
        problems.push(
          `body ${JSON.stringify(first.body.toString('latin1'))}, expected ${JSON.stringify(c.body)}`,
        );
    }
    // The second response on the connection must be intact, unless the proxy closed after the first one.
    if (version === '1.1' && first !== undefined && !aborted) {
      const second = finals[1];
      if (second === undefined) {
        if (!client.closedByProxy) problems.push('no second response and the connection stayed open');
      } else if (second.status !== 200 || second.body.toString('latin1') !== 'ok') {
        problems.push(`second response damaged: ${describeMessage(second)}`);
      }
    }
    if (c.expect === 'forward' && (refusal !== undefined || aborted))
      problems.push(
        `expected it forwarded, the proxy ${aborted ? 'aborted it' : `answered ${refusal!.status}`}`,
      );
    if (c.expect === 'refuse' && refusal === undefined && !aborted)
      problems.push(
        `expected a refusal, the client got ${first === undefined ? 'nothing' : describeMessage(first)}`,
      );
    const extra = c.check?.({ client, responses: framing.messages, refusal });
    if (extra !== undefined) problems.push(extra);
    return problems.length === 0 ? undefined : problems.join('\n  ');
  }
}

/** Asserts that no case failed, listing every failure. */
export function assertAllPassed(failures: { name: string; problem: string }[], total: number): void {
  assert.equal(
    failures.length,
    0,
    `${failures.length} of ${total} cases failed:\n${failures.map((f) => `- ${f.name}\n  ${f.problem}`).join('\n')}`,
  );
}

/** The header values a framed message carries for `name`. */
export function headerValues(m: FramedMessage | undefined, name: string): string[] {
  return m === undefined ? [] : m.headers.filter(([k]) => k === name).map(([, v]) => v);
}
