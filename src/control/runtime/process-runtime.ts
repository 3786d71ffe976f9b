// The embedded default runtime: each instance is a shim and its app in their own process group, output to a file.
import { type ChildProcess, spawn as spawnChild } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BerthError } from '../../domain/errors.js';
import type { InstanceUsage } from '../../domain/instance.js';
import { type Logger, silentLogger } from '../../lib/logger.js';
import { every, type Ticker } from '../../lib/ticker.js';
import { type CgroupDriver, detectCgroups } from './cgroups.js';
import { clockTicksPerSecond, readAllProcStats, readProcStat } from './proc.js';
import type {
  ExitStatus,
  InstanceExit,
  InstanceRef,
  ProcessHandle,
  Runtime,
  StartRequest,
  StopOutcome,
} from './runtime.js';

export type Spawn = typeof spawnChild;

export interface ProcessRuntimeOptions {
  /** Replaceable for tests; defaults to node's spawn. */
  spawn?: Spawn;
  /** How often `stop` looks whether a process group is gone. */
  pollMs?: number;
  /** The instance shim's executable; `DEFAULT_SHIM` (built from `src/main/instance-shim.c`) by default. */
  shim?: string;
  /** Limits of the shim's output handling, smaller in tests (defaults in `instance-shim.c`). */
  shimTuning?: ShimTuning;
  /**
   * Where limits become cgroups; `null` turns kernel limits off. Defaults to what the machine allows, under
   * `berth/<owner>/` (or `berth/shared/` without an owner).
   */
  cgroups?: CgroupDriver | null;
  /** How often adopted instances (not our children: no exit event) are looked up in /proc. */
  watchMs?: number;
  log?: Logger;
  /**
   * Marks every shim and app this runtime starts (`BERTH_OWNER=<owner>` in their environment, inherited by the
   * app's own children), so that a later runtime of the same owner finds those no record accounts for
   * (`reclaim`). The control plane uses `ownerMark(dataDir)`.
   */
  owner?: string;
}

/** The environment variable that marks the processes of one owner (one data directory). */
export const OWNER_ENV = 'BERTH_OWNER';

/** A short, stable mark for the processes of the Berth that keeps its state in `dataDir` (not the path itself). */
export function ownerMark(dataDir: string): string {
  let path = resolve(dataDir);
  try {
    path = realpathSync(path);
  } catch {
    // Not created yet: the resolved path is what it will be.
  }
  return createHash('sha256').update(path).digest('hex').slice(0, 16);
}

/** Default of `watchMs`. */
export const ADOPTED_WATCH_MS = 250;

/**
 * The native shim `npm run build` compiles from `src/main/instance-shim.c` (scripts/build-shim.mjs) beside the
 * compiled TypeScript: `dist/src/control/runtime/` → `dist/src/main/berth-shim`.
 */
export const DEFAULT_SHIM = fileURLToPath(new URL('../../main/berth-shim', import.meta.url));

/** The shim's output limits: bytes queued for the disk, the longest line, a partial line's quiet spell. */
export interface ShimTuning {
  maxQueueBytes?: number;
  maxLineBytes?: number;
  partialFlushMs?: number;
}

/**
 * The shim's config as it reads it on stdin: `key=value` records ended by NUL (keys documented in
 * `instance-shim.c`). No value may hold a NUL byte (none of an environment, a path or a command can).
 */
export function shimConfig(fields: Record<string, string | number | readonly string[] | undefined>): Buffer {
  const records: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [String(value)]) {
      if (item.includes('\0'))
        throw new BerthError('invalid_request', `${key}: a value may not contain a NUL byte`);
      records.push(`${key}=${item}\0`);
    }
  }
  return Buffer.from(records.join(''), 'utf8');
}

/** `<logs>/<app>/<id>.log` → `<logs>/<app>/<id>.exit`. */
export function exitPathOf(logPath: string): string {
  return logPath.endsWith('.log') ? `${logPath.slice(0, -'.log'.length)}.exit` : `${logPath}.exit`;
}

interface CpuSample {
  ticks: number;
  at: number;
}

