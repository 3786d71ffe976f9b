// What every benchmark needs of processes: start ones it owns, wait for their ready line, stop them, clean up.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const children: ChildProcess[] = [];
const scratch: string[] = [];

/** SIGTERM to every process the benchmark started that still runs (their pipes would keep it alive). */
export function stopAll(): void {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
}

// Whatever happens, the benchmark leaves no process of its own and no scratch directory behind.
process.on('exit', () => {
  stopAll();
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});
process.on('SIGINT', () => process.exit(130));

/** A temporary directory removed when the benchmark exits. */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratch.push(dir);
  return dir;
}

/** Spawns a process the benchmark owns (stopped at exit); its stderr shows with BENCH_VERBOSE=1. */
export function start(
  cmd: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; detached?: boolean } = {},
): ChildProcess {
  const child = spawn(cmd, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
    detached: options.detached ?? false,
  });
  child.stderr!.on('data', (c: Buffer) => {
    if (process.env.BENCH_VERBOSE) process.stderr.write(c);
  });
  children.push(child);
  return child;
}

/**
 * The proxy as `berth up` runs it: the keeper of `dist` (a build's root) and `workers` workers on port 0 of
 * 127.0.0.1, its state in `dataDir`. The worker count goes by environment variable, which older builds ignore.
 */
export function startKeeper(
  dist: string,
  dataDir: string,
  workers: number,
  extra: string[] = [],
): ChildProcess {
  const args = [
    '--data-dir',
    dataDir,
    '--http-port',
    '0',
    '--https-port',
    '0',
    '--host',
    '127.0.0.1',
    ...extra,
  ];
  return start(process.execPath, [join(dist, 'src', 'main', 'proxy-keeper.js'), ...args], {
    env: { BERTH_PROXY_WORKERS: String(workers) },
  });
}

/** The first stdout line containing `key`, parsed as JSON (a process's "ready" line), within 15 s. */
export function firstJsonLine<T>(child: ChildProcess, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no ${key} line within 15 s`)), 15_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      for (const line of out.split('\n')) {
        if (line.includes(key)) {
          clearTimeout(timer);
          resolve(JSON.parse(line) as T);
          return;
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code} before ${key}`)));
  });
}

/** SIGTERM, then SIGKILL after 8 s; resolves once the process is gone. */
export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 8000);
  await exited;
  clearTimeout(timer);
}

/** The median, ignoring NaN (a failed sample); NaN when nothing is left. */
export function median(values: number[]): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** User + system CPU seconds of these processes so far, from /proc/PID/stat (processes gone count 0). */
export function cpuSeconds(pids: number[]): number {
  const { user, sys } = cpuSplit(pids);
  return user + sys;
}

/** User and system CPU seconds of these processes so far (system time includes the loopback network stack). */
export function cpuSplit(pids: number[]): { user: number; sys: number } {
  let user = 0;
  let sys = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      user += Number(fields[11]);
      sys += Number(fields[12]);
    } catch {
      // Gone.
    }
  }
  return { user: user / 100, sys: sys / 100 };
}

/** Every process below `pid` (children, their children...), from /proc/PID/task/PID/children. */
export function descendants(pid: number): number[] {
  try {
    const direct = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
    return direct.flatMap((child) => [child, ...descendants(child)]);
  } catch {
    return [];
  }
}
