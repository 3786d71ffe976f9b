// Pid files that name one process, not just a number: the pid, the process's start time and its command line.
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';

export interface ProcessIdentity {
  pid: number;
  /** Start time in clock ticks since boot (field 22 of /proc/PID/stat): never the same for two processes. */
  startTicks: number;
  /** /proc/PID/cmdline, split at NUL. */
  cmdline: string[];
}

/** The identity of a running process (a zombie has exited and counts as gone), or undefined. */
export function processIdentity(pid: number): ProcessIdentity | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (cmdline.at(-1) === '') cmdline.pop();
    return { pid, startTicks: Number(fields[19]), cmdline };
  } catch {
    return undefined;
  }
}

/**
 * Writes `<pid>\n<{"startTicks","cmdline"}>\n` atomically. The first line alone is what `kill $(cat file)` and
 * systemd's PIDFile= read.
 */
export function writePidFile(path: string, pid = process.pid): void {
  const identity = processIdentity(pid);
  if (identity === undefined) throw new Error(`process ${pid} is not running`);
  const temporary = `${path}.${process.pid}.tmp`;
  const { startTicks, cmdline } = identity;
  writeFileSync(temporary, `${pid}\n${JSON.stringify({ startTicks, cmdline })}\n`, { mode: 0o644 });
  renameSync(temporary, path);
}

/** What the file says, or null when it is missing or has no identity line (written by something else). */
export function readPidFile(path: string): ProcessIdentity | null {
  try {
    const [first, second] = readFileSync(path, 'utf8').split('\n');
    const pid = Number(first);
    const { startTicks, cmdline } = JSON.parse(second ?? '') as Partial<ProcessIdentity>;
    if (!Number.isInteger(pid) || pid <= 0 || typeof startTicks !== 'number' || !Array.isArray(cmdline)) {
      return null;
    }
    return { pid, startTicks, cmdline };
  } catch {
    return null;
  }
}

/**
 * The pid in the file if that very process still runs (same start time, same command line), else null: a stale
 * file whose pid now belongs to another process never leads to a signal.
 */
export function livePid(path: string): number | null {
  const recorded = readPidFile(path);
  if (recorded === null) return null;
  const running = processIdentity(recorded.pid);
  return running !== undefined &&
    running.startTicks === recorded.startTicks &&
    running.cmdline.join('\0') === recorded.cmdline.join('\0')
    ? recorded.pid
    : null;
}

/** Removes the file if it names this process (a successor may already have written its own). */
export function removePidFile(path: string, pid = process.pid): void {
  if (readPidFile(path)?.pid === pid) rmSync(path, { force: true });
}
