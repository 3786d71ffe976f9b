// Instances: one running copy of a service release, and the states it moves through.
import { stateMachine } from './state-machine.js';

/** `starting` until its health check passes; `draining` on the way out; `stopped`/`crashed` are final. */
export type InstanceState = 'starting' | 'healthy' | 'unhealthy' | 'draining' | 'stopped' | 'crashed';

/**
 * How an instance's state may change. Health (from the proxy, or "running" for a service without a check) moves
 * it between `starting`, `healthy` and `unhealthy`; a planned stop makes it `draining` (out of the load balancer,
 * in-flight requests finish) and then `stopped` — or `crashed`, for a start that failed its health check; an exit
 * nobody asked for makes any live instance `crashed`.
 */
export const INSTANCE_STATES = stateMachine<InstanceState>('instance', {
  starting: ['healthy', 'draining', 'crashed'],
  healthy: ['unhealthy', 'draining', 'crashed'],
  unhealthy: ['healthy', 'draining', 'crashed'],
  draining: ['stopped', 'crashed'],
  stopped: [],
  crashed: [],
});

/** States of an instance whose process is (meant to be) running. */
export const LIVE_STATES: readonly InstanceState[] = ['starting', 'healthy', 'unhealthy', 'draining'];

export function isLive(state: InstanceState): boolean {
  return LIVE_STATES.includes(state);
}

/** Which runtime runs an instance: a process under its shim, or a Docker container. */
export type RuntimeKind = 'process' | 'docker';

/** An instance as the control plane records it. Times are epoch milliseconds. */
export interface Instance {
  id: string;
  app: string;
  service: string;
  /** Release number (v1 = 1) whose spec this instance runs. */
  release: number;
  /** Hash of everything that, changed, needs a new process (command, env, directory, port). */
  configHash: string;
  state: InstanceState;
  pid: number | null;
  /** The process's start time in clock ticks since boot (from /proc), so a recycled pid is never mistaken for it. */
  processStart: number | null;
  port: number | null;
  createdAt: number;
  /** When it became healthy, if it did. */
  healthyAt: number | null;
  endedAt: number | null;
  exitCode: number | null;
  exitSignal: string | null;
  /** Why it ended or why it is unhealthy: the last health-check result or the exit reason. */
  reason: string | null;
  /** The instance's output: JSON lines `{"t":<epoch ms>,"s":"out"|"err","l":"<text>"}`, secrets scrubbed. */
  logPath: string;
  runtime: RuntimeKind;
  /**
   * The proxy target group it is registered in, fixed for its life: a canary's new instances join their own group
   * so traffic moves between releases by weight. Absent: the service's first group, `<app>.<service>`.
   */
  targetGroup?: string;
}

/** Resource usage sampled by the instance's runtime (/proc, or the engine's stats). */
export interface InstanceUsage {
  cpuPercent: number;
  memoryBytes: number;
  sampledAt: number;
}
