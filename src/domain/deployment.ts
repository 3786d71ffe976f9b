// Deployments: moving an app's services from one release to another, and how that ended.

import type { CanaryAnalysisSpec } from './spec.js';
import { stateMachine } from './state-machine.js';

/**
 * `in_progress` until every changed service runs the new release healthy, or the circuit breaker trips. A canary
 * deployment starts in `canary`: the new release runs beside the old one and gets the current step's share of
 * requests; past its last step it becomes `in_progress` (the old instances drain as in a rolling deploy).
 */
export type DeploymentState = 'canary' | 'in_progress' | 'succeeded' | 'failed' | 'rolled_back';

/**
 * A deployment ends once: it succeeds, or fails (rolled back to the previous release when it can be). A canary is
 * promoted past its last step (→ `in_progress`) or aborted (→ `rolled_back`: all traffic back to the old release).
 */
export const DEPLOYMENT_STATES = stateMachine<DeploymentState>('deployment', {
  canary: ['in_progress', 'failed', 'rolled_back'],
  in_progress: ['succeeded', 'failed', 'rolled_back'],
  succeeded: [],
  failed: [],
  rolled_back: [],
});

/** States of a deployment that has not ended (at most one per app). */
export const ACTIVE_DEPLOYMENT_STATES: readonly DeploymentState[] = ['canary', 'in_progress'];

/** How a deployment moves traffic: by replacing instances, or by weight between two target groups. */
export type DeploymentStrategy = 'rolling' | 'canary';

/** Counters of one target at a moment, for the difference over an analysis window. */
export interface CounterSnapshot {
  requests: number;
  errors5xx: number;
  gateway: number;
  /** Latency histogram by the proxy's bucket index (sparse: bucket → count). */
  latency: Record<number, number>;
}

/** One release's numbers over an analysis window. */
export interface ReleaseWindow {
  release: number;
  requests: number;
  /** Its 5xx responses, the proxy's 502-504 for it included. */
  errors5xx: number;
  /** 502-504 the proxy answered for it (connection refused, reset, timeout). */
  gateway: number;
  /** % of requests. */
  errorRatePercent: number;
  p95Ms: number | null;
  p99Ms: number | null;
}

/** What the analysis decided after a window, with the numbers it was based on. */
export interface CanaryDecision {
  verdict: 'promote' | 'hold' | 'abort';
  /** One line per check: what was compared with what. */
  reasons: string[];
  canary: ReleaseWindow;
  baseline: ReleaseWindow;
  /** The step's weight the window ran at. */
  weight: number;
  at: number;
  /** `analysis` or the user who acted (`--promote`, `--abort`). */
  by: string;
}

/** A canary's progress: data of the `canary` state (which step, since when), kept with the deployment row. */
export interface CanaryProgress {
  /** The services whose traffic shifts by weight (the deployment's others roll). */
  services: string[];
  steps: number[];
  intervalMs: number;
  analysis: CanaryAnalysisSpec;
  /** Index into `steps` of the current step. */
  step: number;
  /** When the current window started: null until the new release has its desired count healthy. */
  windowStartedAt: number | null;
  /** Per-target counters at the window's start (the proxy's own, from `GET /metrics`). */
  baseline: Record<string, CounterSnapshot>;
  /** Windows in a row that ended in a hold at this step. */
  holds: number;
  last: CanaryDecision | null;
}

/** The weight (%) the new release gets now: the current step's. */
export function canaryWeight(progress: CanaryProgress): number {
  return progress.steps[progress.step] ?? 100;
}

/** `deploy`: new code or spec; `rollback`: an earlier release deployed again (`berth rollback`). */
export type DeploymentKind = 'deploy' | 'rollback';

export interface DeploymentService {
  name: string;
  /** Failed new instances (crashed, never healthy, turned unhealthy) that trip the breaker. */
  threshold: number;
  failures: number;
}

export interface Deployment {
  id: number;
  app: string;
  kind: DeploymentKind;
  fromRelease: number | null;
  toRelease: number;
  state: DeploymentState;
  /** The services this deployment replaces instances of. */
  services: DeploymentService[];
  /** Why it failed: the failing instance's last output lines and the last health-check result. */
  reason: string | null;
  strategy: DeploymentStrategy;
  /** The canary's steps and analysis: set for a canary deployment, null for a rolling one. */
  canary: CanaryProgress | null;
  startedAt: number;
  endedAt: number | null;
}

/**
 * Failed new instances that stop a deployment: half the desired count, at least 3, at most 200 — the ECS
 * deployment circuit breaker's rule.
 */
export function circuitBreakerThreshold(desiredCount: number): number {
  return Math.min(200, Math.max(3, Math.ceil(desiredCount / 2)));
}

/** What tripped a service's circuit breaker: the count, and the last failed instance (a process or a pod). */
export interface CircuitBreakerTrip {
  service: string;
  failures: number;
  threshold: number;
  /** The last failed instance: an instance id, or a pod's name. */
  last: string;
  /** How it failed, e.g. `exited with code 1`, `never became ready within 4s`. */
  failure: string;
  /** Its last output lines (none when they could not be read). */
  output: readonly string[];
}

/**
 * The reason a deployment records when its circuit breaker trips: the same words for instances on this machine and
 * for pods on a Kubernetes target.
 */
export function circuitBreakerReason(trip: CircuitBreakerTrip): string {
  const output = trip.output.map((line) => `  ${line}`).join('\n');
  return (
    `${trip.service}: ${trip.failures} new instances failed, the circuit breaker trips at ${trip.threshold}; ` +
    `last: ${trip.last} ${trip.failure}${output ? `\nits last output:\n${output}` : ''}`
  );
}

/** `new: 412 req, 5xx 0.24%, p99 12ms; old: ...` for event messages. */
export function describeWindows(decision: Pick<CanaryDecision, 'canary' | 'baseline'>): string {
  const one = (w: ReleaseWindow): string =>
    `v${w.release} ${w.requests} req, 5xx ${Number(w.errorRatePercent.toFixed(2))}%, 502-504 ${w.gateway}, p95 ${w.p95Ms === null ? '-' : `${Number(w.p95Ms.toFixed(1))}ms`}, p99 ${w.p99Ms === null ? '-' : `${Number(w.p99Ms.toFixed(1))}ms`}`;
  return `new ${one(decision.canary)}; old ${one(decision.baseline)}`;
}
