// A runtime without processes: instances live in a FakeHost (which outlives runtimes, as a machine outlives a
// control plane), behave as their program says, and end once on the exit stream of the runtime watching them.

import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type {
  ExitStatus,
  InstanceExit,
  InstanceRef,
  ProcessHandle,
  Runtime,
  StartRequest,
  StopOutcome,
} from '../../src/control/runtime/runtime.js';
import { TextScrubber } from '../../src/control/secrets/scrubber.js';
import type { InstanceUsage } from '../../src/domain/instance.js';
import { type Clock, systemClock } from '../../src/lib/clock.js';

/** How a fake instance behaves. */
export interface FakeProgram {
  /** It exits by itself this long after its start (on the runtime's clock); it runs until stopped when unset. */
  exitAfterMs?: number;
  /** How it exits by itself; default code 0. */
  exit?: ExitStatus;
  /**
   * It ignores SIGTERM, so a stop needs SIGKILL after the stop timeout, and exits with code 7 on SIGINT (as the
   * contract's app does).
   */
  ignoresTerm?: boolean;
  /** `start` fails with this message (the runtime could not start it). */
  failsToStart?: string;
  memoryBytes?: number;
  /** Lines it writes at start, to its output file (scrubbed, as a runtime writes them); `$NAME` reads its env. */
  prints?: { s: 'out' | 'err'; l: string }[];
  /** It allocates until its memory limit (if it has one) gets it killed. */
  exceedsMemory?: boolean;
}

interface FakeProcess {
  request: StartRequest;
  handle: ProcessHandle;
  program: FakeProgram;
  running: boolean;
  /** What the instance's runtime recorded of its end (the process runtime's exit file). */
  ended: ExitStatus | undefined;
  /** The runtime that reports its end, if one watches it. */
  watcher: FakeRuntime | undefined;
}

/** The programs the shared contract suite starts, by command. */
export const CONTRACT_PROGRAMS: Record<string, FakeProgram> = {
  serves: {},
  'exits 3': { exitAfterMs: 0, exit: { code: 3, signal: null } },
  'ignores SIGTERM': { ignoresTerm: true },
  prints: {
    exitAfterMs: 0,
    exit: { code: 0, signal: null },
    prints: [
      { s: 'out', l: 'token=$CONTRACT_TOKEN' },
      { s: 'err', l: 'warning' },
    ],
  },
  'exceeds memory': { exceedsMemory: true },
};

/** The machine fake instances run on: shared by the runtimes of successive (restarted) control planes. */
export class FakeHost {
  readonly processes = new Map<string, FakeProcess>();
  /** The program of each started instance: by command from `programs`, else whatever `program` says. */
  programs: Record<string, FakeProgram> = { ...CONTRACT_PROGRAMS };
  program: (request: StartRequest) => FakeProgram = (request) => this.programs[request.command] ?? {};
  #nextPid = 1000;

  spawn(request: StartRequest, program: FakeProgram): FakeProcess {
    const pid = this.#nextPid++;
    const process: FakeProcess = {
      request,
      handle: { pid, processStart: pid * 10 },
      program,
      running: true,
      ended: undefined,
      watcher: undefined,
    };
    this.processes.set(request.instanceId, process);
    return process;
  }

  /** The instance ends now, as `status` says; the runtime watching it (if any) reports it once. */
  end(instanceId: string, status: ExitStatus): void {
    const process = this.processes.get(instanceId);
    if (!process?.running) return;
    process.running = false;
    process.ended = status;
    process.watcher?.report({ instanceId, status, missed: false });
  }

  /** Instances running now, by id. */
  running(): string[] {
    return [...this.processes.values()].filter((p) => p.running).map((p) => p.request.instanceId);
  }
}

/** The fake `Runtime`: passes the same contract suite as `ProcessRuntime`. */
export class FakeRuntime implements Runtime {
  readonly host: FakeHost;
  /** Every start request, in order. */
  readonly started: StartRequest[] = [];
  readonly #clock: Clock;
  readonly #listeners = new Set<(exit: InstanceExit) => void>();
  #closed = false;

  constructor(options: { host?: FakeHost; clock?: Clock } = {}) {
    this.host = options.host ?? new FakeHost();
    this.#clock = options.clock ?? systemClock;
  }

