// Integration: health-gated rolling deploys behind the real proxy, under load: good, crashing and never-healthy
// releases, manual rollback, draining a slow request, failed builds and a second deploy during a first.
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ProxyAdminClient } from '../src/domain/proxy-admin-client.js';
import { proxyPaths } from '../src/domain/proxy-paths.js';
import {
  type ControlPlaneProcess,
  FIXTURE_APP,
  proxyUnavailable,
  runCli,
  shutDown,
  startControlPlane,
  tempDir,
  waitFor,
  writeApp,
} from './control-harness.js';
import { answersAfter, LoadClient } from './load-client.js';

/** An app directory with its own copy of the fixture server (so each release's artifact holds code). */
function appDir(env: Record<string, string>, extra: Record<string, string> = {}): string {
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
      '    run: node server.js',
      '    instances: 3',
      '    health: { path: /health, interval: 250ms, timeout: 200ms, healthy: 1, unhealthy: 2, grace: 1s }',
      '    deploy: { drain: 10s, stopTimeout: 5s }',
      `    env: { ${envText} }`,
    ].join('\n'),
    ...extra,
  });
  copyFileSync(join(FIXTURE_APP, 'server.js'), join(dir, 'server.js'));
  return dir;
}

function releaseOf(body: string): string {
  return (JSON.parse(body) as { greeting: string }).greeting;
}

