// Reads instances' output files: the last lines of each, and following them as they grow.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import type { LogLine } from '../../domain/api-types.js';
import type { Instance } from '../../domain/instance.js';

interface Source {
  instance: string;
  stream: 'out' | 'err';
  path: string;
}

const TAIL_CHUNK = 64 * 1024;

function sourcesOf(instances: readonly Instance[]): Source[] {
  return instances.flatMap((i) => [
    { instance: i.id, stream: 'out' as const, path: i.stdoutPath },
    { instance: i.id, stream: 'err' as const, path: i.stderrPath },
  ]);
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

/** The last `count` lines of each instance's stdout and stderr. */
export function tailInstances(instances: readonly Instance[], count: number): LogLine[] {
  return sourcesOf(instances).flatMap((source) =>
    tailFile(source.path, count).map((line) => ({ instance: source.instance, stream: source.stream, line })),
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
    for (const source of sourcesOf(instancesNow())) {
      const from = offsets.get(source.path) ?? 0;
      const size = sizeOf(source.path);
      if (size <= from) continue;
      const text = (partial.get(source.path) ?? '') + readRange(source.path, from, size);
      offsets.set(source.path, size);
      const lines = text.split('\n');
      partial.set(source.path, lines.pop() ?? '');
      for (const line of lines) onLine({ instance: source.instance, stream: source.stream, line });
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, pollMs);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
