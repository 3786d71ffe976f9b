// Rollout decisions from what the API reports: progress lines, completion, the circuit breaker, the deadline.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Deployment, V1Pod, V1ReplicaSet } from '@kubernetes/client-node';
import { podFailure, rolloutStatus } from './rollout-status.js';

const UID = 'd-1';

function deployment(status: V1Deployment['status'], generation = 2): V1Deployment {
  return {
    metadata: {
      name: 'ledger-web',
      uid: UID,
      generation,
      annotations: { 'deployment.kubernetes.io/revision': '2' },
    },
    spec: {
      replicas: 3,
      progressDeadlineSeconds: 10,
      selector: {},
      template: {},
    },
    status,
  };
}

function replicaSet(revision: string, hash: string): V1ReplicaSet {
  return {
    metadata: {
      name: `ledger-web-${hash}`,
      labels: { 'pod-template-hash': hash },
      annotations: { 'deployment.kubernetes.io/revision': revision },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'ledger-web', uid: UID }],
    },
    spec: { selector: {} },
  };
}

const replicaSets = [replicaSet('1', 'old'), replicaSet('2', 'new')];

function pod(name: string, hash: string, status: V1Pod['status']): V1Pod {
  return { metadata: { name, labels: { 'pod-template-hash': hash } }, status };
}

const ready: V1Pod['status'] = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] };
const notReady: V1Pod['status'] = { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }] };
function crashing(restarts: number): V1Pod['status'] {
  return {
    phase: 'Running',
    containerStatuses: [
      {
        name: 'web',
        image: 'x',
        imageID: '',
        ready: false,
        restartCount: restarts,
        state: { waiting: { reason: 'CrashLoopBackOff' } },
        lastState: { terminated: { exitCode: 1, reason: 'Error' } },
      },
    ],
  };
}

describe('rollout status', () => {
  it('counts ready pods of the new ReplicaSet only, as `web: 2/3 new ready`', () => {
    const status = rolloutStatus({
      service: 'web',
      deployment: deployment({
        observedGeneration: 2,
        replicas: 5,
        updatedReplicas: 2,
        availableReplicas: 3,
      }),
      replicaSets,
      pods: [
        pod('a', 'new', ready),
        pod('b', 'new', ready),
        pod('c', 'old', ready),
        pod('d', 'new', notReady),
      ],
      threshold: 3,
    });
    assert.deepEqual(status, {
      state: 'progressing',
      service: 'web',
      desired: 3,
      newReady: 2,
      text: 'web: 2/3 new ready',
    });
  });

  it('is progressing until the controller has observed the new generation, however good the old status looks', () => {
    const status = rolloutStatus({
      service: 'web',
      deployment: deployment({
        observedGeneration: 1,
        replicas: 3,
        updatedReplicas: 3,
        availableReplicas: 3,
      }),
      replicaSets,
      pods: [],
      threshold: 3,
    });
    assert.equal(status.state, 'progressing');
  });

  it('is complete when every pod is updated and available and the old ones are gone', () => {
    const status = rolloutStatus({
      service: 'web',
      deployment: deployment({
        observedGeneration: 2,
        replicas: 3,
        updatedReplicas: 3,
        availableReplicas: 3,
      }),
      replicaSets,
      pods: [],
      threshold: 3,
    });
    assert.equal(status.state, 'complete');
  });

  it('trips the circuit breaker on failed starts of crash-looping new pods, naming the last one', () => {
    const status = rolloutStatus({
      service: 'web',
      deployment: deployment({
        observedGeneration: 2,
        replicas: 4,
        updatedReplicas: 2,
        availableReplicas: 2,
      }),
      replicaSets,
      pods: [pod('a', 'new', crashing(1)), pod('b', 'new', crashing(2)), pod('c', 'old', crashing(9))],
      threshold: 3,
    });
    assert.equal(status.state, 'failed');
    assert.ok(status.state === 'failed');
    assert.equal(status.cause, 'circuit-breaker');
    assert.equal(status.failures, 3);
    assert.deepEqual(status.last, {
      pod: 'b',
      failure: 'exited with code 1 (restarted 2 times, CrashLoopBackOff)',
      crashed: true,
      failedStarts: 2,
    });
  });

  it('fails on ProgressDeadlineExceeded, naming a new pod that never became ready', () => {
    const status = rolloutStatus({
      service: 'web',
      deployment: deployment({
        observedGeneration: 2,
        replicas: 5,
        updatedReplicas: 2,
        availableReplicas: 3,
        conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' }],
      }),
      replicaSets,
      pods: [pod('a', 'new', notReady)],
      threshold: 3,
    });
    assert.ok(status.state === 'failed');
    assert.equal(status.cause, 'progress-deadline');
    assert.equal(status.text, 'web: no progress within 10s');
    assert.equal(status.last?.failure, 'never became ready (its readiness check kept failing)');
  });

  it('ignores a deadline condition from before the apply: a rollback onto an existing ReplicaSet inherits it', () => {
    const stale = deployment({
      observedGeneration: 2,
      replicas: 6,
      updatedReplicas: 3,
      availableReplicas: 3,
      conditions: [
        {
          type: 'Progressing',
          status: 'False',
          reason: 'ProgressDeadlineExceeded',
          lastUpdateTime: new Date('2026-01-01T00:00:10Z'),
        },
      ],
    });
    const observe = (applied: string) =>
      rolloutStatus({
        service: 'web',
        deployment: stale,
        appliedAt: Date.parse(applied),
        replicaSets,
        pods: [],
        threshold: 3,
      }).state;
    assert.equal(
      observe('2026-01-01T00:00:10Z'),
      'progressing',
      'timed out in the second of the apply: the old one',
    );
    assert.equal(observe('2026-01-01T00:00:04Z'), 'failed');
  });

  it('describes image pull failures and out-of-memory kills in local words', () => {
    assert.equal(
      podFailure(
        pod('a', 'new', {
          containerStatuses: [
            {
              name: 'web',
              image: 'x',
              imageID: '',
              ready: false,
              restartCount: 0,
              state: { waiting: { reason: 'ImagePullBackOff', message: 'not found' } },
            },
          ],
        }),
      )?.failure,
      'could not start: ImagePullBackOff (not found)',
    );
    const oom = crashing(1);
    oom!.containerStatuses![0]!.lastState = { terminated: { exitCode: 137, reason: 'OOMKilled' } };
    assert.equal(
      podFailure(pod('a', 'new', oom))?.failure,
      'exited with code 137, out of memory (restarted 1 time, CrashLoopBackOff)',
    );
    assert.equal(podFailure(pod('a', 'new', ready)), undefined);
  });
});
