// An app's log: its instances' JSON-lines output files and its platform events, filtered and merged in time order.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Instance } from '../../domain/instance.js';
import type { AppLogLine } from '../../domain/metrics-types.js';
import type { Store } from '../store/store.js';

const CHUNK = 256 * 1024;

/** `<logDir>/<app>/<instance>.log`: where the instance shim writes `{"t","s","l"}` lines. */
export function instanceLogPath(logDir: string, instance: Pick<Instance, 'app' | 'id'>): string {
  return join(logDir, instance.app, `${instance.id}.log`);
}

/** Parses one shim record; a line that is not one (an older raw file) is kept as stdout at time `fallbackT`. */
export function parseRecord(
  text: string,
  instance: Pick<Instance, 'id' | 'service'>,
  fallbackT = 0,
): AppLogLine | undefined {
  if (text === '') return undefined;
  try {
    const record = JSON.parse(text) as { t?: unknown; s?: unknown; l?: unknown; i?: unknown; svc?: unknown };
    if (typeof record.t === 'number' && typeof record.l === 'string' && record.s === 'access') {
      return {
        t: record.t,
        source: 'access',
        instance: typeof record.i === 'string' ? record.i : 'proxy',
        service: typeof record.svc === 'string' ? record.svc : null,
        line: record.l,
      };
    }
    if (typeof record.t === 'number' && typeof record.l === 'string') {
      return {
        t: record.t,
        source: record.s === 'err' ? 'err' : 'out',
        instance: instance.id,
        service: instance.service,
        line: record.l,
      };
    }
  } catch {
    // not a record: shown as it is
  }
  return { t: fallbackT, source: 'out', instance: instance.id, service: instance.service, line: text };
}

export interface LogFilter {
  service?: string;
  instance?: string;
  /** Only lines at or after this time (epoch ms). */
  since?: number;
  /** Only lines containing this text (case-sensitive), or matching it when it is a RegExp. */
  grep?: string | RegExp;
  /** Include platform events (not when filtering by instance). */
  events?: boolean;
  /** Include the proxy's access lines (when access logs are on). */
  access?: boolean;
}

/** The files of an app to read: each instance's output, and the app's access log (lines carry their own instance). */
function sourcesOf(logDir: string, app: string, instances: readonly Instance[], filter: LogFilter) {
  const sources = instances.map((i) => ({
    path: instanceLogPath(logDir, i),
    instance: i as Pick<Instance, 'id' | 'service'>,
  }));
  if (filter.access !== false) {
    sources.push({ path: join(logDir, app, 'access.log'), instance: { id: 'proxy', service: '' } });
  }
  return sources;
}

