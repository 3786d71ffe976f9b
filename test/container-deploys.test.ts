// Integration: a Node app built from its Dockerfile (on a local bookworm + node image), behind the real proxy,
// under load: a rolling deploy, the build cache and digests, a crashing release rolled back, and a rollback whose
// image was removed from this machine pulled back from the registry.
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { proxyPaths } from '../src/domain/proxy-paths.js';
import {
  type ControlPlaneProcess,
  FIXTURE_APP,
  runCli,
  shutDown,
  startControlPlane,
  tempDir,
  waitFor,
  writeApp,
} from './control-harness.js';
import {
  type EngineLease,
  ensureNodeImage,
  leaseDockerEngine,
  NODE_IMAGE,
  nodeImageSkipReason,
} from './docker-host.js';
import { LoadClient } from './load-client.js';

/** The fixture server in an image of its own; `revision` changes the code (and so the image). */
function nodeApp(env: Record<string, string>, revision = 1): string {
  const envText = Object.entries(env)
    .map(([k, v]) => `${k}: "${v}"`)
    .join(', ');
  const dir = writeApp({
    'berth.yaml': [
      'app: shop',
      'routes:',
      '  - host: shop.localhost',
      '    service: web',
      'services:',
      '  web:',
      '    instances: 2',
      '    health: { path: /health, interval: 250ms, timeout: 200ms, healthy: 1, unhealthy: 2, grace: 3s }',
      '    deploy: { drain: 5s, stopTimeout: 5s }',
      `    env: { ${envText} }`,
    ].join('\n'),
    Dockerfile: [
      `FROM ${NODE_IMAGE}`,
      'WORKDIR /app',
      'COPY package.json server.js /app/',
      'CMD ["node", "server.js"]',
      '',
    ].join('\n'),
    'package.json': JSON.stringify({ name: 'shop', type: 'module' }),
  });
  copyFileSync(join(FIXTURE_APP, 'server.js'), join(dir, 'server.js'));
  writeFileSync(
    join(dir, 'server.js'),
    `${readFileSync(join(dir, 'server.js'), 'utf8')}// revision ${revision}\n`,
  );
  return dir;
}

function greetingOf(body: string): string {
  return (JSON.parse(body) as { greeting: string }).greeting;
}

