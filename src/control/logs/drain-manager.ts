// Log drains: per app, follow its instances' output and events and forward every line to HTTPS or syslog sinks.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { BerthError } from '../../domain/errors.js';
import type { DrainKind, DrainView } from '../../domain/metrics-types.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import { every, type Ticker } from '../../lib/ticker.js';
import type { Database, Migration } from '../store/database.js';
import type { EventStore } from '../store/event-store.js';
import type { Store } from '../store/store.js';
import { AppLogFollower } from './app-logs.js';
import { HttpsSink, type LogSink, SyslogSink } from './log-sinks.js';

export interface DrainOptions {
  /** PEM file of a CA to trust for the destination's TLS certificate. */
  caFile?: string;
  maxQueued?: number;
}

export const DRAIN_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'log drains',
    sql: `
      CREATE TABLE log_drains (
        id TEXT PRIMARY KEY,
        app TEXT NOT NULL,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        options_json TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
    `,
  },
];

const drainRow = z.object({
  id: z.string(),
  app: z.string(),
  kind: z.enum(['https', 'syslog']),
  url: z.string(),
  options_json: z.string(),
  created_at: z.number(),
});
type DrainRow = z.output<typeof drainRow> & { kind: DrainKind };

interface RunningDrain {
  row: DrainRow;
  follower: AppLogFollower;
  sink: LogSink;
  reportedDrops: number;
}

export interface DrainManagerOptions {
  db: Database;
  store: Store;
  events: EventStore;
  log: Logger;
  clock: Clock;
  logDir: string;
  /** How often new lines are picked up. */
  pollMs?: number;
}

/** `https://…` → https (http:// is allowed for 127.0.0.1 only), `syslog://` or `syslog+tls://` → syslog. */
export function drainKindOf(url: string): DrainKind {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidUrl(url, 'not a URL');
  }
  if (parsed.protocol === 'https:') return 'https';
  if (parsed.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(parsed.hostname))
    return 'https';
  if (parsed.protocol === 'syslog:' || parsed.protocol === 'syslog+tls:') {
    if (parsed.port === '')
      throw invalidUrl(url, 'syslog drains need a port, e.g. syslog://logs.example.com:6514');
    return 'syslog';
  }
  throw invalidUrl(url, 'expected https://, syslog:// or syslog+tls://');
}

function invalidUrl(url: string, message: string): BerthError {
  return new BerthError('invalid_request', `drain URL ${url}: ${message}`, {
    issues: [{ path: 'body.url', message }],
  });
}

export class DrainManager {
  readonly #options: DrainManagerOptions;
  readonly #running = new Map<string, RunningDrain>();
  #pump: Ticker | undefined;
  #report: Ticker | undefined;

  readonly #s: ReturnType<typeof statements>;

  constructor(options: DrainManagerOptions) {
    options.db.migrate('drains', DRAIN_MIGRATIONS);
    this.#options = options;
    this.#s = statements(options.db);
  }

