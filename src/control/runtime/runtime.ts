// The runtime interface: how the control plane starts, adopts, samples and stops instances, and learns they ended.
import type { Instance, InstanceUsage, RuntimeKind } from '../../domain/instance.js';
import type { ResourceLimits } from './cgroups.js';

export type { RuntimeKind };

export interface StartRequest {
  instanceId: string;
  /** Directory the command runs in (the release's directory); a container runs in its image's directory. */
  cwd: string;
  /** Shell command line, e.g. `node server.js`; in a container, empty runs the image's own command. */
  command: string;
  /** The image to run the instance from (`registry/name@sha256:…`): set for containers only. */
  image?: string;
  /** What the instance is, for those who look at it from outside (Docker labels): app, service, release. */
  labels?: Record<string, string>;
  /** The whole environment of the instance (the runtime adds nothing). */
  env: Record<string, string>;
  /**
   * The instance's output file: one JSON object per line, `{"t":<epoch ms>,"s":"out"|"err","l":"<text>"}`.
   * How the app ended is recorded beside it, so a later runtime can report it.
   */
  logPath: string;
  /** Secret values to replace by `[secret:NAME]` in the output, name → value. */
  scrub?: Record<string, string>;
  /** Limits the kernel enforces on the app, where the runtime can (see `detectCgroups`). */
  limits?: ResourceLimits;
}

/** Where an instance runs, as its runtime reports it at start: kept in the store to find it again. */
export interface ProcessHandle {
  pid: number;
  /** Start time in clock ticks since boot (from /proc/PID/stat): a recycled pid is never mistaken for it. */
  processStart: number;
}

/** What the store keeps of an instance for its runtime: enough to find it again after a restart. */
export interface InstanceRef extends ProcessHandle {
  instanceId: string;
  /** The output file given at start (the exit is recorded beside it). */
  logPath: string;
  /** The limits it was started with, so an adopted instance's OOM kill is recognised too. */
  limits?: ResourceLimits;
  /** The runtime that runs it; absent for a process (instances recorded before containers existed). */
  runtime?: RuntimeKind;
}

export interface ExitStatus {
  /** Null when it was killed by a signal, or when how it ended is unknown (both null). */
  code: number | null;
  signal: string | null;
  /** Set when the kernel killed the app for going over this memory limit (bytes): an OOM kill. */
  memoryLimitBytes?: number;
}

/** One report on the exit stream: an instance ended. */
export interface InstanceExit {
  instanceId: string;
  status: ExitStatus;
  /** True when it ended while no runtime watched it (found on adoption, after a control-plane restart). */
  missed: boolean;
}

/** How a stop ended: the process left after SIGTERM, needed SIGKILL, or was already gone. */
export type StopOutcome = 'terminated' | 'killed' | 'gone';

/**
 * A way to run instances (processes, containers; pods later). Every instance it started or adopted ends
 * exactly once on its exit stream, whether it exited, was killed, was stopped or was found gone on adoption:
 * that stream is the one place the control plane learns an instance ended. `runtime-contract.ts` is the suite
 * every implementation passes.
 */
export interface Runtime {
  /** Starts the instance; resolves once it exists. */
  start(request: StartRequest): Promise<ProcessHandle>;
  /**
   * Watches an instance a previous control plane started. One that is already gone is reported on the exit stream
   * (`missed`) before this resolves, with what its runtime recorded of its end.
   */
  adopt(ref: InstanceRef): Promise<void>;
  /**
   * Asks the instance to stop (`signal`, SIGTERM unless said; SIGKILL after `timeoutMs`); resolves once it is gone.
   */
  stop(ref: InstanceRef, timeoutMs: number, signal?: NodeJS.Signals): Promise<StopOutcome>;
  /** CPU and memory of the running instances among `refs`, keyed by instance id. */
  sample(refs: readonly InstanceRef[]): Promise<Map<string, InstanceUsage>>;
  /**
   * Ends every process (or container) this runtime's owner started that none of `owned` accounts for: what a
   * control plane that stopped between starting an instance and recording it leaves behind. Resolves to the pids
   * it killed.
   */
  reclaim(owned: readonly InstanceRef[]): Promise<number[]>;
  /** Subscribes to the exit stream; returns how to unsubscribe. */
  onExit(listener: (exit: InstanceExit) => void): () => void;
  /** Stops watching (instances keep running). */
  close(): Promise<void>;
}

/** The runtime's reference to a recorded instance; null before its process was recorded. */
export function instanceRef(instance: Instance, limits?: ResourceLimits): InstanceRef | null {
  if (instance.pid === null || instance.processStart === null) return null;
  return {
    instanceId: instance.id,
    pid: instance.pid,
    processStart: instance.processStart,
    logPath: instance.logPath,
    ...(limits === undefined ? {} : { limits }),
    ...(instance.runtime === 'process' ? {} : { runtime: instance.runtime }),
  };
}

/** Says how an instance ended, for events: `exited with code 3`, `killed by SIGKILL`. */
export function describeExit(status: ExitStatus): string {
  if (status.signal) return `killed by ${status.signal}`;
  if (status.code !== null) return `exited with code ${status.code}`;
  return 'process exited';
}
