// The embedded default runtime: each instance is a child process in its own process group, output to files.
import { type ChildProcess, spawn as spawnChild } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { BerthError } from '../../domain/errors.js';
import type { InstanceUsage } from '../../domain/instance.js';
import { clockTicksPerSecond, readAllProcStats, readProcStat } from './proc.js';
import type { ExitStatus, ProcessHandle, Runtime, StartRequest, StopOutcome } from './runtime.js';

export type Spawn = typeof spawnChild;

export interface ProcessRuntimeOptions {
  /** Replaceable for tests; defaults to node's spawn. */
  spawn?: Spawn;
  /** How often `stop` looks whether a process group is gone. */
  pollMs?: number;
}

interface CpuSample {
  ticks: number;
  at: number;
}

export class ProcessRuntime implements Runtime {
  readonly #spawn: Spawn;
  readonly #pollMs: number;
  readonly #exitListeners: ((handle: ProcessHandle, status: ExitStatus) => void)[] = [];
  readonly #children = new Map<number, ChildProcess>();
  readonly #lastCpu = new Map<number, CpuSample>();

  constructor(options: ProcessRuntimeOptions = {}) {
    this.#spawn = options.spawn ?? spawnChild;
    this.#pollMs = options.pollMs ?? 25;
  }

  async start(request: StartRequest): Promise<ProcessHandle> {
    mkdirSync(dirname(request.stdoutPath), { recursive: true });
    mkdirSync(dirname(request.stderrPath), { recursive: true });
    // Files, not pipes: the instance keeps writing its output when the control plane restarts or stops.
    const stdout = openSync(request.stdoutPath, 'a');
    const stderr = openSync(request.stderrPath, 'a');
    let child: ChildProcess;
    try {
      child = this.#spawn('/bin/sh', ['-c', `exec ${request.command}`], {
        cwd: request.cwd,
        env: request.env,
        // detached = setsid(): its own session and process group, so a stop reaches all its children too.
        detached: true,
        stdio: ['ignore', stdout, stderr],
      });
    } finally {
      closeSync(stdout);
      closeSync(stderr);
    }
    try {
      await once(child, 'spawn');
    } catch (error) {
      throw new BerthError('runtime_failure', `could not start \`${request.command}\` in ${request.cwd}`, {
        cause: error,
      });
    }
    const pid = child.pid!;
    child.unref();
    const stat = readProcStat(pid);
    const handle: ProcessHandle = { pid, processStart: stat?.startTicks ?? 0 };
    this.#children.set(pid, child);
    child.once('exit', (code, signal) => {
      this.#children.delete(pid);
      this.#lastCpu.delete(pid);
      for (const listener of this.#exitListeners) listener(handle, { code, signal });
    });
    return handle;
  }

  isRunning(handle: ProcessHandle): boolean {
    const stat = readProcStat(handle.pid);
    // A zombie has exited; it only waits for its parent to reap it.
    return stat !== undefined && stat.state !== 'Z' && stat.startTicks === handle.processStart;
  }

  async stop(handle: ProcessHandle, timeoutMs: number): Promise<StopOutcome> {
    if (!this.isRunning(handle)) return 'gone';
    signalGroup(handle.pid, 'SIGTERM');
    if (await this.#waitGone(handle, timeoutMs)) return 'terminated';
    signalGroup(handle.pid, 'SIGKILL');
    await this.#waitGone(handle, 5000);
    return 'killed';
  }

  sample(handles: readonly ProcessHandle[]): Map<number, InstanceUsage> {
    const now = Date.now();
    const wanted = new Map(handles.map((handle) => [handle.pid, handle]));
    const totals = new Map<number, { ticks: number; rss: number }>();
    for (const stat of readAllProcStats()) {
      if (!wanted.has(stat.pgrp)) continue;
      const total = totals.get(stat.pgrp) ?? { ticks: 0, rss: 0 };
      total.ticks += stat.cpuTicks;
      total.rss += stat.rssBytes;
      totals.set(stat.pgrp, total);
    }
    const usage = new Map<number, InstanceUsage>();
    for (const [pid, total] of totals) {
      const previous = this.#lastCpu.get(pid);
      this.#lastCpu.set(pid, { ticks: total.ticks, at: now });
      const elapsedSeconds = previous ? (now - previous.at) / 1000 : 0;
      const cpuPercent =
        previous && elapsedSeconds > 0
          ? Math.max(0, ((total.ticks - previous.ticks) / clockTicksPerSecond() / elapsedSeconds) * 100)
          : 0;
      usage.set(pid, {
        cpuPercent: Math.round(cpuPercent * 10) / 10,
        memoryBytes: total.rss,
        sampledAt: now,
      });
    }
    return usage;
  }

  onExit(listener: (handle: ProcessHandle, status: ExitStatus) => void): void {
    this.#exitListeners.push(listener);
  }

  async #waitGone(handle: ProcessHandle, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const child = this.#children.get(handle.pid);
    // Our own child: its exit status is exact. An adopted process: look in /proc. Either way the whole group
    // must be gone, since the leader may leave children behind.
    const leaderGone = (): boolean =>
      child ? child.exitCode !== null || child.signalCode !== null : !this.isRunning(handle);
    while (Date.now() < deadline) {
      if (leaderGone() && groupIsEmpty(handle.pid)) return true;
      await new Promise((resolve) => setTimeout(resolve, this.#pollMs));
    }
    return false;
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** True when no live process remains in the group (the leader may have left children behind). */
function groupIsEmpty(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch {
    return true;
  }
  return readAllProcStats().every((stat) => stat.pgrp !== pgid || stat.state === 'Z');
}