  start(): void {
    for (const row of this.#rows()) this.#open(row);
    // Instances' output files are written by their shims (other processes): polling is the way to follow them.
    const { log, clock } = this.#options;
    this.#pump ??= every(this.#options.pollMs ?? 200, () => this.pump(), {
      name: 'log drain pump',
      log,
      clock,
    });
    this.#report ??= every(10_000, () => this.reportDrops(), { name: 'log drain drop report', log, clock });
  }

  async stop(): Promise<void> {
    await Promise.all([this.#pump?.stop(), this.#report?.stop()]);
    this.#pump = undefined;
    this.#report = undefined;
    this.pump();
    await Promise.all([...this.#running.values()].map((d) => d.sink.flush(2000)));
    this.reportDrops();
    await Promise.all([...this.#running.values()].map((d) => d.sink.close()));
    this.#running.clear();
  }

  /** Moves new lines of every drained app into its sinks (never waits for a destination). */
  pump(): void {
    for (const drain of this.#running.values()) {
      try {
        const lines = drain.follower.poll();
        if (lines.length > 0) drain.sink.enqueue(lines);
      } catch (error) {
        this.#options.log.warn({ err: error, drain: drain.row.id }, 'reading logs for a drain failed');
      }
    }
  }

  /** Drops are never silent: each drain's new drops since the last report become an event. */
  reportDrops(): void {
    for (const drain of this.#running.values()) {
      const { dropped, lastError } = drain.sink.stats();
      if (dropped === drain.reportedDrops) continue;
      const count = dropped - drain.reportedDrops;
      drain.reportedDrops = dropped;
      this.#options.events.record({
        actor: 'drains',
        kind: 'drain.dropped',
        app: drain.row.app,
        message: `drain ${drain.row.id} dropped ${count} lines (queue full; last error: ${lastError ?? 'none'})`,
        data: { drain: drain.row.id, dropped: count, total: dropped },
      });
    }
  }

  add(app: string, url: string, options: DrainOptions = {}): DrainView {
    if (!this.#options.store.getApp(app)) throw new BerthError('not_found', `no app named ${app}`);
    const kind = drainKindOf(url);
    if (options.caFile !== undefined) {
      try {
        readFileSync(options.caFile, 'utf8');
      } catch (error) {
        throw new BerthError('invalid_request', `cannot read CA file ${options.caFile}`, { cause: error });
      }
    }
    const row: DrainRow = {
      id: `d-${randomBytes(4).toString('hex')}`,
      app,
      kind,
      url,
      options_json: JSON.stringify(options),
      created_at: this.#options.clock.now(),
    };
    this.#s.insert.run(row);
    this.#open(row);
    this.#options.events.record({
      actor: 'admin',
      kind: 'drain.added',
      app,
      message: `log drain ${row.id} added: ${kind} ${redact(url)}`,
      data: { drain: row.id, kind },
    });
    return this.#view(row);
  }

  async remove(app: string, id: string): Promise<void> {
    const result = this.#s.remove.run(app, id);
    if (result.changes === 0) throw new BerthError('not_found', `no drain ${id} for app ${app}`);
    const running = this.#running.get(id);
    this.#running.delete(id);
    await running?.sink.close();
    this.#options.events.record({
      actor: 'admin',
      kind: 'drain.removed',
      app,
      message: `log drain ${id} removed`,
    });
  }

  list(app?: string): DrainView[] {
    return this.#rows(app).map((row) => this.#view(row));
  }

  #rows(app?: string): DrainRow[] {
    return app === undefined ? this.#s.all.all() : this.#s.ofApp.all(app);
  }

  #open(row: DrainRow): void {
    const options = JSON.parse(row.options_json) as DrainOptions;
    const sinkOptions = {
      app: row.app,
      maxQueued: options.maxQueued,
      ca: options.caFile === undefined ? undefined : readFileSync(options.caFile, 'utf8'),
    };
    const sink =
      row.kind === 'https' ? new HttpsSink(row.url, sinkOptions) : new SyslogSink(row.url, sinkOptions);
    const follower = new AppLogFollower(this.#options.store, this.#options.logDir, row.app, {});
    this.#running.set(row.id, { row, follower, sink, reportedDrops: 0 });
  }

  #view(row: DrainRow): DrainView {
    const stats = this.#running.get(row.id)?.sink.stats();
    return {
      id: row.id,
      app: row.app,
      kind: row.kind,
      url: redact(row.url),
      createdAt: row.created_at,
      sent: stats?.sent ?? 0,
      dropped: stats?.dropped ?? 0,
      queued: stats?.queued ?? 0,
      lastError: stats?.lastError ?? null,
    };
  }
}

function statements(db: Database) {
  return {
    insert: db.statement(
      'INSERT INTO log_drains (id, app, kind, url, options_json, created_at) VALUES (@id, @app, @kind, @url, @options_json, @created_at)',
    ),
    remove: db.statement('DELETE FROM log_drains WHERE app = ? AND id = ?'),
    all: db.statement('SELECT * FROM log_drains ORDER BY created_at', drainRow),
    ofApp: db.statement('SELECT * FROM log_drains WHERE app = ? ORDER BY created_at', drainRow),
  };
}

/** Drain URLs often carry a token (user info or query): never show it. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.username || parsed.password) {
      parsed.username = '***';
      parsed.password = '';
    }
    if (parsed.search) parsed.search = '?***';
    return parsed.toString();
  } catch {
    return url;
  }
}
