// Instances as Docker containers: host networking, labels for re-adoption, output copied into the JSON-lines file.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { BerthError } from '../../domain/errors.js';
import type { InstanceUsage } from '../../domain/instance.js';
import { systemClock } from '../../lib/clock.js';
import { type Logger, silentLogger } from '../../lib/logger.js';
import { every, type Ticker } from '../../lib/ticker.js';
import {
  type ContainerInfo,
  type ContainerSpec,
  type ContainerStats,
  type DockerEngine,
  DockerError,
} from '../docker/docker-engine.js';
import { ContainerLog } from './container-log.js';
import { readProcStat } from './proc.js';
import { exitPathOf } from './process-runtime.js';
import type {
  ExitStatus,
  InstanceExit,
  InstanceRef,
  ProcessHandle,
  Runtime,
  StartRequest,
  StopOutcome,
} from './runtime.js';

/** Brings an image that is not on this machine (a release's, from its registry, with `app`'s login). */
export interface ImageSource {
  ensure(image: string, app?: string): Promise<void>;
}

export interface DockerRuntimeOptions {
  engine: DockerEngine;
  /** Whose containers these are (the data directory): a Berth adopts and names only its own. */
  owner: string;
  /** Pulls missing images (from the release registry, with its login); default: the engine pulls by itself. */
  images?: ImageSource;
  /** How often `stop` looks whether the container has ended, when no watch tells it. */
  pollMs?: number;
  log?: Logger;
}

/** The labels Berth puts on its containers (`docker ps --filter label=berth.app=shop`). */
export const LABEL = {
  owner: 'berth.owner',
  instance: 'berth.instance',
  /** Names (never values) of the environment variables whose values are scrubbed from the output. */
  scrub: 'berth.scrub',
  logPath: 'berth.log-path',
} as const;

/** Output the engine keeps per container, for the copy to resume from after a control-plane restart. */
const LOG_DRIVER = { Type: 'local', Config: { 'max-size': '16m', 'max-file': '2' } };

interface Watch {
  ref: InstanceRef;
  abort: AbortController;
  /** Resolves once the end is reported (or the watch is closed). */
  done: Promise<void>;
}

interface CpuReading {
  usageNs: number;
  at: number;
}

/**
 * One container per instance, named `berth-<owner>-<instance>`, run with `--network host` (the instance listens on
 * its `PORT` on this machine's loopback, as a process does), `--init` (a small init as PID 1 passes SIGTERM on and
 * reaps children) and the service's limits. Each watched container has one follow of its log: it copies the output
 * and ends when the container stops, and then its end is reported from the engine's record (exit code, signal as
 * 128 + N, OOM kill) and the container removed. An instance that ended while no control plane watched it is still
 * there (stopped), so adoption reports how it ended.
 */
export class DockerRuntime implements Runtime {
  readonly #engine: DockerEngine;
  readonly #owner: string;
  readonly #images: ImageSource | undefined;
  readonly #pollMs: number;
  readonly #log: Logger;
  readonly #listeners = new Set<(exit: InstanceExit) => void>();
  readonly #watches = new Map<string, Watch>();
  /** Every watch until it has finished (reported and removed its container), for `close` to wait on. */
  readonly #running = new Set<Promise<void>>();
  readonly #cpu = new Map<string, CpuReading>();
  #closed = false;
  /** Instances to adopt once the engine answers again. */
  readonly #pending = new Map<string, InstanceRef>();
  #retry: Ticker | undefined;

  constructor(options: DockerRuntimeOptions) {
    this.#engine = options.engine;
    this.#owner = ownerId(options.owner);
    this.#images = options.images;
    this.#pollMs = options.pollMs ?? 50;
    this.#log = options.log ?? silentLogger;
  }

  /** The container of an instance. */
  containerName(instanceId: string): string {
    return `berth-${this.#owner}-${instanceId}`;
  }