describe('deploys', { skip: proxyUnavailable }, () => {
  const dataDir = tempDir('berth-deploy-');
  let plane: ControlPlaneProcess;
  let load: LoadClient;

  async function converged(): Promise<void> {
    await waitFor(
      'the app to converge',
      async () => ((await plane.client.app('shop')).converged ? true : undefined),
      30_000,
    );
  }

  before(async () => {
    plane = await startControlPlane(dataDir);
    load = new LoadClient(plane.proxyPorts.https, 'shop.localhost', proxyPaths(dataDir).caCert);
    const first = await runCli(dataDir, ['deploy', appDir({ GREETING: 'one' })]);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    await converged();
  });

  after(async () => {
    load.close();
    await shutDown(plane, dataDir);
  });

  it('rolls out a good release with zero failed requests, and serves only it after the cut-over', async () => {
    let finishedAt = 0;
    const { answers, failures } = await load.during(async (sofar) => {
      const result = await runCli(dataDir, ['deploy', appDir({ GREETING: 'two' })]);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, /shop: release v2/);
      assert.match(result.stdout, /web: 3\/3 new healthy/);
      assert.match(result.stdout, /v2 is live/);
      finishedAt = Date.now();
      await answersAfter(sofar, finishedAt);
    });
    assert.deepEqual(failures, [], `${failures.length} of ${answers.length} requests failed`);
    assert.ok(answers.length > 100, `only ${answers.length} requests`);
    const after = answers.filter((a) => a.sentAt > finishedAt);
    assert.ok(after.length > 0);
    assert.deepEqual([...new Set(after.map((a) => releaseOf(a.body)))], ['two']);
    assert.ok(
      answers.some((a) => releaseOf(a.body) === 'one'),
      'the old release served during the deploy',
    );
  });

  it('rolls back a release that crashes at start, with zero failed requests', async () => {
    const { answers, failures } = await load.during(async () => {
      const result = await runCli(dataDir, ['deploy', appDir({ GREETING: 'three', CRASH_AT_START: '1' })]);
      assert.equal(result.code, 1);
      assert.match(result.stdout, /deployment rolled back to v2/);
      assert.match(result.stdout, /circuit breaker trips at 3/);
      assert.match(result.stdout, /exited with code 3/);
      assert.match(result.stdout, /CRASH_AT_START is set/, 'the failing instance output is shown');
    });
    assert.deepEqual(failures, [], `${failures.length} of ${answers.length} requests failed`);
    assert.ok(answers.every((a) => releaseOf(a.body) === 'two'));
    const releases = await plane.client.releases('shop');
    assert.equal(releases.at(-1)?.deployment?.state, 'rolled_back');
    assert.equal((await plane.client.app('shop')).release, 2, 'v2 is current again');
    await converged();
  });

  it('rolls back a release that never passes its health check, with zero failed requests', async () => {
    const { answers, failures } = await load.during(async () => {
      const result = await runCli(dataDir, ['deploy', appDir({ GREETING: 'four', HEALTH_STATUS: '500' })]);
      assert.equal(result.code, 1);
      assert.match(result.stdout, /deployment rolled back to v2/);
      assert.match(result.stdout, /never passed its health check \(last: status 500\)/);
    });
    assert.deepEqual(failures, [], `${failures.length} of ${answers.length} requests failed`);
    assert.ok(answers.every((a) => releaseOf(a.body) === 'two'));
    const events = await plane.client.events({ app: 'shop', limit: 1000 });
    assert.ok(events.some((e) => e.kind === 'deployment.rolled_back' && /status 500/.test(e.message)));
    await converged();
  });

  it('rolls back by hand to an earlier release with zero failed requests', async () => {
    const { answers, failures } = await load.during(async () => {
      const result = await runCli(dataDir, ['rollback', 'shop', 'v1']);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, /rollback to v1/);
      assert.match(result.stdout, /is live/);
    });
    assert.deepEqual(failures, [], `${failures.length} of ${answers.length} requests failed`);
    assert.equal(releaseOf((await load.get()).body), 'one');
    const listed = await runCli(dataDir, ['releases', 'shop']);
    assert.match(listed.stdout, /v5 .* succeeded .*rollback to v1/);
  });

  it('lets a slow request on an old instance finish while the instance drains', async () => {
    const admin = new ProxyAdminClient(proxyPaths(dataDir).adminSocket);
    const release = join(tempDir('berth-hold-'), 'release');
    const held = load.get(`/hold?file=${encodeURIComponent(release)}`, 30_000);
    const holder = await waitFor('the held request to be in flight', async () =>
      (await admin.targets()).find((t) => t.inFlight > 0),
    );
    const deploy = runCli(dataDir, ['deploy', appDir({ GREETING: 'six' })]);
    await waitFor('its instance to drain, out of the load balancer, with the request in flight', async () => {
      const target = (await admin.targets()).find((t) => t.id === holder.id);
      return target?.state === 'draining' && target.inFlight > 0 ? true : undefined;
    });
    writeFileSync(release, '');
    const answer = await held;
    assert.equal(answer.status, 200);
    assert.equal(releaseOf(answer.body), 'one', 'answered by the old release');
    assert.equal((JSON.parse(answer.body) as { instance: string }).instance, holder.id);
    const result = await deploy;
    assert.equal(result.code, 0, result.stdout + result.stderr);
  });

  it('refuses a second deploy while one is in progress', async () => {
    const first = await plane.client.deploy(appDir({ GREETING: 'seven', HEALTH_STATUS: '500' }));
    assert.notEqual(first.deployment, null);
    await assert.rejects(plane.client.deploy(appDir({ GREETING: 'eight' })), {
      code: 'conflict',
      message: /shop is being deployed \(v7/,
    });
    await waitFor(
      'the first deploy to roll back',
      async () => {
        const view = await plane.client.deployment(first.deployment!);
        return view.deployment.state !== 'in_progress' && view.status.converged ? view : undefined;
      },
      30_000,
    );
  });

  it('resumes a deployment after a control-plane restart in the middle, with zero failed requests', async () => {
    const { answers, failures } = await load.during(async () => {
      const started = await plane.client.deploy(appDir({ GREETING: 'slow', START_DELAY_MS: '700' }));
      await plane.stop();
      plane = await startControlPlane(dataDir);
      const view = await waitFor(
        'the deployment to end',
        async () => {
          const now = await plane.client.deployment(started.deployment!);
          return now.deployment.state !== 'in_progress' ? now : undefined;
        },
        30_000,
      );
      assert.equal(view.deployment.state, 'succeeded', view.deployment.reason ?? '');
    });
    assert.deepEqual(failures, [], `${failures.length} of ${answers.length} requests failed`);
    assert.equal(releaseOf((await load.get()).body), 'slow');
  });

  it('refuses a release whose build fails, showing its output, and changes nothing', async () => {
    const before = await plane.client.app('shop');
    const dir = appDir(
      { GREETING: 'nine' },
      {
        'package.json': JSON.stringify({
          name: 'x',
          scripts: { build: 'echo compiling; echo "type error in x.ts" >&2; exit 2' },
        }),
      },
    );
    const result = await runCli(dataDir, ['deploy', dir]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /build failed: `npm run build` exited with code 2/);
    assert.match(result.stderr, /type error in x\.ts/);
    const afterwards = await plane.client.app('shop');
    assert.equal(afterwards.release, before.release);
  });

  it('ignores files listed in .gitignore and .berthignore when building the artifact', async () => {
    const dir = appDir(
      { GREETING: 'ten' },
      { '.gitignore': 'secret.txt\n', '.berthignore': 'big/\n', 'secret.txt': 'x' },
    );
    writeFileSync(join(dir, 'kept.txt'), 'kept');
    const result = await plane.client.deploy(dir);
    const { existsSync } = await import('node:fs');
    const artifact = join(dataDir, 'artifacts', result.build!.digest.slice('sha256:'.length));
    assert.ok(existsSync(join(artifact, 'kept.txt')));
    assert.ok(!existsSync(join(artifact, 'secret.txt')));
    await waitFor(
      'the deploy to end',
      async () => {
        const view = await plane.client.deployment(result.deployment!);
        return view.deployment.state === 'succeeded' ? true : undefined;
      },
      30_000,
    );
  });
});
