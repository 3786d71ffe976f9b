// Layer 2: the cluster client's decisions (apply, conflicts, prune, rollout watch, rollback) against the small
// in-process API of test/fakes/fake-kube-api.ts, whose pods do what each test scripts. Fast, no binaries.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { FakeKubeApi } from '../../../test/fakes/fake-kube-api.js';
import { BerthError } from '../../domain/errors.js';
import { parseSpec } from '../../domain/spec.js';
import { KubeCluster } from './kube-cluster.js';
import { KubeDeployer, type KubeRelease } from './kube-deployer.js';
import { appSelector } from './kube-manifests.js';

const GOOD = `sha256:${'a'.repeat(64)}`;
const NEXT = `sha256:${'b'.repeat(64)}`;
const BAD = `sha256:${'c'.repeat(64)}`;

function release(version: number, image: string, extra = ''): KubeRelease {
  const spec = parseSpec(
    `
app: ledger
runtime: docker
services:
  web:
    image: registry.example.com/ledger/web@${image}
    port: 3000
    instances: 3
    health: { path: /health }
    secrets: [DATABASE_URL]
${extra}`,
    { file: 'berth.yaml' },
  );
  return {
    spec,
    release: version,
    configVars: {},
    secretVersions: { DATABASE_URL: 1 },
    secretValues: { DATABASE_URL: 'postgres://one' },
  };
}