/**
 * Instances as process groups led by a shim. Our own children report their exit through node; instances adopted
 * after a restart are looked up in /proc every `watchMs` (nothing else would tell us they ended). Either way each
 * ends once on the exit stream, with the app's status as its shim recorded it and whether the kernel OOM-killed it.
 */
export class ProcessRuntime implements Runtime {
  readonly #spawn: Spawn;
  readonly #pollMs: number;
  readonly #shim: string;
  readonly #shimTuning: ShimTuning;
  readonly #exitListeners = new Set<(exit: InstanceExit) => void>();
  readonly #children = new Map<number, ChildProcess>();
  readonly #adopted = new Map<string, InstanceRef>();
  readonly #lastCpu = new Map<number, CpuSample>();
  readonly #cgroups: CgroupDriver | null;
  readonly #watchMs: number;
  readonly #log: Logger;
  readonly #owner: string | undefined;
  #watch: Ticker | undefined;

  constructor(options: ProcessRuntimeOptions = {}) {
    this.#owner = options.owner;
    this.#cgroups = options.cgroups === undefined ? detectCgroups(undefined, options.owner) : options.cgroups;
    // Cgroups of instances that ended while no runtime watched them (a control-plane restart) are empty now. Only an
    // owner's runtime sweeps, and only its own scope: another runtime's fresh cgroup is empty until its app joins.
    if (this.#owner !== undefined) this.#cgroups?.sweep();
    this.#spawn = options.spawn ?? spawnChild;
    this.#pollMs = options.pollMs ?? 25;
    this.#shim = options.shim ?? DEFAULT_SHIM;
    this.#shimTuning = options.shimTuning ?? {};
    this.#watchMs = options.watchMs ?? ADOPTED_WATCH_MS;
    this.#log = options.log ?? silentLogger;
  }

  /** `v1`/`v2` when resource limits are enforced by the kernel, `null` when only from /proc samples. */
  get cgroupKind(): 'v1' | 'v2' | null {
    return this.#cgroups?.kind ?? null;
  }

  async start(request: StartRequest): Promise<ProcessHandle> {
    mkdirSync(dirname(request.logPath), { recursive: true });
    // Named after the instance; the shim moves the app (not itself) into them, so the shim's memory is not counted.
    const cgroups =
      request.limits && this.#cgroups ? this.#cgroups.create(request.instanceId, request.limits) : [];
    // The shim's config (with the secrets) goes over a pipe that is then closed; checked before anything runs.
    const config = shimConfig({
      instance: request.instanceId,
      command: request.command,
      cwd: request.cwd,
      log: request.logPath,
      exit: exitPathOf(request.logPath),
      env: Object.entries({ ...request.env, ...this.#mark() }).map(([name, value]) => `${name}=${value}`),
      scrub: Object.entries(request.scrub ?? {}).map(([name, value]) => `${name}=${value}`),
      cgroup: cgroups,
      max_queue_bytes: this.#shimTuning.maxQueueBytes,
      max_line_bytes: this.#shimTuning.maxLineBytes,
      partial_flush_ms: this.#shimTuning.partialFlushMs,
    });
    // The shim, not the app, is our child: it owns the app's pipes, so the app keeps writing its output when
    // the control plane restarts or stops.
    let child: ChildProcess;
    try {
      child = this.#spawn(this.#shim, [request.instanceId], {
        cwd: request.cwd,
        env: { PATH: request.env.PATH ?? '/usr/bin:/bin', ...this.#mark() },
        // detached = setsid(): its own session and process group, so a stop reaches the app and its children.
        detached: true,
        stdio: ['pipe', 'ignore', 'ignore'],
      });
    } catch (error) {
      throw new BerthError('runtime_failure', `could not start the instance shim for ${request.instanceId}`, {
        cause: error,
      });
    }
    try {
      await once(child, 'spawn');
    } catch (error) {
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT' && !existsSync(this.#shim);
      throw new BerthError(
        'runtime_failure',
        missing
          ? `the instance shim ${this.#shim} is missing: \`npm run build\` compiles it (it needs a C compiler: Debian package gcc)`
          : `could not start \`${request.command}\` in ${request.cwd}`,
        { cause: error },
      );
    }
    child.stdin!.on('error', () => {
      // The shim died before reading its config: its exit is reported below.
    });
    child.stdin!.end(config);
    const pid = child.pid!;
    child.unref();
    const stat = readProcStat(pid);
    const handle: ProcessHandle = { pid, processStart: stat?.startTicks ?? 0 };
    this.#children.set(pid, child);
    child.once('exit', (code, signal) => {
      this.#children.delete(pid);
      // Our own child, reaped by node just now: its pid cannot have been reused.
      killOrphans(pid);
      // The app's own status, as the shim recorded it; the shim's when it could not (killed with SIGKILL).
      this.#ended(
        request.instanceId,
        pid,
        request.logPath,
        request.limits?.memoryBytes,
        { code, signal },
        false,
      );
    });
    return handle;
  }

  async adopt(ref: InstanceRef): Promise<void> {
    if (this.#adopted.has(ref.instanceId)) return;
    if (!this.#isRunning(ref)) {
      this.#ended(
        ref.instanceId,
        ref.pid,
        ref.logPath,
        ref.limits?.memoryBytes,
        { code: null, signal: null },
        true,
      );
      return;
    }
    this.#adopted.set(ref.instanceId, ref);
    this.#watch ??= every(this.#watchMs, () => this.#lookUpAdopted(), {
      name: 'adopted instances watch',
      log: this.#log,
    });
  }

  async close(): Promise<void> {
    await this.#watch?.stop();
    this.#watch = undefined;
  }

  onExit(listener: (exit: InstanceExit) => void): () => void {
    this.#exitListeners.add(listener);
    return () => this.#exitListeners.delete(listener);
  }

  /** The one place an end is reported: cleans up after the instance, then tells the listeners once. */
  #ended(
    instanceId: string,
    pid: number,
    logPath: string,
    memoryLimitBytes: number | undefined,
    fallback: ExitStatus,
    missed: boolean,
  ): void {
    // Its cgroup may hold processes that left the group (a setsid); the cgroup is the instance's own, by name.
    this.#cgroups?.kill(instanceId);
    const oomKilled = (this.#cgroups?.oomKills(instanceId) ?? 0) > 0;
    this.#cgroups?.remove(instanceId);
    this.#lastCpu.delete(pid);
    this.#adopted.delete(instanceId);
    const status: ExitStatus = { ...(this.#recordedExit(logPath) ?? fallback) };
    if (oomKilled && memoryLimitBytes !== undefined) status.memoryLimitBytes = memoryLimitBytes;
    for (const listener of this.#exitListeners) listener({ instanceId, status, missed });
  }

  #lookUpAdopted(): void {
    for (const ref of [...this.#adopted.values()]) {
      if (this.#isRunning(ref)) continue;
      this.#ended(
        ref.instanceId,
        ref.pid,
        ref.logPath,
        ref.limits?.memoryBytes,
        { code: null, signal: null },
        false,
      );
    }
  }

  /**
   * True while the shim runs. When it is gone, or a zombie its new parent has not reaped yet (an adopted shim's parent
   * is init, which may take a while, or never do it in a container), what is left of its group is killed: nothing
   * records the app's output or exit any more, so nothing of the instance may stay. A pid now used by another
   * process means the group ended long ago (Linux reuses neither while it has members): that one is left alone.
   */
  #isRunning(handle: ProcessHandle): boolean {
    const stat = readProcStat(handle.pid);
    const same = stat !== undefined && stat.startTicks === handle.processStart;
    if (same && stat.state !== 'Z') return true;
    if (stat === undefined || same) killOrphans(handle.pid);
    return false;
  }

  async reclaim(owned: readonly InstanceRef[]): Promise<number[]> {
    if (this.#owner === undefined) return [];
    const groups = new Set(owned.filter((ref) => this.#isRunning(ref)).map((ref) => ref.pid));
    // Every stray first, then the kills: killed one by one during the scan, an app found before its shim (pids
    // wrap around) took the shim with it before the scan reached it, and the shim went unreported.
    const strays = readAllProcStats().filter(
      (stat) =>
        stat.pid !== process.pid &&
        stat.state !== 'Z' &&
        !groups.has(stat.pgrp) &&
        hasEnvEntry(stat.pid, `${OWNER_ENV}=${this.#owner}`),
    );
    const killed: number[] = [];
    for (const { pid } of strays) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(pid);
      } catch {
        // Exited meanwhile.
      }
    }
    return killed;
  }

  #mark(): Record<string, string> {
    return this.#owner === undefined ? {} : { [OWNER_ENV]: this.#owner };
  }

  async stop(
    handle: InstanceRef,
    timeoutMs: number,
    signal: NodeJS.Signals = 'SIGTERM',
  ): Promise<StopOutcome> {
    if (!this.#isRunning(handle)) return 'gone';
    signalGroup(handle.pid, signal);
    if (await this.#waitGone(handle, timeoutMs)) return 'terminated';
    signalGroup(handle.pid, 'SIGKILL');
    await this.#waitGone(handle, 5000);
    return 'killed';
  }

  async sample(refs: readonly InstanceRef[]): Promise<Map<string, InstanceUsage>> {
    const now = Date.now();
    const wanted = new Map(refs.map((ref) => [ref.pid, ref]));
    const totals = new Map<number, { ticks: number; rss: number }>();
    for (const stat of readAllProcStats()) {
      if (!wanted.has(stat.pgrp)) continue;
      const total = totals.get(stat.pgrp) ?? { ticks: 0, rss: 0 };
      total.ticks += stat.cpuTicks;
      total.rss += stat.rssBytes;
      totals.set(stat.pgrp, total);
    }
    const usage = new Map<string, InstanceUsage>();
    for (const [pid, total] of totals) {
      const previous = this.#lastCpu.get(pid);
      this.#lastCpu.set(pid, { ticks: total.ticks, at: now });
      const elapsedSeconds = previous ? (now - previous.at) / 1000 : 0;
      const cpuPercent =
        previous && elapsedSeconds > 0
          ? Math.max(0, ((total.ticks - previous.ticks) / clockTicksPerSecond() / elapsedSeconds) * 100)
          : 0;
      usage.set(wanted.get(pid)!.instanceId, {
        cpuPercent: Math.round(cpuPercent * 10) / 10,
        memoryBytes: total.rss,
        sampledAt: now,
      });
    }
    return usage;
  }

  /** How the app ended, as its shim recorded it beside its output; null when unknown. */
  #recordedExit(logPath: string): ExitStatus | null {
    // Instances from before the shim have no log path, and no status file.
    if (logPath === '') return null;
    try {
      const recorded = JSON.parse(readFileSync(exitPathOf(logPath), 'utf8')) as Partial<ExitStatus>;
      return { code: recorded.code ?? null, signal: recorded.signal ?? null };
    } catch {
      return null;
    }
  }

  async #waitGone(handle: ProcessHandle, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const child = this.#children.get(handle.pid);
    // Our own child: its exit status is exact. An adopted process: look in /proc. Either way the whole group
    // must be gone, since the leader may leave children behind.
    const leaderGone = (): boolean =>
      child ? child.exitCode !== null || child.signalCode !== null : !this.#isRunning(handle);
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

/**
 * Kills what is left of an instance whose shim is gone (killed with SIGKILL): nothing would record the app's
 * output or exit any more. Safe against pid reuse: while the group has members, Linux reuses neither its id nor
 * the leader's pid.
 */
function killOrphans(pgid: number): void {
  if (!groupIsEmpty(pgid)) signalGroup(pgid, 'SIGKILL');
}

/** True when `/proc/<pid>/environ` holds exactly `entry` (`NAME=value`); false when unreadable. */
function hasEnvEntry(pid: number, entry: string): boolean {
  let environ: Buffer;
  try {
    environ = readFileSync(`/proc/${pid}/environ`);
  } catch {
    return false;
  }
  return environ.indexOf(`${entry}\0`) === 0 || environ.includes(`\0${entry}\0`);
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
