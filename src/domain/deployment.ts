// Deployments: moving an app's services from one release to another, and how that ended.
import { stateMachine } from './state-machine.js';

/** `in_progress` until every changed service runs the new release healthy, or the circuit breaker trips. */
export type DeploymentState = 'in_progress' | 'succeeded' | 'failed' | 'rolled_back';

/** A deployment ends once: it succeeds, or fails (rolled back to the previous release when it can be). */
export const DEPLOYMENT_STATES = stateMachine<DeploymentState>('deployment', {
  in_progress: ['succeeded', 'failed', 'rolled_back'],
  succeeded: [],
  failed: [],
  rolled_back: [],
});

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
