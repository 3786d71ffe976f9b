// Where drained log lines go: an HTTPS endpoint (batched JSON lines) or syslog (RFC 5424 over TCP/TLS), buffered.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { hostname } from 'node:os';
import tls from 'node:tls';
import type { AppLogLine } from '../../domain/metrics-types.js';

export interface SinkStats {
  sent: number;
  dropped: number;
  queued: number;
  lastError: string | null;
}

/** A destination with a bounded queue: `enqueue` never blocks; when the queue is full the oldest lines are dropped. */
export interface LogSink {
  enqueue(lines: readonly AppLogLine[]): void;
  stats(): SinkStats;
  /** Resolves once everything queued was sent, or after `timeoutMs`. */
  flush(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export interface SinkOptions {
  app: string;
  /** Lines kept while the destination is slow or down; beyond this the oldest are dropped (and counted). */
  maxQueued?: number;
  /** PEM of a CA to trust for the TLS destination (in addition to none: only this CA when given). */
  ca?: string;
  /** Retry delays grow from this to `maxRetryMs`. */
  initialRetryMs?: number;
  maxRetryMs?: number;
}

export const DEFAULT_MAX_QUEUED = 10_000;
const BATCH_LINES = 1000;

/** The queue and retry loop shared by both sinks; `send` delivers one batch or throws. */
abstract class QueuedSink implements LogSink {
  readonly #queue: AppLogLine[] = [];
  readonly #maxQueued: number;
  readonly #initialRetryMs: number;
  readonly #maxRetryMs: number;
  #sent = 0;
  #dropped = 0;
  #inFlight = 0;
  #lastError: string | null = null;
  #running = false;
  #closed = false;
  #wake: (() => void) | undefined;
  #idle: (() => void)[] = [];

  constructor(options: SinkOptions) {
    this.#maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED;
    this.#initialRetryMs = options.initialRetryMs ?? 250;
    this.#maxRetryMs = options.maxRetryMs ?? 10_000;
  }

  protected abstract send(batch: readonly AppLogLine[]): Promise<void>;
  protected abstract shutdown(): Promise<void>;

  enqueue(lines: readonly AppLogLine[]): void {
    if (this.#closed) return;
    for (const line of lines) this.#queue.push(line);
    const excess = this.#queue.length - this.#maxQueued;
    if (excess > 0) {
      this.#queue.splice(0, excess);
      this.#dropped += excess;
    }
    this.#wake?.();
    if (!this.#running) void this.#run();
  }

  stats(): SinkStats {
    return {
      sent: this.#sent,
      dropped: this.#dropped,
      queued: this.#queue.length + this.#inFlight,
      lastError: this.#lastError,
    };
  }

  async flush(timeoutMs: number): Promise<void> {
    if (this.#queue.length === 0 && this.#inFlight === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    await this.shutdown();
  }

  async #run(): Promise<void> {
    this.#running = true;
    let failures = 0;
    while (!this.#closed && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, BATCH_LINES);
      this.#inFlight = batch.length;
      try {
        await this.send(batch);
        this.#sent += batch.length;
        failures = 0;
      } catch (error) {
        this.#lastError = error instanceof Error ? error.message : String(error);
        failures++;
        // Back in front, in order; if that overflows the queue the oldest go (they are the ones retried longest).
        this.#queue.unshift(...batch);
        this.#inFlight = 0;
        const excess = this.#queue.length - this.#maxQueued;
        if (excess > 0) {
          this.#queue.splice(0, excess);
          this.#dropped += excess;
        }
        if (this.#closed) break;
        const delay = Math.min(this.#maxRetryMs, this.#initialRetryMs * 2 ** (failures - 1));
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.#wake = () => {
            if (this.#closed) {
              clearTimeout(timer);
              resolve();
            }
          };
        });
        this.#wake = undefined;
      } finally {
        this.#inFlight = 0;
      }
    }
    this.#running = false;
    for (const resolve of this.#idle.splice(0)) resolve();
  }
}

/** POSTs batches as `application/x-ndjson`: one `{t, app, service, instance, source, line}` object per line. */
export class HttpsSink extends QueuedSink {
  readonly #url: URL;
  readonly #app: string;
  readonly #agent: http.Agent;

  constructor(url: string, options: SinkOptions) {
    super(options);
    this.#url = new URL(url);
    this.#app = options.app;
    this.#agent =
      this.#url.protocol === 'https:'
        ? new https.Agent({ keepAlive: true, ...(options.ca ? { ca: options.ca } : {}) })
        : new http.Agent({ keepAlive: true });
  }

  protected send(batch: readonly AppLogLine[]): Promise<void> {
    const body = `${batch.map((l) => JSON.stringify({ app: this.#app, ...l })).join('\n')}\n`;
    const request = this.#url.protocol === 'https:' ? https.request : http.request;
    return new Promise<void>((resolve, reject) => {
      const req = request(
        this.#url,
        {
          method: 'POST',
          agent: this.#agent,
          headers: { 'content-type': 'application/x-ndjson', 'content-length': Buffer.byteLength(body) },
          timeout: 10_000,
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve();
            else reject(new Error(`drain endpoint answered ${status}`));
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('drain endpoint timed out')));
      req.on('error', reject);
      req.end(body);
    });
  }

  protected async shutdown(): Promise<void> {
    this.#agent.destroy();
  }
}

/** Severity 6 (informational) for stdout and events, 3 (error) for stderr; facility 1 (user). */
function priority(line: AppLogLine): number {
  return 8 + (line.source === 'err' ? 3 : 6);
}

/** RFC 5424 header fields are printable US-ASCII without spaces, with length limits. */
function headerField(value: string | null, max: number): string {
  const clean = (value ?? '').replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return clean === '' ? '-' : clean;
}

/** One RFC 5424 message: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG`. */
export function formatSyslog(app: string, line: AppLogLine, host = hostname()): string {
  return `<${priority(line)}>1 ${new Date(line.t || Date.now()).toISOString()} ${headerField(host, 255)} ${headerField(app, 48)} ${headerField(line.instance, 128)} ${headerField(line.service ?? line.source, 32)} - ${line.line}`;
}

/** Syslog over TCP (`syslog://host:port`) or TLS (`syslog+tls://`), octet-counted framing (RFC 6587 §3.4.1). */
export class SyslogSink extends QueuedSink {
  readonly #url: URL;
  readonly #app: string;
  readonly #ca: string | undefined;
  #socket: net.Socket | undefined;

  constructor(url: string, options: SinkOptions) {
    super(options);
    this.#url = new URL(url);
    this.#app = options.app;
    this.#ca = options.ca;
  }

  async #connect(): Promise<net.Socket> {
    if (this.#socket && !this.#socket.destroyed && this.#socket.writable) return this.#socket;
    const host = this.#url.hostname;
    const port = Number(this.#url.port || (this.#url.protocol === 'syslog+tls:' ? 6514 : 514));
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s =
        this.#url.protocol === 'syslog+tls:'
          ? tls.connect({ host, port, servername: host, ...(this.#ca ? { ca: this.#ca } : {}) }, () =>
              resolve(s),
            )
          : net.connect({ host, port }, () => resolve(s));
      s.once('error', reject);
    });
    socket.on('error', () => socket.destroy());
    socket.setNoDelay(true);
    this.#socket = socket;
    return socket;
  }

  protected async send(batch: readonly AppLogLine[]): Promise<void> {
    const socket = await this.#connect();
    const frames = batch.map((line) => {
      const message = Buffer.from(formatSyslog(this.#app, line));
      return Buffer.concat([Buffer.from(`${message.length} `), message]);
    });
    await new Promise<void>((resolve, reject) => {
      socket.write(Buffer.concat(frames), (error) => (error ? reject(error) : resolve()));
    });
  }

  protected async shutdown(): Promise<void> {
    const socket = this.#socket;
    if (!socket || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      socket.end(() => resolve());
      setTimeout(() => {
        socket.destroy();
        resolve();
      }, 1000).unref();
    });
  }
}
