// Where a Deployment's rollout stands, from what the API reports (the Deployment's status and conditions, its
// ReplicaSets, the new pods): progressing, complete, or failed with the reason. Pure: no I/O, no clock.
import type { V1Deployment, V1Pod, V1ReplicaSet } from '@kubernetes/client-node';

/** The revision the Deployment controller stamps on a Deployment and on the ReplicaSet that is its current one. */
const REVISION = 'deployment.kubernetes.io/revision';

/** Container states that never end by themselves: a pod in one is a failed start. */
const STUCK_WAITING = new Set([
  'CrashLoopBackOff',
  'ImagePullBackOff',
  'ErrImagePull',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
]);

/** A new pod that failed to start: crashed, crash-looping, or unable to start its container. */
export interface FailedPod {
  pod: string;
  /** In the words of a local instance's failure: `exited with code 1 (restarted 3 times, CrashLoopBackOff)`. */
  failure: string;
  /** Its container crashed: its last output is in the previous container's log. */
  crashed: boolean;
  /**
   * Failed starts it counts for: a crash-looping pod is restarted in place, not replaced, so each restart is one
   * failed start, as each replaced instance is locally.
   */
  failedStarts: number;
}

export type RolloutStatus =
  | { state: 'progressing'; service: string; desired: number; newReady: number; text: string }
  | { state: 'complete'; service: string; desired: number; text: string }
  | {
      state: 'failed';
      service: string;
      /** `circuit-breaker`: enough new pods failed; `progress-deadline`: the controller gave up waiting. */
      cause: 'circuit-breaker' | 'progress-deadline';
      failures: number;
      threshold: number;
      /** The last failed new pod, or (progress deadline) a new pod that is not ready. */
      last?: FailedPod;
      text: string;
    };

export interface RolloutObservation {
  service: string;
  deployment: V1Deployment;
  /** `appliedAt` of the apply whose rollout this is; without it every deadline condition counts. */
  appliedAt?: number;
  replicaSets: readonly V1ReplicaSet[];
  pods: readonly V1Pod[];
  /** New pods that may fail before the rollout fails (`circuitBreakerThreshold`, as locally). */
  threshold: number;
}

/**
 * When Berth last applied the Deployment, by the server's clock (its managed-fields entry). A Deployment keeps a
 * `ProgressDeadlineExceeded` condition until the controller sees progress, so after a rollback onto an existing
 * ReplicaSet the failed rollout's condition is still there: only one updated after this apply counts.
 */
export function appliedAt(deployment: V1Deployment, manager: string): number | undefined {
  const entry = (deployment.metadata?.managedFields ?? []).find(
    (f) => f.manager === manager && f.operation === 'Apply',
  );
  return entry?.time === undefined ? undefined : new Date(entry.time).getTime();
}

/** How a pod failed to start, or undefined when it has not (yet). */
export function podFailure(pod: V1Pod): FailedPod | undefined {
  const name = pod.metadata?.name ?? '?';
  if (pod.status?.phase === 'Failed') {
    return {
      pod: name,
      failure: `failed (${pod.status.reason ?? 'phase Failed'})`,
      crashed: true,
      failedStarts: 1,
    };
  }
  for (const container of pod.status?.containerStatuses ?? []) {
    const waiting = container.state?.waiting;
    const last = container.lastState?.terminated;
    const restarts = container.restartCount ?? 0;
    if (restarts > 0 && last !== undefined) {
      const how = last.signal ? `was killed by signal ${last.signal}` : `exited with code ${last.exitCode}`;
      const why = last.reason === 'OOMKilled' ? ', out of memory' : '';
      const state = waiting?.reason ? `, ${waiting.reason}` : '';
      return {
        pod: name,
        failure: `${how}${why} (restarted ${restarts} time${restarts === 1 ? '' : 's'}${state})`,
        crashed: true,
        failedStarts: restarts,
      };
    }
    if (waiting?.reason !== undefined && STUCK_WAITING.has(waiting.reason)) {
      return {
        pod: name,
        failure: `could not start: ${waiting.reason}${waiting.message ? ` (${waiting.message})` : ''}`,
        crashed: waiting.reason === 'CrashLoopBackOff',
        failedStarts: 1,
      };
    }
  }
  return undefined;
}

