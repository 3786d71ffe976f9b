// Runs one pipeline command: a shell in its own process group, with a timeout, cancellable, output scrubbed by line.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Between SIGTERM to the group and SIGKILL, on cancel or timeout. */
export const KILL_GRACE_MS = 3_000;

export interface JobOptions {
  command: string;
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number;
  /** Aborting kills the job's whole process group (SIGTERM, then SIGKILL after `KILL_GRACE_MS`). */
  signal?: AbortSignal;
  /** Each piece of output, already scrubbed; whole lines, except a final partial line at exit. */
  onOutput(text: string): void;
  /** Replaces secret values in a line of output before anyone sees it. */
  scrub(text: string): string;
  /** Called with the group's id once the job runs (tests check the group is gone after a cancel). */
  onStart?(pgid: number): void;
}

/** How a job ended: what callers decide on (the `reason` is for people). */
export type JobOutcome = 'exited' | 'killed' | 'timed_out' | 'cancelled' | 'not_started';

export interface JobResult {
  outcome: JobOutcome;
  /** Exit code; 124 on timeout, 130 when cancelled, 127 when it could not start. */
  code: number;
  /** Why it ended, e.g. `exited with code 1`, `timed out after 60s`, `was cancelled`. */
  reason: string;
}

/** True for a job that ran to its end and exited with 0. */
export function succeeded(result: JobResult): boolean {
  return result.outcome === 'exited' && result.code === 0;
}

/** Runs `options.command` with `/bin/sh -c`; resolves when the shell has exited and its output is read. */
export function runJob(options: JobOptions): Promise<JobResult> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', options.command], {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // setsid: the job and everything it starts form one group that a cancel can kill whole.
      detached: true,
    });
    let pending = '';
    // Scrub whole lines, so a secret split across two reads is still found.
    const take = (chunk: Buffer): void => {
      pending += chunk.toString('utf8');
      const end = pending.lastIndexOf('\n');
      if (end < 0) {
        if (pending.length < 64 * 1024) return;
        options.onOutput(options.scrub(pending));
        pending = '';
        return;
      }
      options.onOutput(options.scrub(pending.slice(0, end + 1)));
      pending = pending.slice(end + 1);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    let ending: 'timeout' | 'cancel' | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const killGroup = (why: 'timeout' | 'cancel'): void => {
      if (ending !== undefined || child.pid === undefined) return;
      ending = why;
      signalGroup(child.pid, 'SIGTERM');
      killTimer = setTimeout(() => signalGroup(child.pid!, 'SIGKILL'), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => killGroup('timeout'), options.timeoutMs);
    const onAbort = (): void => killGroup('cancel');
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted) onAbort();
    if (child.pid !== undefined) options.onStart?.(child.pid);
    const finish = (result: JobResult): void => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (pending !== '') options.onOutput(options.scrub(pending));
      pending = '';
      clearTimeout(killTimer);
      if (child.pid === undefined) {
        resolve(result);
        return;
      }
      // The shell is gone; what it left behind in its group must not outlive the job. Resolve once it is gone,
      // so "cancelled" means no process of the job runs any more.
      signalGroup(child.pid, 'SIGKILL');
      const pgid = child.pid;
      const deadline = Date.now() + KILL_GRACE_MS;
      const check = (): void => {
        if (!groupAlive(pgid) || Date.now() >= deadline) resolve(result);
        else setTimeout(check, 20);
      };
      check();
    };
    child.on('error', (error) =>
      finish({ outcome: 'not_started', code: 127, reason: `could not run: ${error.message}` }),
    );
    child.on('close', (code, signal) => {
      if (ending === 'timeout')
        finish({
          outcome: 'timed_out',
          code: 124,
          reason: `timed out after ${formatSeconds(options.timeoutMs)}`,
        });
      else if (ending === 'cancel') finish({ outcome: 'cancelled', code: 130, reason: 'was cancelled' });
      else if (signal) finish({ outcome: 'killed', code: 128, reason: `was killed by ${signal}` });
      else finish({ outcome: 'exited', code: code ?? 1, reason: `exited with code ${code}` });
    });
  });
}

/**
 * True while a process of group `pgid` runs. Zombies do not count: they run nothing, and where PID 1 does not
 * reap orphans they would otherwise look alive forever.
 */
export function groupAlive(pgid: number): boolean {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return false;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Fields after the command (which may hold spaces and parentheses): state ppid pgrp ...
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') return true;
  }
  return false;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is already gone
  }
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
