// The runtime interface: how the control plane starts, watches, samples and stops instances.
import type { InstanceUsage } from '../../domain/instance.js';
import type { ResourceLimits } from './cgroups.js';

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
   * The exit status is written beside it (`<name>.exit` for `<name>.log`).
   */
  logPath: string;
  /** Secret values to replace by `[secret:NAME]` in the output, name → value. */
  scrub?: Record<string, string>;
  /** Limits the kernel enforces on the app, where the runtime can make a cgroup (see `detectCgroups`). */
  limits?: ResourceLimits;
}

/** Identifies a running instance across control-plane restarts: pid plus the process's start time. */
export interface ProcessHandle {
  pid: number;
  /** Start time in clock ticks since boot, from /proc/PID/stat. */
  processStart: number;
  /** The instance it runs: lets the runtime end the instance's cgroup too when the process is found gone. */
  instanceId?: string;
}

export interface ExitStatus {
  code: number | null;
  signal: string | null;
  /** Set when the kernel killed the app for going over this memory limit (bytes). */
  memoryLimitBytes?: number;
}

/** How a stop ended: the process left after SIGTERM, needed SIGKILL, or was already gone. */
export type StopOutcome = 'terminated' | 'killed' | 'gone';

export interface Runtime {
  /** Starts the instance; resolves once the process exists. */
  start(request: StartRequest): Promise<ProcessHandle>;
  /**
   * True when the process still runs and is the same process (same start time), so a recycled pid never counts.
   * When it is gone, whatever it left behind (the rest of its process group, its cgroup) is ended on the spot:
   * an instance never outlives its shim, whether this runtime started it or adopted it.
   */
  isRunning(handle: ProcessHandle): boolean;
  /**
   * Ends every process this runtime's owner started that none of `owned` accounts for: what a control plane that
   * stopped between starting an instance and recording it leaves behind. Returns the pids it killed.
   */
  reclaim(owned: readonly ProcessHandle[]): number[];
  /** SIGTERM to the instance's process group, SIGKILL after `timeoutMs`; resolves once it is gone. */
  stop(handle: ProcessHandle, timeoutMs: number): Promise<StopOutcome>;
  /** CPU and memory of each instance's whole process group, keyed by pid. */
  sample(handles: readonly ProcessHandle[]): Map<number, InstanceUsage>;
  /** Called when a process this runtime started exits (adopted ones are found by `isRunning`). */
  onExit(listener: (handle: ProcessHandle, status: ExitStatus) => void): void;
  /**
   * How an instance's app ended, read from what its runtime left beside `logPath`; null when unknown (still
   * running, or killed before it could be recorded). Lets the control plane report "exited with code 3" for an
   * instance it adopted after a restart and so never saw exit.
   */
  exitStatus(logPath: string): ExitStatus | null;
}
