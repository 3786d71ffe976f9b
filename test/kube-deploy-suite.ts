// Layer 3: Berth's Kubernetes deploys against a real kube-apiserver and kube-controller-manager (v1.20.2) on etcd:
// real server-side apply and validation, the real Deployment and ReplicaSet controllers. No kubelet: a stand-in
// writes pod status (Ready, not Ready, crash-looping) through the API, so containers, probes, Service networking and
// Ingress are not exercised here (docs/kubernetes.md, "What the tests prove"). Registered by test/kube.test.ts, which
// shares its cluster with test/kube-cli-suite.ts: this suite works in its own namespace.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KubeConfig, KubernetesObjectApi, PatchStrategy, type V1Deployment } from '@kubernetes/client-node';
import { KubeCluster } from '../src/control/kube/kube-cluster.js';
import { KubeDeployer, type KubeDeployOutcome, type KubeRelease } from '../src/control/kube/kube-deployer.js';
import { parseSpec } from '../src/domain/spec.js';
import { type KubeServer, StandInKubelet } from './kube-server.js';

const digest = (c: string): string => `sha256:${c.repeat(64)}`;
const GOOD_1 = digest('a');
const GOOD_2 = digest('b');
const NEVER_READY = digest('c');
const CRASHES = digest('d');

/** This suite's namespace: the CLI suite deploys an app of the same name in `default` of the same cluster. */
const NAMESPACE = 'deploys';

/**
 * The progress deadline of web: 6 s where every step of a rollout must fit in it, 3 s where the pods never become
 * ready and the deadline is what the test waits out. Sound for the reason's `last: <pod> never became ready`: the
 * controller's last progress is the new pod counted in its ReplicaSet, so the pod exists before the deadline starts,
 * and more than 2 s (3 s from a whole-second timestamp) are left for the stand-in kubelet, which marks it Running and
 * not ready on the pod's watch event, a round trip later.
 */
function deadline(image: string): string {
  return image === NEVER_READY ? '3s' : '6s';
}

function ledgerYaml(webImage: string, withWorker: boolean): string {
  return `
app: ledger
runtime: docker
routes:
  - host: ledger.example.com
    service: web
services:
  web:
    image: registry.example.com/ledger/web@${webImage}
    run: node server.js
    port: 3000
    instances: 3
    health: { path: /health, interval: 2s, timeout: 1s }
    deploy: { progressDeadline: ${deadline(webImage)}, drain: 1s, stopTimeout: 1s }
    resources: { cpu: 0.25, memory: 128Mi }
    secrets: [DATABASE_URL]
  api:
    image: registry.example.com/ledger/api@${GOOD_1}
    port: 4000
    autoscale: { min: 1, max: 3, cpu: 70 }
    deploy: { progressDeadline: 6s }
${
  withWorker
    ? `  worker:
    image: registry.example.com/ledger/worker@${GOOD_1}
    run: node worker.js
    deploy: { progressDeadline: 6s }
`
    : ''
}`;
}

function release(
  number: number,
  webImage: string,
  options: Partial<KubeRelease> & { worker?: boolean } = {},
): KubeRelease {
  const { worker = false, ...rest } = options;
  return {
    spec: parseSpec(ledgerYaml(webImage, worker), { file: 'berth.yaml' }),
    release: number,
    configVars: { LOG_LEVEL: 'info' },
    secretVersions: { DATABASE_URL: 1 },
    secretValues: { DATABASE_URL: 'postgres://ledger:one@db/ledger' },
    ...rest,
  };
}

