// A process named by pid, start time and command line, and pid files that hold all three: a signal sent through
// a pid file never reaches a process that merely got the same pid after the recorded one ended.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

/** What tells one process from every other, now and after its pid is reused. */
export interface ProcessIdentity {
  pid: number;
  /** Start time in clock ticks since boot (field 22 of /proc/PID/stat); unchanged by exec. */
  startTicks: number;
  /** argv as the kernel shows it (/proc/PID/cmdline). */
  command: string[];
}

/** The identity of a running process, read from /proc; undefined when it does not exist (or is a zombie). */
export function identify(pid: number): ProcessIdentity | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: fields are counted after the last `)`.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined;
    const startTicks = Number(fields[22 - 3]);
    const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (command.at(-1) === '') command.pop();
    return Number.isFinite(startTicks) ? { pid, startTicks, command } : undefined;
  } catch {
    return undefined;
  }
}

/** True while `recorded` still runs: same pid, same start time, same command line. */
export function isRunning(recorded: ProcessIdentity): boolean {
  const now = identify(recorded.pid);
  return (
    now !== undefined &&
    now.startTicks === recorded.startTicks &&
    now.command.length === recorded.command.length &&
    now.command.every((arg, i) => arg === recorded.command[i])
  );
}

/** Temporary files this process wrote: with its pid, a name no other writer uses (no node:crypto on the CLI's path). */
let temporaries = 0;

/**
 * Writes `identity` (and `extra` fields, e.g. a URL) as JSON to `path`, mode 0600, through a rename so that a
 * reader never sees half a file.
 */
export function writePidFile(
  path: string,
  identity: ProcessIdentity,
  extra: Record<string, unknown> = {},
): void {
  const temporary = `${path}.${process.pid}.${++temporaries}.tmp`;
  writeFileSync(temporary, `${JSON.stringify({ ...extra, ...identity })}\n`, { mode: 0o600 });
  renameSync(temporary, path);
}

/**
 * The identity recorded in a pid file, with its other fields; undefined when there is no such file or it holds no
 * identity (a bare pid written by an older Berth cannot be verified, so it is never trusted).
 */
export function readPidFile<T extends object = Record<string, unknown>>(
  path: string,
): (ProcessIdentity & Partial<T>) | undefined {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
  const record = value as Partial<ProcessIdentity> | null;
  if (
    typeof record !== 'object' ||
    record === null ||
    !Number.isInteger(record.pid) ||
    typeof record.startTicks !== 'number' ||
    !Array.isArray(record.command) ||
    !record.command.every((arg) => typeof arg === 'string')
  ) {
    return undefined;
  }
  return record as ProcessIdentity & Partial<T>;
}

/** The pid recorded in `path` if that very process still runs; undefined otherwise. */
export function runningPid(path: string): number | undefined {
  const recorded = readPidFile(path);
  return recorded !== undefined && isRunning(recorded) ? recorded.pid : undefined;
}

/** What `signalRecorded` did: `signalled`, or why not (no usable record; the process ended or is another one). */
export type SignalOutcome =
  | { outcome: 'signalled'; pid: number }
  | { outcome: 'no_record' }
  | { outcome: 'not_running'; pid: number };

/**
 * Sends `signal` to the process recorded in `path` only if it is still that process (pid, start time and command
 * line all match). Never signals a process group.
 */
export function signalRecorded(path: string, signal: NodeJS.Signals): SignalOutcome {
  const recorded = readPidFile(path);
  if (recorded === undefined) return { outcome: 'no_record' };
  if (!isRunning(recorded)) return { outcome: 'not_running', pid: recorded.pid };
  try {
    process.kill(recorded.pid, signal);
    return { outcome: 'signalled', pid: recorded.pid };
  } catch {
    return { outcome: 'not_running', pid: recorded.pid };
  }
}
