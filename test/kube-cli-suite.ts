// Layer 3 through the CLI: a real control plane deploying to a real kube-apiserver and kube-controller-manager
// (v1.20.2), in namespace `default`: targets, deploy --target, ps, releases, scale, a secret change, rollback and
// export, as users type them. Pod status comes from a stand-in kubelet (test/kube-server.ts): no container runs.
// Registered by test/kube.test.ts, which shares its cluster with test/kube-deploy-suite.ts.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KubeCluster } from '../src/control/kube/kube-cluster.js';
import type { ReleaseView } from '../src/domain/api-types.js';
import {
  type ControlPlaneProcess,
  followCli,
  proxyUnavailable,
  runCli,
  shutDown,
  startControlPlane,
  tempDir,
  waitFor,
  writeApp,
} from './control-harness.js';
import { type KubeServer, StandInKubelet } from './kube-server.js';

const GOOD = `sha256:${'a'.repeat(64)}`;
const NEVER_READY = `sha256:${'c'.repeat(64)}`;

/**
 * The progress deadline of a release: 6 s where every step of a rollout must fit in it, 3 s where the pods never
 * become ready and the deadline is what the test waits out. Sound for the reason's `last: <pod> never became ready`:
 * the controller's last progress is the new pod counted in its ReplicaSet, so the pod exists before the deadline
 * starts, and more than 2 s (3 s from a whole-second timestamp) are left for the stand-in kubelet, which marks it
 * Running and not ready on the pod's watch event, a round trip later.
 */
function deadline(image: string): string {
  return image === NEVER_READY ? '3s' : '6s';
}

function spec(image: string): string {
  return `
app: ledger
runtime: docker
routes:
  - host: ledger.example.com
    service: web
services:
  web:
    image: registry.example.com/ledger/web@${image}
    port: 3000
    instances: 2
    health: { path: /health }
    deploy: { progressDeadline: ${deadline(image)}, drain: 1s, stopTimeout: 1s }
    secrets: [DATABASE_URL]
`;
}