describe('the Kubernetes client against a fake API', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-kube-fake-'));
  let api: FakeKubeApi;
  let cluster: KubeCluster;
  let lines: string[];
  let deployer: KubeDeployer;

  after(() => rmSync(dir, { recursive: true, force: true }));

  beforeEach(async () => {
    api = new FakeKubeApi();
    await api.start();
    cluster = new KubeCluster({ kubeconfig: api.kubeconfig(dir) });
    lines = [];
    deployer = new KubeDeployer(cluster, {
      pollMs: 1,
      onProgress: (line) => lines.push(line),
      target: 'fake',
    });
  });
  afterEach(() => api.stop());

  const image = (): string | undefined =>
    api.get('apps/v1', 'Deployment', 'ledger-web')?.['spec']['template']['spec']['containers'][0]['image'];

  it('applies every object server-side as field manager berth, without force, after a dry run of all of them', async () => {
    const outcome = await deployer.deploy(release(1, GOOD));
    assert.equal(outcome.outcome, 'succeeded');
    const patches = api.requests.filter((r) => r.method === 'PATCH');
    const dry = patches.filter((r) => r.query.get('dryRun') === 'All');
    const real = patches.filter((r) => !r.query.has('dryRun'));
    assert.ok(dry.length > 0);
    assert.equal(dry.length, real.length, 'each object once dry, once for real');
    assert.ok(
      patches.indexOf(real[0]!) > patches.indexOf(dry.at(-1)!),
      'nothing stored before every dry run passed',
    );
    for (const patch of patches) {
      assert.equal(patch.contentType, 'application/apply-patch+yaml');
      assert.equal(patch.query.get('fieldManager'), 'berth');
      assert.notEqual(patch.query.get('force'), 'true');
    }
    assert.deepEqual(api.applied().sort(), [
      'Deployment/ledger-web',
      'PodDisruptionBudget/ledger-web',
      'Secret/ledger-secrets',
      'Service/ledger-web',
    ]);
    assert.equal(image(), `registry.example.com/ledger/web@${GOOD}`);
  });

  it('reports a conflict with the field and the other manager, and stores nothing', async () => {
    api.conflicts.push({
      kind: 'Deployment',
      name: 'ledger-web',
      field: '.spec.replicas',
      manager: 'kubectl-edit',
    });
    await assert.rejects(deployer.deploy(release(1, GOOD)), (error: BerthError) => {
      assert.ok(error instanceof BerthError);
      assert.equal(error.code, 'conflict');
      assert.match(
        error.message,
        /^Deployment ledger-web: \.spec\.replicas is managed by kubectl-edit; Berth does not take fields over/,
      );
      assert.deepEqual(error.issues, [
        { path: 'Deployment ledger-web .spec.replicas', message: 'also managed by kubectl-edit' },
      ]);
      return true;
    });
    assert.deepEqual(api.applied(), [], 'the dry run caught it: no object was stored');
  });

  it('shows progress as the new pods become ready, like a local deploy', async () => {
    await deployer.deploy(release(1, GOOD));
    assert.deepEqual(lines, [
      'web: 0/3 new ready',
      'web: 1/3 new ready',
      'web: 2/3 new ready',
      'web: 3/3 ready',
    ]);
  });

  it('prunes what the spec no longer names, by label, after listing it in a dry run; other apps stay', async () => {
    const labels = { 'app.kubernetes.io/managed-by': 'berth', 'app.kubernetes.io/part-of': 'ledger' };
    api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'ledger-worker', labels } });
    api.put({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'ledger-worker', labels },
      spec: {},
    });
    api.put({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'shop-web', labels: { ...labels, 'app.kubernetes.io/part-of': 'shop' } },
    });
    api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'hand-made', labels: {} } });
    const outcome = await deployer.deploy(release(1, GOOD));
    assert.equal(outcome.outcome, 'succeeded');
    assert.ok(outcome.outcome === 'succeeded');
    assert.deepEqual(outcome.pruned, {
      dryRun: false,
      objects: [
        { apiVersion: 'v1', kind: 'Service', name: 'ledger-worker' },
        { apiVersion: 'apps/v1', kind: 'Deployment', name: 'ledger-worker' },
      ],
    });
    assert.equal(api.get('v1', 'Service', 'ledger-worker'), undefined);
    assert.equal(api.get('apps/v1', 'Deployment', 'ledger-worker'), undefined);
    assert.ok(api.get('v1', 'Service', 'shop-web'), "another app's objects stay");
    assert.ok(api.get('v1', 'Service', 'hand-made'), 'objects Berth did not label stay');
    assert.ok(api.get('apps/v1', 'Deployment', 'ledger-web'));
    // Every list that prune made asked for Berth's label of this app; the deletes came after the listing.
    const lists = api.requests.filter(
      (r) => r.method === 'GET' && r.query.get('labelSelector') === appSelector('ledger'),
    );
    assert.ok(lists.length >= 12, 'each kind listed in the dry run and again before deleting');
    const deletes = api.requests.filter((r) => r.method === 'DELETE');
    assert.deepEqual(
      deletes.map((r) => r.path),
      [
        '/api/v1/namespaces/default/services/ledger-worker',
        '/apis/apps/v1/namespaces/default/deployments/ledger-worker',
      ],
    );
    assert.ok(api.requests.indexOf(deletes[0]!) > api.requests.indexOf(lists[5]!));
  });

  it('the dry-run listing deletes nothing', async () => {
    const labels = { 'app.kubernetes.io/managed-by': 'berth', 'app.kubernetes.io/part-of': 'ledger' };
    api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'ledger-worker', labels } });
    const listed = await cluster.prune('ledger', [], { dryRun: true });
    assert.deepEqual(listed.objects, [{ apiVersion: 'v1', kind: 'Service', name: 'ledger-worker' }]);
    assert.ok(api.get('v1', 'Service', 'ledger-worker'));
    assert.equal(api.requests.filter((r) => r.method === 'DELETE').length, 0);
  });

  it("rolls back to the previous release's spec when the progress deadline passes, with the stuck pod named", async () => {
    assert.equal((await deployer.deploy(release(1, GOOD))).outcome, 'succeeded');
    api.script = (img) => (img.endsWith(BAD) ? 'deadline' : 'ready');
    lines = [];
    const outcome = await deployer.deploy(release(2, BAD), release(1, GOOD));
    assert.equal(outcome.outcome, 'rolled_back');
    assert.ok(outcome.outcome === 'rolled_back');
    assert.equal(outcome.restored, 1);
    assert.match(outcome.reason, /^web: no progress within 600s; last: ledger-web-\S+ never became ready/);
    assert.equal(image(), `registry.example.com/ledger/web@${GOOD}`, "v1's spec applied again by Berth");
    assert.ok(
      lines.some((l) => /^rolling back to v1: web: no progress within 600s/.test(l)),
      lines.join('\n'),
    );
    // The rollback is an apply of v1's objects, not a rollout undo: the last Deployment apply names v1's image.
    const applies = api.requests.filter(
      (r) => r.method === 'PATCH' && !r.query.has('dryRun') && r.body?.['kind'] === 'Deployment',
    );
    assert.match(
      applies.at(-1)!.body!['spec']['template']['spec']['containers'][0]['image'],
      new RegExp(`${GOOD}$`),
    );
    assert.equal(api.requests.filter((r) => r.path.includes('/rollback')).length, 0);
    assert.equal(outcome.release, 2);
  });

  it("rolls back when the new pods crash-loop, with the circuit breaker's words and the crashed container's output", async () => {
    assert.equal((await deployer.deploy(release(1, GOOD))).outcome, 'succeeded');
    api.script = (img) => (img.endsWith(BAD) ? 'crash' : 'ready');
    api.podLogs = () => ({ current: ['starting'], previous: ['boot', 'Error: DATABASE_URL refused'] });
    const outcome = await deployer.deploy(release(2, BAD), release(1, GOOD));
    assert.ok(outcome.outcome === 'rolled_back', JSON.stringify(outcome));
    assert.match(
      outcome.reason,
      /^web: \d+ new instances failed, the circuit breaker trips at 3; last: ledger-web-\S+ exited with code 3 \(restarted \d+ times?, CrashLoopBackOff\)\nits last output:\n {2}boot\n {2}Error: DATABASE_URL refused$/,
    );
    const logRead = api.requests.find((r) => r.path.endsWith('/log'));
    assert.equal(
      logRead?.query.get('previous'),
      'true',
      "a crashed pod's output is its previous container's",
    );
    assert.equal(image(), `registry.example.com/ledger/web@${GOOD}`);
  });

  it('fails without a rollback when the service turns autoRollback off, or when there is no previous release', async () => {
    api.script = () => 'deadline';
    const first = await deployer.deploy(release(1, BAD));
    assert.equal(first.outcome, 'failed');
    api.script = (img) => (img.endsWith(BAD) ? 'deadline' : 'ready');
    const before = api.applied().length;
    const off = await deployer.deploy(
      release(2, BAD, '    deploy: { autoRollback: false }'),
      release(1, NEXT),
    );
    assert.equal(off.outcome, 'failed');
    assert.equal(api.applied().length - before, 4, "only the new release's 4 objects were applied");
    assert.equal(image(), `registry.example.com/ledger/web@${BAD}`);
  });

  it('keeps a service whose pod template is unchanged on the release that started its pods', async () => {
    await deployer.deploy(release(1, GOOD));
    await deployer.deploy(release(2, GOOD), release(1, GOOD));
    const deployment = api.get('apps/v1', 'Deployment', 'ledger-web')!;
    assert.equal(deployment['metadata']['annotations']['berth.dev/release'], 'v2');
    assert.equal(deployment['spec']['template']['metadata']['annotations']['berth.dev/release'], 'v1');
  });
});
