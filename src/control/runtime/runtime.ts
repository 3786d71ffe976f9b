// The runtime interface: how the control plane starts, adopts, samples and stops instances, and learns they ended.
import type { Instance, InstanceUsage } from '../../domain/instance.js';
import type { ResourceLimits } from './cgroups.js';

/** One line of an instance's output file, as its shim writes it. */
export interface OutputRecord {
  /** When the line was read (epoch ms). */
  t: number;
  s: 'out' | 'err';
  l: string;
}

export interface StartRequest {
  instanceId: string;
  /** Directory the command runs in (the release's directory). */
  cwd: string;
  /** Shell command line, e.g. `node server.js`. */
  command: string;
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
 * A way to run instances (processes here; containers and pods later). Every instance it started or adopted ends
 * exactly once on its exit stream, whether it exited, was killed, was stopped or was found gone on adoption:
 * that stream is the one place the control plane learns an instance ended. `runtime-contract.ts` is the suite
 * every implementation passes.
 */
export interface Runtime {
  /** Starts the instance; resolves once it exists. */
  start(request: StartRequest): Promise<ProcessHandle>;
  /**
   * Watches an instance a previous control plane started. One that is already gone is reported on the exit stream
   * (`missed`) before this returns, with what its runtime recorded of its end.
   */
  adopt(ref: InstanceRef): void;
  /** Asks the instance to stop (SIGTERM, SIGKILL after `timeoutMs`); resolves once it is gone. */
  stop(ref: InstanceRef, timeoutMs: number): Promise<StopOutcome>;
  /** CPU and memory of the running instances among `refs`, keyed by instance id. */
  sample(refs: readonly InstanceRef[]): Map<string, InstanceUsage>;
  /**
   * Ends every process this runtime's owner started that none of `owned` accounts for: what a control plane that
   * stopped between starting an instance and recording it leaves behind. Returns the pids it killed.
   */
  reclaim(owned: readonly InstanceRef[]): number[];
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
  };
}

/** Says how an instance ended, for events: `exited with code 3`, `killed by SIGKILL`. */
export function describeExit(status: ExitStatus): string {
  if (status.signal) return `killed by ${status.signal}`;
  if (status.code !== null) return `exited with code ${status.code}`;
  return 'process exited';
}