  async start(request: StartRequest): Promise<ProcessHandle> {
    const image = request.image;
    if (image === undefined)
      throw new BerthError('internal', `${request.instanceId}: a container needs an image`);
    const name = this.containerName(request.instanceId);
    try {
      if (this.#images) await this.#images.ensure(image, request.labels?.app);
      else if ((await this.#engine.inspectImage(image)) === null) await this.#engine.pullImage(image);
      // A container of this name can only be a leftover of a start that failed half-way.
      await this.#engine.removeContainer(name);
      await this.#engine.createContainer(name, this.#specOf(request, image));
      await this.#engine.startContainer(name);
    } catch (error) {
      await this.#engine.removeContainer(name).catch(() => {});
      throw new BerthError(
        'runtime_failure',
        `could not start ${request.instanceId} from ${image}: ${describe(error)}`,
        {
          cause: error,
        },
      );
    }
    const info = await this.#engine.inspectContainer(name);
    const ref: InstanceRef = {
      instanceId: request.instanceId,
      ...handleOf(info),
      logPath: request.logPath,
      ...(request.limits ? { limits: request.limits } : {}),
      runtime: 'docker',
    };
    this.#watch(ref, request.scrub ?? {});
    return { pid: ref.pid, processStart: ref.processStart };
  }

  async adopt(ref: InstanceRef): Promise<void> {
    if (this.#watches.has(ref.instanceId)) return;
    let info: ContainerInfo | null;
    try {
      info = await this.#engine.inspectContainer(this.containerName(ref.instanceId));
    } catch (error) {
      if (error instanceof DockerError) throw error;
      // No engine now (stopped, restarting): the container may well run on; look again until it answers.
      this.#log.warn(
        { err: error, instance: ref.instanceId },
        'the Docker engine does not answer; adoption retried',
      );
      this.#adoptLater(ref);
      return;
    }
    if (info === null || info.Config.Labels?.[LABEL.owner] !== this.#owner) {
      // Gone: removed once its end was recorded beside its output (by a runtime that watched it end).
      const status = recordedExit(ref.logPath) ?? { code: null, signal: null };
      this.#report({ instanceId: ref.instanceId, status, missed: true });
      return;
    }
    const scrub = scrubValues(info);
    if (!info.State.Running) {
      // It ended while nobody watched: copy what it wrote meanwhile, then report how the engine recorded its end.
      const log = new ContainerLog(ref.logPath, scrub);
      await log.copy(this.#engine, info.Id, { follow: false }).catch((error) => {
        this.#log.warn(
          { err: error, instance: ref.instanceId },
          'could not copy the output of an ended container',
        );
      });
      await log.close();
      const status = exitStatusOf(info, ref);
      recordExit(ref.logPath, status);
      this.#report({ instanceId: ref.instanceId, status, missed: true });
      await this.#engine.removeContainer(info.Id);
      return;
    }
    this.#watch(ref, scrub);
  }

  #adoptLater(ref: InstanceRef): void {
    this.#pending.set(ref.instanceId, ref);
    this.#retry ??= every(
      1000,
      async () => {
        for (const pending of [...this.#pending.values()]) {
          this.#pending.delete(pending.instanceId);
          await this.adopt(pending);
        }
        if (this.#pending.size === 0) {
          const retry = this.#retry;
          this.#retry = undefined;
          void retry?.stop();
        }
      },
      { name: 'container adoption retry', log: this.#log },
    );
  }

  async stop(ref: InstanceRef, timeoutMs: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<StopOutcome> {
    const name = this.containerName(ref.instanceId);
    if (!(await this.#isRunning(name))) return 'gone';
    if (!(await this.#engine.killContainer(name, signal))) return 'gone';
    if (await this.#ended(ref, name, timeoutMs)) return 'terminated';
    await this.#engine.killContainer(name, 'SIGKILL');
    await this.#ended(ref, name, 5000);
    return 'killed';
  }

  async sample(refs: readonly InstanceRef[]): Promise<Map<string, InstanceUsage>> {
    const usage = new Map<string, InstanceUsage>();
    await Promise.all(
      refs.map(async (ref) => {
        const stats = await this.#engine.containerStats(this.containerName(ref.instanceId)).catch(() => null);
        const sampled = stats && this.#usageOf(ref.instanceId, stats);
        if (sampled) usage.set(ref.instanceId, sampled);
      }),
    );
    return usage;
  }

  /**
   * Removes this owner's containers that none of `owned` accounts for (a start the control plane did not get to
   * record); resolves to the pids their main processes had.
   */
  async reclaim(owned: readonly InstanceRef[]): Promise<number[]> {
    const kept = new Set(owned.map((ref) => ref.instanceId));
    const killed: number[] = [];
    let containers: Awaited<ReturnType<DockerEngine['listContainers']>>;
    try {
      containers = await this.#engine.listContainers([`${LABEL.owner}=${this.#owner}`]);
    } catch (error) {
      // No engine: no container of ours can be running either.
      if (error instanceof DockerError) throw error;
      return [];
    }
    for (const container of containers) {
      const instanceId = container.Labels[LABEL.instance];
      if (instanceId !== undefined && kept.has(instanceId)) continue;
      const info = await this.#engine.inspectContainer(container.Id);
      if (info?.State.Running) killed.push(info.State.Pid);
      await this.#engine.removeContainer(container.Id);
    }
    return killed;
  }

  onExit(listener: (exit: InstanceExit) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops watching: containers keep running, and a later runtime adopts them. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#retry?.stop();
    for (const watch of this.#watches.values()) watch.abort.abort();
    await Promise.all(this.#running);
  }

  #specOf(request: StartRequest, image: string): ContainerSpec {
    const labels: Record<string, string> = {
      [LABEL.owner]: this.#owner,
      [LABEL.instance]: request.instanceId,
      [LABEL.logPath]: request.logPath,
      [LABEL.scrub]: Object.keys(request.scrub ?? {}).join(','),
    };
    for (const [key, value] of Object.entries(request.labels ?? {})) labels[`berth.${key}`] = value;
    const memory = request.limits?.memoryBytes;
    const cpu = request.limits?.cpu;
    return {
      Image: image,
      // The command as a shell line, as the process runtime runs it (`exec`, so signals reach the app itself).
      ...(request.command === '' ? {} : { Cmd: ['/bin/sh', '-c', `exec ${request.command}`] }),
      Env: Object.entries(request.env).map(([key, value]) => `${key}=${value}`),
      Labels: labels,
      HostConfig: {
        NetworkMode: 'host',
        Init: true,
        RestartPolicy: { Name: 'no' },
        // setuid programs in the image cannot raise privileges.
        SecurityOpt: ['no-new-privileges'],
        LogConfig: LOG_DRIVER,
        // Memory without swap: over the limit the kernel kills, as the process runtime's cgroup does.
        ...(memory === undefined ? {} : { Memory: memory, MemorySwap: memory }),
        ...(cpu === undefined ? {} : { NanoCpus: Math.round(cpu * 1e9) }),
      },
    };
  }

  /** Follows the container's log until it stops, then reports its end once and removes it. */
  #watch(ref: InstanceRef, scrub: Readonly<Record<string, string>>): void {
    const abort = new AbortController();
    const name = this.containerName(ref.instanceId);
    const done = (async () => {
      const log = new ContainerLog(ref.logPath, scrub);
      let info: ContainerInfo | null | undefined;
      try {
        for (;;) {
          try {
            await log.copy(this.#engine, name, { follow: true, signal: abort.signal });
          } catch (error) {
            if (abort.signal.aborted) return;
            this.#log.warn(
              { err: error, instance: ref.instanceId },
              'following a container log failed; retrying',
            );
          }
          if (abort.signal.aborted) return;
          info = await this.#engine.inspectContainer(name).catch(() => undefined);
          // The stream ended while the container still runs (the engine restarted it): follow again.
          if (info === undefined || info?.State.Running) {
            await systemClock.sleep(250, { signal: abort.signal });
            if (abort.signal.aborted) return;
            continue;
          }
          break;
        }
      } finally {
        await log.close();
      }
      this.#watches.delete(ref.instanceId);
      this.#cpu.delete(ref.instanceId);
      const status = info
        ? exitStatusOf(info, ref)
        : (recordedExit(ref.logPath) ?? { code: null, signal: null });
      // Kept beside the output, as the shim does: the container is removed next, and a control plane that
      // restarts before it recorded this end still learns how it ended.
      recordExit(ref.logPath, status);
      this.#report({ instanceId: ref.instanceId, status, missed: false });
      await this.#engine.removeContainer(name).catch((error) => {
        this.#log.warn({ err: error, container: name }, 'could not remove an ended container');
      });
    })()
      .catch((error) => this.#log.error({ err: error, instance: ref.instanceId }, 'container watch failed'))
      .finally(() => {
        if (this.#watches.get(ref.instanceId)?.abort === abort) this.#watches.delete(ref.instanceId);
      });
    this.#watches.set(ref.instanceId, { ref, abort, done });
    this.#running.add(done);
    void done.finally(() => this.#running.delete(done));
  }

  #report(exit: InstanceExit): void {
    if (this.#closed) return;
    for (const listener of this.#listeners) listener(exit);
  }

  async #isRunning(name: string): Promise<boolean> {
    const info = await this.#engine.inspectContainer(name);
    return info?.State.Running === true;
  }

  /** Waits up to `timeoutMs` for the container to end (and, when watched, for its end to be reported). */
  async #ended(ref: InstanceRef, name: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const watch = this.#watches.get(ref.instanceId);
    while (Date.now() < deadline) {
      if (watch ? !this.#watches.has(ref.instanceId) : !(await this.#isRunning(name))) {
        await watch?.done;
        return true;
      }
      await systemClock.sleep(this.#pollMs);
    }
    return false;
  }

  #usageOf(instanceId: string, stats: ContainerStats): InstanceUsage | null {
    const memory = stats.memory_stats;
    // A stopped container has no memory figures.
    if (memory.usage === undefined || memory.usage === 0) return null;
    // As `docker stats` shows it: page cache that the kernel can drop is not the app's.
    const cache = memory.stats?.['total_inactive_file'] ?? memory.stats?.['inactive_file'] ?? 0;
    const now = Date.now();
    const usageNs = stats.cpu_stats.cpu_usage.total_usage;
    const previous = this.#cpu.get(instanceId);
    this.#cpu.set(instanceId, { usageNs, at: now });
    const elapsedMs = previous ? now - previous.at : 0;
    const cpuPercent =
      previous && elapsedMs > 0 ? Math.max(0, ((usageNs - previous.usageNs) / 1e6 / elapsedMs) * 100) : 0;
    return {
      cpuPercent: Math.round(cpuPercent * 10) / 10,
      memoryBytes: Math.max(0, memory.usage - cache),
      sampledAt: now,
    };
  }
}

/** The short id of an owner (a data directory) in container names and labels. */
function ownerId(owner: string): string {
  return createHash('sha256').update(owner).digest('hex').slice(0, 10);
}

/** pid (on this machine) and start time of a container's main process, as the store keeps a process's. */
function handleOf(info: ContainerInfo | null): ProcessHandle {
  const pid = info?.State.Pid ?? 0;
  return { pid, processStart: pid > 0 ? (readProcStat(pid)?.startTicks ?? 0) : 0 };
}

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, number]) => [number, name]));

/**
 * How a container ended, from the engine's record: 128 + N is "killed by signal N" (the init, like a shell,
 * reports its child's death that way), an OOM kill carries the memory limit it went over.
 */
export function exitStatusOf(info: ContainerInfo, ref: Pick<InstanceRef, 'limits'>): ExitStatus {
  const code = info.State.ExitCode;
  const signal = code > 128 ? SIGNAL_NAMES.get(code - 128) : undefined;
  const status: ExitStatus = signal ? { code: null, signal } : { code, signal: null };
  const limit = ref.limits?.memoryBytes ?? (info.HostConfig.Memory > 0 ? info.HostConfig.Memory : undefined);
  if (info.State.OOMKilled && limit !== undefined) status.memoryLimitBytes = limit;
  return status;
}

/** The values to scrub from an adopted container's output: its environment's, for the names its label lists. */
function scrubValues(info: ContainerInfo): Record<string, string> {
  const names = new Set((info.Config.Labels?.[LABEL.scrub] ?? '').split(',').filter((n) => n !== ''));
  const values: Record<string, string> = {};
  for (const entry of info.Config.Env ?? []) {
    const eq = entry.indexOf('=');
    const key = entry.slice(0, eq);
    if (names.has(key)) values[key] = entry.slice(eq + 1);
  }
  return values;
}

function recordExit(logPath: string, status: ExitStatus): void {
  try {
    writeFileSync(exitPathOf(logPath), JSON.stringify({ ...status, t: Date.now() }), { mode: 0o600 });
  } catch {
    // The output directory went away (an app deleted): nobody will ask.
  }
}

function recordedExit(logPath: string): ExitStatus | null {
  try {
    const recorded = JSON.parse(readFileSync(exitPathOf(logPath), 'utf8')) as Partial<ExitStatus>;
    return {
      code: recorded.code ?? null,
      signal: recorded.signal ?? null,
      ...(recorded.memoryLimitBytes === undefined ? {} : { memoryLimitBytes: recorded.memoryLimitBytes }),
    };
  } catch {
    return null;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