describe('containers built from a Dockerfile', { skip: nodeImageSkipReason() }, () => {
  const dataDir = tempDir('berth-container-deploys-');
  let lease: EngineLease;
  let plane: ControlPlaneProcess;
  let load: LoadClient;

  const converged = () =>
    waitFor(
      'the app to converge',
      async () => ((await plane.client.app('shop')).converged ? true : undefined),
      60_000,
    );
  const imageOf = async (version: number) =>
    (await plane.client.releases('shop')).find((r) => r.version === version)!.spec.services.web!.image!;

  before(async () => {
    lease = await leaseDockerEngine();
    await ensureNodeImage(lease.engine);
    plane = await startControlPlane(dataDir);
    load = new LoadClient(plane.proxyPorts.https, 'shop.localhost', proxyPaths(dataDir).caCert);
    const first = await runCli(dataDir, ['deploy', nodeApp({ GREETING: 'one' })]);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.match(first.stdout, /docker build -f Dockerfile/);
    await converged();
  });

  after(async () => {
    load?.close();
    await shutDown(plane, dataDir);
    await lease?.release();
  });

  it('rolls out a new image with zero failed requests, and serves only it after the cut-over', async () => {
    let finishedAt = 0;
    const { answers, failures } = await load.during(async () => {
      const result = await runCli(dataDir, ['deploy', nodeApp({ GREETING: 'two' }, 2)]);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, /~ web: image shop\/web@sha256:[0-9a-f]{12} → shop\/web@sha256:/);
      assert.match(result.stdout, /v2 is live/);
      finishedAt = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 300));
    });
    assert.deepEqual(failures, [], `${failures.length} of ${answers.length} requests failed`);
    assert.ok(answers.length > 50, `only ${answers.length} requests`);
    const late = answers.filter((a) => a.sentAt > finishedAt);
    assert.ok(late.length > 0);
    assert.deepEqual([...new Set(late.map((a) => greetingOf(a.body)))], ['two']);
    assert.notEqual(await imageOf(2), await imageOf(1));
  });

  it('reuses the build cache: the same code builds the same image, with the same digest', async () => {
    const result = await plane.client.deploy(nodeApp({ GREETING: 'two-again' }, 2));
    assert.match(result.build!.output, /Using cache/);
    assert.equal(await imageOf(result.release), await imageOf(2), 'same layers, same manifest digest');
    await waitFor(
      'the deploy to end',
      async () =>
        (await plane.client.deployment(result.deployment!)).deployment.state === 'succeeded'
          ? true
          : undefined,
      60_000,
    );
  });

  it('rolls back a release whose containers crash at start, with zero failed requests', async () => {
    const { answers, failures } = await load.during(async () => {
      const result = await runCli(dataDir, ['deploy', nodeApp({ GREETING: 'four', CRASH_AT_START: '1' }, 2)]);
      assert.equal(result.code, 1, result.stdout + result.stderr);
      assert.match(result.stdout, /deployment rolled back to v3/);
      assert.match(result.stdout, /exited with code 3/);
      assert.match(result.stdout, /CRASH_AT_START is set/, "the failing container's output is shown");
    });
    assert.deepEqual(failures, [], `${failures.length} of ${answers.length} requests failed`);
    assert.ok(answers.every((a) => greetingOf(a.body) === 'two-again'));
    await converged();
  });

  it('pulls a release image back from the registry when a rollback finds it removed from this machine', async () => {
    const image = await imageOf(1);
    // As `docker rmi`: every tag and the digest reference of v1's image go (no container runs it any more).
    const info = await lease.engine.inspectImage(image);
    assert.ok(info, 'v1 image is on this machine');
    assert.equal(await lease.engine.removeImage(info.Id, { force: true }), true);
    assert.equal(await lease.engine.inspectImage(image), null);
    const { answers, failures } = await load.during(async () => {
      const result = await runCli(dataDir, ['rollback', 'shop', 'v1']);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, /rollback to v1/);
      assert.match(result.stdout, /is live/);
    });
    assert.deepEqual(failures, [], `${failures.length} of ${answers.length} requests failed`);
    assert.ok(await lease.engine.inspectImage(image), 'pulled back by its digest');
    assert.equal(greetingOf((await load.get()).body), 'one');
    const releases = await runCli(dataDir, ['releases', 'shop']);
    const digest = image.slice(image.indexOf('@') + 1, image.indexOf('@') + 1 + 'sha256:'.length + 12);
    assert.match(releases.stdout, new RegExp(`v5 .*${digest}.*rollback to v1`));
  });

  it('prunes the release images no kept release needs, from the registry and from this machine', async () => {
    const pruned = await imageOf(2);
    // Five more releases, each with new code: v2's image is then neither in use nor among the last five.
    for (let revision = 3; revision <= 7; revision++) {
      const result = await plane.client.deploy(nodeApp({ GREETING: `r${revision}` }, revision));
      await waitFor(
        `release ${result.release} to go live`,
        async () =>
          (await plane.client.deployment(result.deployment!)).deployment.state === 'succeeded'
            ? true
            : undefined,
        60_000,
      );
    }
    const events = await waitFor('the images.pruned event', async () => {
      const all = await plane.client.events({ app: 'shop', limit: 1000 });
      return all.some((e) => e.kind === 'images.pruned' && JSON.stringify(e.data).includes(pruned))
        ? all
        : undefined;
    });
    assert.ok(events.length > 0);
    const [registry, ...path] = pruned.slice(0, pruned.indexOf('@')).split('/');
    const digest = pruned.slice(pruned.indexOf('@') + 1);
    // A later deploy's pruning may be collecting garbage (the registry is stopped for it): ask until it answers.
    const status = await waitFor('the registry to answer for the pruned manifest', async () => {
      const manifest = await fetch(`http://${registry}/v2/${path.join('/')}/manifests/${digest}`, {
        headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' },
        signal: AbortSignal.timeout(5000),
      }).catch(() => undefined);
      return manifest?.status;
    });
    assert.equal(status, 404, 'gone from the registry');
    assert.equal(await lease.engine.inspectImage(pruned), null, 'gone from this machine');
    // The current release's image stays, in both places.
    const current = await imageOf((await plane.client.app('shop')).release);
    assert.ok(await lease.engine.inspectImage(current));
  });
});