function isReady(pod: V1Pod): boolean {
  return (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** The ReplicaSet of the Deployment's current revision, once the controller has made it. */
export function newReplicaSet(
  deployment: V1Deployment,
  replicaSets: readonly V1ReplicaSet[],
): V1ReplicaSet | undefined {
  const revision = deployment.metadata?.annotations?.[REVISION];
  if (revision === undefined) return undefined;
  return replicaSets.find(
    (rs) =>
      rs.metadata?.annotations?.[REVISION] === revision &&
      (rs.metadata.ownerReferences ?? []).some((o) => o.uid === deployment.metadata?.uid),
  );
}

/** Where the rollout of one service's Deployment stands. */
export function rolloutStatus(observation: RolloutObservation): RolloutStatus {
  const { service, deployment, threshold } = observation;
  const desired = deployment.spec?.replicas ?? 1;
  const status = deployment.status ?? {};
  const observed = (status.observedGeneration ?? 0) >= (deployment.metadata?.generation ?? 1);
  const rs = observed ? newReplicaSet(deployment, observation.replicaSets) : undefined;
  const hash = rs?.metadata?.labels?.['pod-template-hash'];
  const newPods =
    hash === undefined
      ? []
      : observation.pods.filter(
          (p) =>
            p.metadata?.labels?.['pod-template-hash'] === hash && p.metadata?.deletionTimestamp === undefined,
        );
  const failed = newPods.map(podFailure).filter((f): f is FailedPod => f !== undefined);
  const failures = failed.reduce((sum, f) => sum + f.failedStarts, 0);
  if (failed.length > 0 && failures >= threshold) {
    return {
      state: 'failed',
      service,
      cause: 'circuit-breaker',
      failures,
      threshold,
      last: failed[failed.length - 1]!,
      text: `${service}: ${failures} failed starts of new pods`,
    };
  }
  const progressing = (status.conditions ?? []).find((c) => c.type === 'Progressing');
  // Timestamps have whole seconds: the condition of a rollout that timed out in the second of this apply is the old one.
  const updated =
    progressing?.lastUpdateTime === undefined ? undefined : new Date(progressing.lastUpdateTime).getTime();
  const current =
    observation.appliedAt === undefined || (updated !== undefined && updated > observation.appliedAt);
  if (
    observed &&
    current &&
    progressing?.status === 'False' &&
    progressing.reason === 'ProgressDeadlineExceeded'
  ) {
    const stuck = failed[failed.length - 1] ?? notReady(newPods);
    return {
      state: 'failed',
      service,
      cause: 'progress-deadline',
      failures,
      threshold,
      ...(stuck === undefined ? {} : { last: stuck }),
      text: `${service}: no progress within ${deployment.spec?.progressDeadlineSeconds ?? 600}s`,
    };
  }
  const newReady = newPods.filter(isReady).length;
  const complete =
    observed &&
    (status.updatedReplicas ?? 0) === desired &&
    (status.replicas ?? 0) === desired &&
    (status.availableReplicas ?? 0) >= desired;
  if (complete)
    return { state: 'complete', service, desired, text: `${service}: ${desired}/${desired} ready` };
  return {
    state: 'progressing',
    service,
    desired,
    newReady,
    text: `${service}: ${newReady}/${desired} new ready`,
  };
}

function notReady(pods: readonly V1Pod[]): FailedPod | undefined {
  const pod = pods.find((p) => !isReady(p));
  if (pod === undefined) return undefined;
  const phase = pod.status?.phase ?? 'Pending';
  return {
    pod: pod.metadata?.name ?? '?',
    failure:
      phase === 'Running' ? 'never became ready (its readiness check kept failing)' : `stayed ${phase}`,
    crashed: false,
    failedStarts: 0,
  };
}