export function matches(line: AppLogLine, filter: LogFilter): boolean {
  if (filter.since !== undefined && line.t < filter.since) return false;
  if (filter.service !== undefined && line.service !== filter.service) return false;
  if (filter.instance !== undefined && line.instance !== filter.instance) return false;
  if (filter.grep !== undefined) {
    return typeof filter.grep === 'string' ? line.line.includes(filter.grep) : filter.grep.test(line.line);
  }
  return true;
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Reads `[start, end)` of a file. */
export function readRange(path: string, start: number, end: number): Buffer {
  if (end <= start) return Buffer.alloc(0);
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(end - start);
    const read = readSync(fd, buffer, 0, buffer.length, start);
    return buffer.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}

/**
 * The newest `limit` matching lines of one file, newest last: reads backwards in chunks and stops early once it
 * has enough or has passed `since`, so a large file costs only what is shown.
 */
export function tailMatching(
  path: string,
  instance: Pick<Instance, 'id' | 'service'>,
  filter: LogFilter,
  limit: number,
): AppLogLine[] {
  let end = sizeOf(path);
  let carry = Buffer.alloc(0);
  const found: AppLogLine[] = [];
  // A last line without its newline is still being written: leave it for the next read.
  if (end > 0 && readRange(path, end - 1, end)[0] !== 0x0a) {
    const tail = readRange(path, Math.max(0, end - CHUNK), end);
    const lastNewline = tail.lastIndexOf(0x0a);
    end = lastNewline < 0 ? Math.max(0, end - tail.length) : end - (tail.length - lastNewline - 1);
  }
  while (end > 0 && found.length < limit) {
    const start = Math.max(0, end - CHUNK);
    const chunk = Buffer.concat([readRange(path, start, end), carry]);
    end = start;
    let text = chunk.toString('utf8');
    // Keep the partial first line for the next (earlier) chunk.
    const firstNewline = start > 0 ? chunk.indexOf(0x0a) : -1;
    if (start > 0) {
      carry = firstNewline < 0 ? chunk : chunk.subarray(0, firstNewline);
      text = firstNewline < 0 ? '' : chunk.subarray(firstNewline + 1).toString('utf8');
    }
    const lines = text.split('\n');
    let passedSince = false;
    for (let i = lines.length - 1; i >= 0 && found.length < limit; i--) {
      const line = parseRecord(lines[i]!, instance);
      if (!line) continue;
      if (filter.since !== undefined && line.t < filter.since && line.t !== 0) {
        passedSince = true;
        break;
      }
      if (matches(line, { ...filter, since: undefined })) found.push(line);
    }
    if (passedSince) break;
  }
  return found.reverse();
}

/** Stable merge by time: lines of one instance keep their file order on equal timestamps. */
export function mergeByTime(groups: readonly AppLogLine[][]): AppLogLine[] {
  const all: { line: AppLogLine; group: number; index: number }[] = [];
  groups.forEach((lines, group) => {
    lines.forEach((line, index) => {
      all.push({ line, group, index });
    });
  });
  all.sort((a, b) => a.line.t - b.line.t || a.group - b.group || a.index - b.index);
  return all.map((entry) => entry.line);
}

/** Platform events of an app after event id `after` as log lines, and the id of the last event read. */
export function eventLines(
  store: Store,
  app: string,
  filter: LogFilter,
  after = 0,
  limit = 10_000,
): { lines: AppLogLine[]; lastId: number } {
  const events = store.listEvents({ app, after, limit });
  const lastId = events[events.length - 1]?.id ?? after;
  if (filter.events === false || filter.instance !== undefined) return { lines: [], lastId };
  const lines = events
    .map(
      (event): AppLogLine => ({
        t: event.at,
        source: 'event',
        instance: 'berth',
        service: event.service,
        line: `${event.kind} ${event.message}`,
      }),
    )
    // App-wide events (no service) belong to every service's view.
    .filter((line) =>
      matches(line, { ...filter, service: line.service === null ? undefined : filter.service }),
    );
  return { lines, lastId };
}

/** The newest `limit` lines of an app (instances recent and live, plus events), merged in time order. */
export function readAppLogs(
  store: Store,
  logDir: string,
  app: string,
  filter: LogFilter,
  limit: number,
): AppLogLine[] {
  const instances = store
    .listInstances({ app, limit: 200 })
    .filter((i) => filter.service === undefined || i.service === filter.service)
    .filter((i) => filter.instance === undefined || i.id === filter.instance);
  const groups = sourcesOf(logDir, app, instances, filter).map((s) =>
    tailMatching(s.path, s.instance, filter, limit),
  );
  groups.push(eventLines(store, app, filter).lines);
  return mergeByTime(groups).slice(-limit);
}

/** Follows an app's files and events from their current ends; each poll's new lines come merged in time order. */
export class AppLogFollower {
  readonly #store: Store;
  readonly #logDir: string;
  readonly #app: string;
  readonly #filter: LogFilter;
  readonly #offsets = new Map<string, number>();
  readonly #partial = new Map<string, Buffer>();
  #lastEvent = 0;

  constructor(
    store: Store,
    logDir: string,
    app: string,
    filter: LogFilter,
    options: { fromStart?: boolean } = {},
  ) {
    this.#store = store;
    this.#logDir = logDir;
    this.#app = app;
    this.#filter = filter;
    if (!options.fromStart) {
      for (const { path } of sourcesOf(logDir, app, this.#instances(), filter))
        this.#offsets.set(path, sizeOf(path));
      const last = store.listEvents({ app, limit: 1 });
      this.#lastEvent = last[last.length - 1]?.id ?? 0;
    }
  }

  #instances(): Instance[] {
    return this.#store
      .listInstances({ app: this.#app, limit: 200 })
      .filter((i) => this.#filter.service === undefined || i.service === this.#filter.service)
      .filter((i) => this.#filter.instance === undefined || i.id === this.#filter.instance);
  }

  /** New complete lines since the last call, at most `maxBytes` read per file per call. */
  poll(maxBytes = 4 * 1024 * 1024): AppLogLine[] {
    const groups: AppLogLine[][] = [];
    for (const { path, instance } of sourcesOf(this.#logDir, this.#app, this.#instances(), this.#filter)) {
      const from = this.#offsets.get(path) ?? 0;
      const size = sizeOf(path);
      if (size < from) this.#offsets.set(path, 0); // truncated by retention: start over
      if (size <= from) continue;
      const end = Math.min(size, from + maxBytes);
      const data = Buffer.concat([this.#partial.get(path) ?? Buffer.alloc(0), readRange(path, from, end)]);
      this.#offsets.set(path, end);
      const lastNewline = data.lastIndexOf(0x0a);
      this.#partial.set(path, data.subarray(lastNewline + 1));
      if (lastNewline < 0) continue;
      const lines: AppLogLine[] = [];
      for (const text of data.subarray(0, lastNewline).toString('utf8').split('\n')) {
        const line = parseRecord(text, instance, Date.now());
        if (line && matches(line, { ...this.#filter, since: undefined })) lines.push(line);
      }
      groups.push(lines);
    }
    const events = eventLines(this.#store, this.#app, { ...this.#filter, since: undefined }, this.#lastEvent);
    this.#lastEvent = events.lastId;
    groups.push(events.lines);
    return mergeByTime(groups);
  }
}