  async start(request: StartRequest): Promise<ProcessHandle> {
    this.started.push(request);
    const program = this.host.program(request);
    if (program.failsToStart !== undefined) throw new Error(program.failsToStart);
    const process = this.host.spawn(request, program);
    process.watcher = this;
    if (program.prints) writeOutput(request, program.prints, this.#clock.now());
    const limit = request.limits?.memoryBytes;
    if (program.exceedsMemory && limit !== undefined) {
      void this.#clock.sleep(0).then(() => this.oomKill(request.instanceId, limit));
    } else if (program.exitAfterMs !== undefined) {
      const exit = program.exit ?? { code: 0, signal: null };
      void this.#clock.sleep(program.exitAfterMs).then(() => this.host.end(request.instanceId, exit));
    }
    return process.handle;
  }

  async adopt(ref: InstanceRef): Promise<void> {
    const process = this.host.processes.get(ref.instanceId);
    if (process?.running && process.handle.pid === ref.pid) {
      process.watcher = this;
      return;
    }
    this.report({
      instanceId: ref.instanceId,
      status: process?.ended ?? { code: null, signal: null },
      missed: true,
    });
  }

  async stop(ref: InstanceRef, timeoutMs: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<StopOutcome> {
    const process = this.host.processes.get(ref.instanceId);
    if (!process?.running) return 'gone';
    if (signal !== 'SIGTERM') {
      const handled = process.program.ignoresTerm && signal === 'SIGINT';
      this.host.end(ref.instanceId, handled ? { code: 7, signal: null } : { code: null, signal });
      return 'terminated';
    }
    if (!process.program.ignoresTerm) {
      this.host.end(ref.instanceId, { code: 0, signal: null });
      return 'terminated';
    }
    await this.#clock.sleep(timeoutMs);
    if (!process.running) return 'terminated';
    this.host.end(ref.instanceId, { code: null, signal: 'SIGKILL' });
    return 'killed';
  }

  async sample(refs: readonly InstanceRef[]): Promise<Map<string, InstanceUsage>> {
    const usage = new Map<string, InstanceUsage>();
    for (const ref of refs) {
      const process = this.host.processes.get(ref.instanceId);
      if (!process?.running) continue;
      usage.set(ref.instanceId, {
        cpuPercent: 0,
        memoryBytes: process.program.memoryBytes ?? 40 * 1024 * 1024,
        sampledAt: this.#clock.now(),
      });
    }
    return usage;
  }

  /** The host's running processes that none of `owned` accounts for are killed (the host is one owner's). */
  async reclaim(owned: readonly InstanceRef[]): Promise<number[]> {
    const killed: number[] = [];
    for (const process of [...this.host.processes.values()]) {
      if (!process.running) continue;
      const { instanceId } = process.request;
      if (owned.some((ref) => ref.instanceId === instanceId && ref.pid === process.handle.pid)) continue;
      this.host.end(instanceId, { code: null, signal: 'SIGKILL' });
      killed.push(process.handle.pid);
    }
    return killed;
  }

  onExit(listener: (exit: InstanceExit) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const process of this.host.processes.values())
      if (process.watcher === this) process.watcher = undefined;
  }

  // What tests do to instances from outside.

  /** The app exits on its own now (a crash), with `status`. */
  crash(instanceId: string, status: ExitStatus = { code: 1, signal: null }): void {
    this.host.end(instanceId, status);
  }

  /** The kernel's OOM killer ends the app for going over `limitBytes`. */
  oomKill(instanceId: string, limitBytes: number): void {
    this.host.end(instanceId, { code: null, signal: 'SIGKILL', memoryLimitBytes: limitBytes });
  }

  /** Reports an end on this runtime's exit stream (the host calls it for the instances this runtime watches). */
  report(exit: InstanceExit): void {
    if (this.#closed) return;
    for (const listener of this.#listeners) listener(exit);
  }
}

/** Writes a fake program's lines as a runtime would: JSON lines in its output file, secret values scrubbed. */
function writeOutput(request: StartRequest, lines: { s: 'out' | 'err'; l: string }[], now: number): void {
  const scrubber = new TextScrubber();
  scrubber.setSecrets(request.scrub ?? {});
  const text = lines
    .map(({ s, l }) => {
      const line = l.replace(/\$([A-Z_][A-Z0-9_]*)/g, (_, name: string) => request.env[name] ?? '');
      return `${JSON.stringify({ t: now, s, l: scrubber.scrub(line) })}\n`;
    })
    .join('');
  mkdirSync(dirname(request.logPath), { recursive: true });
  appendFileSync(request.logPath, text);
}