/** The suite, on the cluster `kube` gives (started once for every suite of the file). */
export function kubeDeploySuite(kube: () => Promise<KubeServer>): void {
  describe('Kubernetes deploys against a real API server', { concurrency: false }, () => {
    let server: KubeServer;
    let kubelet: StandInKubelet;
    let cluster: KubeCluster;
    let objects: KubernetesObjectApi;
    const progress: string[] = [];
    let deployer: KubeDeployer;

    before(async () => {
      server = await kube();
      await server.core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
      kubelet = new StandInKubelet(server, NAMESPACE, (pod) => {
        const image = pod.spec?.containers[0]?.image ?? '';
        if (image.endsWith(NEVER_READY)) return 'not-ready';
        if (image.endsWith(CRASHES)) return 'crash-loop';
        return 'ready';
      });
      cluster = new KubeCluster({ kubeconfig: server.kubeconfig, context: 'test', namespace: NAMESPACE });
      deployer = new KubeDeployer(cluster, {
        // Each read is 3 API calls per service: at 500 ms a rollout's end is seen a little later than at 200, which
        // costs this suite no time, as the CLI suite beside it takes longer, and both processes less CPU.
        pollMs: 500,
        target: 'test',
        onProgress: (line) => progress.push(line),
      });
      const config = new KubeConfig();
      config.loadFromFile(server.kubeconfig);
      objects = KubernetesObjectApi.makeApiClient(config);
    });

    after(async () => {
      await kubelet?.stop();
    });

    async function web(): Promise<V1Deployment> {
      const deployment = await cluster.deployment('ledger-web');
      assert.ok(deployment, 'Deployment ledger-web');
      return deployment;
    }

    function expectOutcome<O extends KubeDeployOutcome['outcome']>(
      result: KubeDeployOutcome,
      outcome: O,
    ): Extract<KubeDeployOutcome, { outcome: O }> {
      assert.equal(result.outcome, outcome, `${JSON.stringify(result)}\n${server.logs()}`);
      return result as Extract<KubeDeployOutcome, { outcome: O }>;
    }

    const v1 = release(1, GOOD_1, { worker: true });
    const v2 = release(2, GOOD_2);

    it('deploys v1: every object accepted by the server, labelled, the Secret holding the value', async () => {
      expectOutcome(await deployer.deploy(v1), 'succeeded');
      const deployment = await web();
      assert.equal(deployment.spec?.replicas, 3);
      assert.equal(deployment.status?.availableReplicas, 3);
      assert.equal(
        deployment.spec?.template.spec?.containers[0]?.image,
        `registry.example.com/ledger/web@${GOOD_1}`,
      );
      assert.equal(deployment.metadata?.annotations?.['berth.dev/release'], 'v1');
      const managers = (deployment.metadata?.managedFields ?? []).map((f) => `${f.manager}/${f.operation}`);
      assert.ok(managers.includes('berth/Apply'), managers.join(' '));
      const secret = await server.core.readNamespacedSecret({ name: 'ledger-secrets', namespace: NAMESPACE });
      assert.equal(
        Buffer.from(secret.data?.['DATABASE_URL'] ?? '', 'base64').toString(),
        'postgres://ledger:one@db/ledger',
      );
      for (const [apiVersion, kind, name] of [
        ['networking.k8s.io/v1', 'Ingress', 'ledger'],
        ['autoscaling/v2beta2', 'HorizontalPodAutoscaler', 'ledger-api'],
        ['policy/v1beta1', 'PodDisruptionBudget', 'ledger-web'],
        ['v1', 'Service', 'ledger-web'],
        ['apps/v1', 'Deployment', 'ledger-worker'],
      ] as const) {
        const object = await objects.read({ apiVersion, kind, metadata: { name, namespace: NAMESPACE } });
        assert.equal(object.metadata?.labels?.['app.kubernetes.io/managed-by'], 'berth', `${kind} ${name}`);
        assert.equal(object.metadata?.annotations?.['berth.dev/release'], 'v1', `${kind} ${name}`);
      }
      assert.ok(progress.includes('web: 3/3 ready'), progress.join('\n'));
    });

    it('reports a field another manager took, naming the field and the manager, and changes nothing', async () => {
      await objects.patch(
        {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: 'ledger-web', namespace: NAMESPACE },
          spec: { replicas: 4 },
        },
        undefined,
        undefined,
        'kubectl-edit',
        true,
        PatchStrategy.ServerSideApply,
      );
      await assert.rejects(deployer.deploy(v1), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'conflict');
        assert.match(error.message, /Deployment ledger-web: \.spec\.replicas is managed by kubectl-edit/);
        return true;
      });
      assert.equal((await web()).spec?.replicas, 4);
      // The other manager lets go of the field (an apply without it); Berth's next apply sets it again.
      await objects.patch(
        { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'ledger-web', namespace: NAMESPACE } },
        undefined,
        undefined,
        'kubectl-edit',
        true,
        PatchStrategy.ServerSideApply,
      );
    });

    it('rolls v2 out through a new ReplicaSet and prunes the service v2 no longer names', async () => {
      progress.length = 0;
      const result = expectOutcome(await deployer.deploy(v2, v1), 'succeeded');
      assert.deepEqual(
        result.pruned.objects.map((o) => `${o.kind} ${o.name}`),
        ['Deployment ledger-worker', 'PodDisruptionBudget ledger-worker'],
      );
      assert.equal(await cluster.deployment('ledger-worker'), undefined);
      const deployment = await web();
      assert.equal(deployment.spec?.replicas, 3);
      assert.equal(deployment.status?.updatedReplicas, 3);
      assert.equal(
        deployment.spec?.template.spec?.containers[0]?.image,
        `registry.example.com/ledger/web@${GOOD_2}`,
      );
      const sets = await cluster.replicaSets('app.kubernetes.io/component=web');
      const byImage = new Map(
        sets.map((rs) => [rs.spec?.template?.spec?.containers[0]?.image, rs.status?.replicas ?? 0]),
      );
      assert.equal(byImage.get(`registry.example.com/ledger/web@${GOOD_2}`), 3);
      assert.equal(byImage.get(`registry.example.com/ledger/web@${GOOD_1}`), 0);
      assert.ok(
        progress.some((line) => /^web: [0-3]\/3 new ready$/.test(line)),
        progress.join('\n'),
      );
    });

    it('rolls v3, whose pods never become ready, back to v2 by itself with the reason', async () => {
      progress.length = 0;
      const result = expectOutcome(await deployer.deploy(release(3, NEVER_READY), v2), 'rolled_back');
      assert.equal(result.restored, 2);
      assert.match(result.reason, /^web: no progress within 3s; last: ledger-web-\S+ never became ready/);
      const deployment = await web();
      assert.equal(
        deployment.spec?.template.spec?.containers[0]?.image,
        `registry.example.com/ledger/web@${GOOD_2}`,
      );
      assert.equal(deployment.metadata?.annotations?.['berth.dev/release'], 'v2');
      assert.equal(deployment.status?.availableReplicas, 3);
      assert.equal(deployment.status?.replicas, 3, 'the pods of v3 are gone');
      assert.ok(
        progress.some((line) => line.startsWith('rolling back to v2: ')),
        progress.join('\n'),
      );
    });

    it('rolls a crash-looping release back on the circuit breaker, in the local words', async () => {
      const result = expectOutcome(await deployer.deploy(release(4, CRASHES), v2), 'rolled_back');
      assert.match(
        result.reason,
        /^web: \d+ new instances failed, the circuit breaker trips at 3; last: ledger-web-\S+ exited with code 1 \(restarted 3 times, CrashLoopBackOff\)/,
      );
      assert.equal(
        (await web()).spec?.template.spec?.containers[0]?.image,
        `registry.example.com/ledger/web@${GOOD_2}`,
      );
    });

    const v5 = release(5, GOOD_1, { worker: true });

    it('rolls back to v1 on request (as release v5), scales, and rolls on a secret change', async () => {
      expectOutcome(await deployer.deploy(v5, v2), 'succeeded');
      let deployment = await web();
      assert.equal(
        deployment.spec?.template.spec?.containers[0]?.image,
        `registry.example.com/ledger/web@${GOOD_1}`,
      );
      assert.equal(deployment.metadata?.annotations?.['berth.dev/release'], 'v5');
      assert.ok(await cluster.deployment('ledger-worker'), 'the worker is back');

      const setsBefore = (await cluster.replicaSets('app.kubernetes.io/component=web')).length;
      expectOutcome(await deployer.deploy({ ...v5, scale: { web: 5 } }, v5), 'succeeded');
      deployment = await web();
      assert.equal(deployment.spec?.replicas, 5);
      assert.equal(deployment.status?.availableReplicas, 5);
      assert.equal(
        (await cluster.replicaSets('app.kubernetes.io/component=web')).length,
        setsBefore,
        'scaling makes no new ReplicaSet',
      );

      const rotated: KubeRelease = {
        ...v5,
        release: 6,
        scale: { web: 5 },
        secretVersions: { DATABASE_URL: 2 },
        secretValues: { DATABASE_URL: 'postgres://ledger:two@db/ledger' },
      };
      expectOutcome(await deployer.deploy(rotated, v5), 'succeeded');
      deployment = await web();
      assert.equal(
        deployment.spec?.template.metadata?.annotations?.['berth.dev/secret-versions'],
        'DATABASE_URL=2',
      );
      assert.equal(deployment.status?.updatedReplicas, 5);
      assert.equal((await cluster.replicaSets('app.kubernetes.io/component=web')).length, setsBefore + 1);
      const secret = await server.core.readNamespacedSecret({ name: 'ledger-secrets', namespace: NAMESPACE });
      assert.equal(
        Buffer.from(secret.data?.['DATABASE_URL'] ?? '', 'base64').toString(),
        'postgres://ledger:two@db/ledger',
      );
      // The worker's template did not change: its pods stay those of v5.
      const worker = await cluster.deployment('ledger-worker');
      assert.equal(worker?.spec?.template.metadata?.annotations?.['berth.dev/release'], 'v5');
      assert.equal(worker?.metadata?.annotations?.['berth.dev/release'], 'v6');
    });
  });
}
