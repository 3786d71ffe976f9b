// Splits the proxy's JSON-lines access log per app: each request line goes to `<logDir>/<app>/access.log`.
import { appendFileSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../lib/logger.js';
import { every, type Ticker } from '../../lib/ticker.js';
import type { Store } from '../store/store.js';
import { serviceGroupOf } from '../traffic/target-groups.js';
import { readRange } from './app-logs.js';

/** The fields of the proxy's access log that an app's log keeps (see src/proxy/access-log.ts). */
interface ProxyAccessEntry {
  time: string;
  requestId: string;
  method: string;
  path: string;
  status: number;
  ms: number;
  bytesOut: number;
  targetGroup?: string;
  target?: string;
}

/** One line of an app's `access.log`: the shim's `{t, s, l}` shape plus the instance and service it went to. */
export interface AccessRecord {
  t: number;
  s: 'access';
  l: string;
  i: string;
  svc: string;
}

export function accessLogPath(logDir: string, app: string): string {
  return join(logDir, app, 'access.log');
}

/** `GET /cart 200 12.3ms 512B req=abc`: what a person scans for. */
export function formatAccess(entry: ProxyAccessEntry): string {
  return `${entry.method} ${entry.path} ${entry.status} ${entry.ms.toFixed(1)}ms ${entry.bytesOut}B req=${entry.requestId}`;
}

export interface AccessLogSplitterOptions {
  store: Store;
  /** The file the proxy writes (`--access-log-file`). */
  source: string;
  logDir: string;
  log: Logger;
  pollMs?: number;
}

/**
 * Follows the proxy's access log from its end at start (older lines were split by an earlier control plane, or
 * predate the option) and appends each routed request to its app's file; unrouted requests (404, redirects) have
 * no app and are left in the proxy's file only.
 */
export class AccessLogSplitter {
  readonly #options: AccessLogSplitterOptions;
  #offset: number;
  #partial = Buffer.alloc(0);
  #ticker: Ticker | undefined;

  constructor(options: AccessLogSplitterOptions) {
    this.#options = options;
    this.#offset = sizeOf(options.source);
  }

  start(): void {
    // The proxy (another process) writes the file: polling is the way to follow it.
    this.#ticker ??= every(this.#options.pollMs ?? 250, () => void this.poll(), {
      name: 'access log splitting',
      log: this.#options.log,
    });
  }

  async stop(): Promise<void> {
    await this.#ticker?.stop();
    this.#ticker = undefined;
    this.poll();
  }

  /** Moves the complete lines written since the last call. Returns how many were routed to an app. */
  poll(maxBytes = 8 * 1024 * 1024): number {
    const size = sizeOf(this.#options.source);
    if (size < this.#offset) {
      this.#offset = 0; // the file was truncated or replaced
      this.#partial = Buffer.alloc(0);
    }
    if (size <= this.#offset) return 0;
    const end = Math.min(size, this.#offset + maxBytes);
    const data = Buffer.concat([this.#partial, readRange(this.#options.source, this.#offset, end)]);
    this.#offset = end;
    const lastNewline = data.lastIndexOf(0x0a);
    this.#partial = data.subarray(lastNewline + 1);
    if (lastNewline < 0) return 0;
    const services = new Map(this.#options.store.listServices().map((s) => [`${s.app}.${s.name}`, s]));
    const byApp = new Map<string, string[]>();
    for (const text of data.subarray(0, lastNewline).toString('utf8').split('\n')) {
      let entry: ProxyAccessEntry;
      try {
        entry = JSON.parse(text) as ProxyAccessEntry;
      } catch {
        continue;
      }
      const service =
        entry.targetGroup === undefined ? undefined : services.get(serviceGroupOf(entry.targetGroup));
      if (!service) continue;
      const record: AccessRecord = {
        t: Date.parse(entry.time) || Date.now(),
        s: 'access',
        l: formatAccess(entry),
        i: entry.target ?? 'proxy',
        svc: service.name,
      };
      const lines = byApp.get(service.app) ?? [];
      lines.push(JSON.stringify(record));
      byApp.set(service.app, lines);
    }
    let routed = 0;
    for (const [app, lines] of byApp) {
      mkdirSync(join(this.#options.logDir, app), { recursive: true });
      appendFileSync(accessLogPath(this.#options.logDir, app), `${lines.join('\n')}\n`);
      routed += lines.length;
    }
    return routed;
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
