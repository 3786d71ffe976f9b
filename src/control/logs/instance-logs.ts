// Reads instances' output files (JSON lines written by the instance shim): the last lines, and following them.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import type { LogLine } from '../../domain/api-types.js';
import type { Instance } from '../../domain/instance.js';
import { systemClock } from '../../lib/clock.js';

interface Source {
  instance: string;
  path: string;
}

const TAIL_CHUNK = 64 * 1024;

function sourcesOf(instances: readonly Instance[]): Source[] {
  return instances.map((i) => ({ instance: i.id, path: i.logPath }));
}

/** One line of an output file as a `LogLine`; a line that is not a shim record is shown as it is. */
export function parseOutputLine(instance: string, text: string): LogLine {
  try {
    const record = JSON.parse(text) as { t?: unknown; s?: unknown; l?: unknown };
    if (typeof record.l === 'string' && typeof record.t === 'number') {
      return { instance, stream: record.s === 'err' ? 'err' : 'out', line: record.l, t: record.t };
    }
  } catch {
    // Not JSON: fall through.
  }
  return { instance, stream: 'out', line: text, t: 0 };
}

/** Several instances' lines in the order they were written (stable: one instance's order is kept on ties). */
function byTime(lines: LogLine[]): LogLine[] {
  return lines.sort((a, b) => (a.t ?? 0) - (b.t ?? 0));
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function readRange(path: string, start: number, end: number): string {
  if (end <= start) return '';
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(end - start);
    const read = readSync(fd, buffer, 0, buffer.length, start);
    return buffer.subarray(0, read).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** The last `count` lines of one file, reading backwards in chunks so large files cost little. */
export function tailFile(path: string, count: number): string[] {
  const size = sizeOf(path);
  let start = size;
  let text = '';
  while (start > 0) {
    start = Math.max(0, start - TAIL_CHUNK);
    text = readRange(path, start, size);
    if (text.split('\n').length > count + 1) break;
  }
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  // A partial first line (we started mid-file) is dropped unless we read from the beginning.
  if (start > 0) lines.shift();
  return lines.slice(-count);
}

/** The last `count` lines of each instance's output, merged in timestamp order. */
export function tailInstances(instances: readonly Instance[], count: number): LogLine[] {
  return byTime(
    sourcesOf(instances).flatMap((source) =>
      tailFile(source.path, count).map((text) => parseOutputLine(source.instance, text)),
    ),
  );
}

/**
 * Calls `onLine` for every complete line written to the instances' files from now on, until `signal` aborts.
 * `instancesNow` is asked again on each poll, so instances started later are followed too.
 */
export async function followInstances(
  instancesNow: () => Instance[],
  onLine: (line: LogLine) => void,
  signal: AbortSignal,
  pollMs = 200,
): Promise<void> {
  const offsets = new Map<string, number>();
  const partial = new Map<string, string>();
  for (const source of sourcesOf(instancesNow())) offsets.set(source.path, sizeOf(source.path));
  while (!signal.aborted) {
    const batch: LogLine[] = [];
    for (const source of sourcesOf(instancesNow())) {
      const from = offsets.get(source.path) ?? 0;
      const size = sizeOf(source.path);
      if (size <= from) continue;
      const text = (partial.get(source.path) ?? '') + readRange(source.path, from, size);
      offsets.set(source.path, size);
      const lines = text.split('\n');
      partial.set(source.path, lines.pop() ?? '');
      for (const line of lines) batch.push(parseOutputLine(source.instance, line));
    }
    for (const line of byTime(batch)) onLine(line);
    // The files are written by the instances' shims (other processes): polling is the way to follow them.
    await systemClock.sleep(pollMs, { signal });
  }
}