/** The suite, on the cluster `kube` gives (started once for every suite of the file). */
export function kubeCliSuite(kube: () => Promise<KubeServer>): void {
  describe('berth with a Kubernetes target', { skip: proxyUnavailable, concurrency: false }, () => {
    const dataDir = tempDir('berth-kube-cli-');
    let server: KubeServer;
    let kubelet: StandInKubelet;
    let plane: ControlPlaneProcess;
    let cluster: KubeCluster;
    let app: string;

    before(async () => {
      // Side by side: neither needs the other to start (the first test adds the target). Whichever started is kept
      // for after() to stop, should the other fail.
      const [started, control] = await Promise.allSettled([kube(), startControlPlane(dataDir)]);
      if (started.status === 'fulfilled') server = started.value;
      if (control.status === 'fulfilled') plane = control.value;
      for (const result of [started, control]) if (result.status === 'rejected') throw result.reason;
      kubelet = new StandInKubelet(server, 'default', (pod) =>
        (pod.spec?.containers[0]?.image ?? '').endsWith(NEVER_READY) ? 'not-ready' : 'ready',
      );
      cluster = new KubeCluster({ kubeconfig: server.kubeconfig });
      app = writeApp({ 'berth.yaml': spec(GOOD) });
    });

    after(async () => {
      await shutDown(plane, dataDir);
      await kubelet?.stop();
    });

    async function berth(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
      return runCli(dataDir, args, app);
    }

    async function image(): Promise<string | undefined> {
      return (await cluster.deployment('ledger-web'))?.spec?.template.spec?.containers[0]?.image;
    }

    it('adds a target once the cluster answers, and lists it', async () => {
      const added = await berth(
        'targets',
        'add',
        'test',
        '--kubeconfig',
        server.kubeconfig,
        '--context',
        'test',
      );
      assert.equal(added.code, 0, added.stderr);
      assert.match(added.stdout, /^target test: Kubernetes 1\.20, namespace default;/);
      const listed = await berth('targets', 'ls');
      assert.match(listed.stdout, /^test\s+\S+kubeconfig\s+test\s+default\s+1\.20\s/m);
      const wrong = await berth(
        'targets',
        'add',
        'bad',
        '--kubeconfig',
        server.kubeconfig,
        '--context',
        'nope',
      );
      assert.notEqual(wrong.code, 0);
      assert.match(wrong.stderr, /has no context nope \(it has: test\)/);
    });

    it('refuses an app of processes for a Kubernetes target, saying why', async () => {
      const processes = writeApp({
        'berth.yaml': 'app: hello\nservices:\n  web:\n    run: node server.js\n',
      });
      const result = await runCli(dataDir, ['deploy', '--target', 'test', processes], processes);
      assert.notEqual(result.code, 0);
      assert.match(
        result.stderr,
        /hello runs as processes on this machine \(runtime: process\); a Kubernetes target runs containers/,
      );
    });

    it("refuses images from this machine's registry for a cluster whose API server is not on loopback", async () => {
      // The same API server by this machine's name (which resolves to loopback here, but is not a loopback address,
      // so Berth takes the cluster for one elsewhere, as it would take any named server).
      const remote = join(tempDir('berth-kube-remote-'), 'kubeconfig');
      writeFileSync(
        remote,
        readFileSync(server.kubeconfig, 'utf8')
          .replace(/server: https:\/\/127\.0\.0\.1:/, `server: https://${hostname()}:`)
          .replace(/certificate-authority: .*/, 'insecure-skip-tls-verify: true'),
      );
      // Set-up and clean-up through the API: `berth targets add` and `rm` are what the first test checks.
      await plane.client.request('POST', '/v1/targets', {
        name: 'remote',
        kubeconfig: remote,
        context: 'test',
      });
      const local = writeApp({
        'berth.yaml': spec(GOOD)
          .replace('app: ledger', 'app: nearby')
          .replace('registry.example.com/ledger/web', '127.0.0.1:5000/berth/nearby/web'),
      });
      const refused = await runCli(dataDir, ['deploy', '--target', 'remote', '.'], local);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /nearby: target remote cannot pull its images/);
      assert.match(
        refused.stderr,
        /services\.web\.image.*web's image would come from 127\.0\.0\.1:5000, which the cluster's nodes cannot reach: set registry:/s,
      );
      await assert.rejects(plane.client.releases('nearby'), { code: 'not_found' }, 'no release was made');
      await plane.client.request('DELETE', '/v1/targets/remote');
    });

    it('deploys to the target, health-gated, and lists its pods as instances', async () => {
      await plane.client.request('POST', '/v1/apps/ledger/secrets', {
        values: { DATABASE_URL: 'postgres://one' },
      });
      const deployed = await berth('deploy', '--target', 'test', '.');
      assert.equal(deployed.code, 0, `${deployed.stdout}${deployed.stderr}\n${server.logs()}`);
      assert.match(deployed.stdout, /ledger: release v1/);
      assert.match(deployed.stdout, /v1 is live/);
      // The rollout's progress as the cluster reports it, like a local deploy's lines: its last line at least. Whether
      // an intermediate one (`web: 1/2 new ready`) shows depends on how fast the pods turn ready between two polls;
      // the sequence itself is asserted in src/control/kube/kube-deployer.test.ts, where the fake API scripts it.
      assert.match(deployed.stdout, /^ {2}web: 2\/2 ready\nv1 is live/m);
      assert.equal(await image(), `registry.example.com/ledger/web@${GOOD}`);
      const ps = await berth('ps', 'ledger');
      assert.equal(ps.code, 0, ps.stderr);
      const rows = ps.stdout.split('\n').filter((line) => line.startsWith('ledger-web-'));
      assert.equal(rows.length, 2, ps.stdout);
      for (const row of rows) assert.match(row, /^ledger-web-\S+\s+web\s+ready\s+v1\s+0\s/);
    });

    it('rolls a release whose pods never become ready back by itself, with the reason', async () => {
      writeFileSync(join(app, 'berth.yaml'), spec(NEVER_READY));
      const deployed = await berth('deploy', '--target', 'test', '.');
      assert.equal(deployed.code, 1, deployed.stdout);
      assert.match(
        deployed.stdout,
        /deployment rolled back to v1:\nweb: no progress within 3s; last: ledger-web-\S+ never became ready/,
      );
      assert.match(deployed.stdout, /^ {2}rolling back to v1: web: no progress within 3s/m);
      assert.equal(await image(), `registry.example.com/ledger/web@${GOOD}`);
      const releases = JSON.parse((await berth('releases', 'ledger', '--json')).stdout) as ReleaseView[];
      assert.deepEqual(
        releases.map((r) => [r.version, r.deployment?.state]),
        [
          [1, 'succeeded'],
          [2, 'rolled_back'],
        ],
      );
      writeFileSync(join(app, 'berth.yaml'), spec(GOOD));
    });

    it('scales on the cluster (followed live by events -f and logs -f), and a secret change rolls the Deployment as a new release', async () => {
      const follow = (args: string[]) => followCli(dataDir, args);
      const events = follow(['events', 'ledger', '-f', '-n', '1']);
      const logs = follow(['logs', 'ledger', '-f', '-n', '1']);
      try {
        await waitFor('the followers to start', () =>
          events.output() !== '' && logs.output() !== '' ? true : undefined,
        );
        const scaled = await berth('scale', 'ledger', 'web=3');
        assert.equal(scaled.code, 0, scaled.stderr);
        await waitFor(
          '3 ready pods of web',
          async () =>
            (await cluster.deployment('ledger-web'))?.status?.availableReplicas === 3 ? true : undefined,
          60_000,
          250,
        );
        // The cluster's event of this scale, as it is recorded (no kubelet runs here: pods have no log to follow).
        const scaledUp = /Deployment ledger-web: ScalingReplicaSet Scaled up replica set ledger-web-\S+ to 3/;
        await waitFor('the scale in events -f', () => (scaledUp.test(events.output()) ? true : undefined));
        assert.match(events.output(), /service\.scaled\s+admin\s+ledger on test: web=3/);
        assert.match(events.output(), new RegExp(`kubernetes\\s+cluster\\s+${scaledUp.source}`));
        await waitFor('the scale in logs -f', () => (scaledUp.test(logs.output()) ? true : undefined));
        assert.match(logs.output(), new RegExp(`kubernetes\\[event\\] ${scaledUp.source}`));
        assert.equal(events.output().match(new RegExp(scaledUp.source, 'g'))?.length, 1, 'shown once');
      } finally {
        for (const { child } of [events, logs]) {
          const exited = once(child, 'exit');
          child.kill('SIGINT');
          await exited;
        }
      }
      assert.equal((await berth('secrets', 'set', 'ledger', 'DATABASE_URL=postgres://two')).code, 0);
      // Polled through the API: what `berth releases` prints of it is asserted in the tests before and after.
      const releases = await waitFor(
        'the secret release to go live',
        async () => {
          const list = await plane.client.releases('ledger');
          return list.at(-1)?.version === 3 && list.at(-1)?.deployment?.state === 'succeeded'
            ? list
            : undefined;
        },
        60_000,
        250,
      );
      assert.match(releases.at(-1)!.description, /secret DATABASE_URL changed|DATABASE_URL/);
      const deployment = await cluster.deployment('ledger-web');
      assert.equal(deployment?.spec?.replicas, 3, 'the scaled count is kept');
      assert.equal(
        deployment?.spec?.template.metadata?.annotations?.['berth.dev/secret-versions'],
        'DATABASE_URL=2',
      );
      const secret = await server.core.readNamespacedSecret({ name: 'ledger-secrets', namespace: 'default' });
      assert.equal(Buffer.from(secret.data?.['DATABASE_URL'] ?? '', 'base64').toString(), 'postgres://two');
    });

    it('rolls back on request as a new release, and exports the manifests with secret references only', async () => {
      const rolled = await berth('rollback', 'ledger', 'v1');
      assert.equal(rolled.code, 0, rolled.stdout + rolled.stderr);
      assert.match(rolled.stdout, /ledger: release v4 \(rollback to v1\)/);
      // As on this machine, a rollback brings back the release's spec and image, and the secrets' current values:
      // v1 was made with DATABASE_URL=postgres://one, the value set since is what its pods get.
      const secret = await server.core.readNamespacedSecret({ name: 'ledger-secrets', namespace: 'default' });
      assert.equal(Buffer.from(secret.data?.['DATABASE_URL'] ?? '', 'base64').toString(), 'postgres://two');
      assert.equal(
        (await cluster.deployment('ledger-web'))?.metadata?.annotations?.['berth.dev/release'],
        'v4',
      );
      const exported = await berth('export', 'k8s', 'ledger', '--kube-version', '1.20');
      assert.equal(exported.code, 0, exported.stderr);
      assert.match(exported.stdout, /kind: Deployment/);
      assert.match(exported.stdout, /apiVersion: policy\/v1beta1\nkind: PodDisruptionBudget/);
      assert.match(exported.stdout, /secretKeyRef:\n\s+name: ledger-secrets/);
      assert.ok(!exported.stdout.includes('postgres://'), 'no secret value in the export');
      assert.ok(!exported.stdout.includes('kind: Secret'));
    });

    it("merges the cluster's events with Berth's in berth events and berth logs", async () => {
      const events = await berth('events', 'ledger', '-n', '200');
      assert.equal(events.code, 0, events.stderr);
      assert.match(
        events.stdout,
        /deployment\.rolled_back\s+deployer\s+ledger v2 rolled back to v1 on test: web: no progress/,
      );
      assert.match(
        events.stdout,
        /kubernetes\s+cluster\s+Deployment ledger-web: ScalingReplicaSet Scaled up replica set ledger-web-/,
      );
      const logs = await berth('logs', 'ledger', '-n', '500');
      assert.equal(logs.code, 0, logs.stderr);
      assert.match(logs.stdout, /kubernetes\[event\] Deployment ledger-web: ScalingReplicaSet/);
    });

    it('deploys a pipeline run to the target named by the pipeline, and fails the run when Berth rolls it back', async () => {
      const books = (image: string): string => `
app: books
runtime: docker
services:
  web:
    image: registry.example.com/books/web@${image}
    port: 3000
    instances: 2
    health: { path: /health }
    deploy: { progressDeadline: ${deadline(image)}, drain: 1s, stopTimeout: 1s }
pipeline:
  deploy: auto
  test: ["test -f berth.yaml"]
  target: test
`;
      const dir = writeApp({ 'berth.yaml': books(GOOD) });
      const good = await runCli(dataDir, ['pipeline', 'run', dir], dir);
      assert.equal(good.code, 0, `${good.stdout}${good.stderr}`);
      assert.match(good.stdout, /run 1 succeeded: v1 is live/);
      const deployment = await cluster.deployment('books-web');
      assert.equal(
        deployment?.spec?.template.spec?.containers[0]?.image,
        `registry.example.com/books/web@${GOOD}`,
      );
      assert.equal(deployment?.metadata?.annotations?.['berth.dev/release'], 'v1');
      assert.equal(deployment?.status?.availableReplicas, 2);

      writeFileSync(join(dir, 'berth.yaml'), books(NEVER_READY));
      const bad = await runCli(dataDir, ['pipeline', 'run', dir], dir);
      assert.notEqual(bad.code, 0, bad.stdout);
      assert.match(
        bad.stdout,
        /run 2 FAILED: deployment rolled back: web: no progress within 3s; last: books-web-\S+ never became ready/,
      );
      assert.equal(
        (await cluster.deployment('books-web'))?.spec?.template.spec?.containers[0]?.image,
        `registry.example.com/books/web@${GOOD}`,
        "Berth applied v1's spec again",
      );
      const releases = await plane.client.releases('books');
      assert.deepEqual(
        releases.map((r) => [r.version, r.spec.target, r.deployment?.state]),
        [
          [1, 'test', 'succeeded'],
          [2, 'test', 'rolled_back'],
        ],
      );
    });
  });
}
