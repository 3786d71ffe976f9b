// Integration: apps as Docker containers from an existing image (busybox httpd), behind the real proxy, under load:
// the release's image digest, output and secrets, SIGKILL of a container's process, re-adoption after a restart,
// limits; and, without an engine, docker apps refused with what to install while process apps run.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DockerRuntime } from '../src/control/runtime/docker-runtime.js';
import { ownerMark } from '../src/control/runtime/process-runtime.js';
import { proxyPaths } from '../src/domain/proxy-paths.js';
import {
  type ControlPlaneProcess,
  runCli,
  shutDown,
  startControlPlane,
  tempDir,
  waitFor,
  writeApp,
} from './control-harness.js';
import {
  BUSYBOX_IMAGE,
  dockerSkipReason,
  type EngineLease,
  ensureBusyboxImage,
  leaseDockerEngine,
} from './docker-host.js';
import { LoadClient } from './load-client.js';

/** busybox httpd serving `<greeting> <instance>` at / and `ok` at /health, printing the secret TOKEN once. */
function busyboxApp(greeting: string, extra: string[] = []): string {
  const script = [
    'mkdir -p /www',
    'echo ok > /www/health',
    `echo "${greeting} $BERTH_INSTANCE" > /www/index.html`,
    'echo "starting with token $TOKEN"',
    'exec httpd -f -p 127.0.0.1:$PORT -h /www',
  ].join(' && ');
  return writeApp({
    'berth.yaml': [
      'app: box',
      'routes:',
      '  - host: box.localhost',
      '    service: web',
      'services:',
      '  web:',
      `    image: ${BUSYBOX_IMAGE}`,
      `    run: sh -c '${script}'`,
      '    instances: 2',
      '    secrets: [TOKEN]',
      '    health: { path: /health, interval: 250ms, timeout: 200ms, healthy: 1, unhealthy: 2, grace: 2s }',
      '    deploy: { drain: 2s, stopTimeout: 3s }',
      ...extra,
    ].join('\n'),
  });
}

const TOKEN = 'box-token-7f3a9c-secret';

describe('containers from an existing image', { skip: dockerSkipReason() }, () => {
  const dataDir = tempDir('berth-containers-');
  let lease: EngineLease;
  let plane: ControlPlaneProcess;
  let load: LoadClient;

  const healthy = (count: number) =>
    waitFor(
      `${count} healthy containers`,
      async () => {
        const status = await plane.client.app('box');
        const live = await plane.client.instances({ app: 'box' });
        return status.converged && live.length === count ? live : undefined;
      },
      60_000,
    );

  /** This data directory's containers of app box, as the engine lists them. */
  const containers = async () =>
    (await lease.engine.listContainers(['berth.app=box'])).filter((c) =>
      c.Names.some((n) =>
        n.startsWith(`/${new DockerRuntime({ engine: lease.engine, owner: ownerMark(dataDir) }).containerName('')}`),
      ),
    );

  before(async () => {
    lease = await leaseDockerEngine();
    await ensureBusyboxImage(lease.engine);
    plane = await startControlPlane(dataDir, 20_000);
    load = new LoadClient(plane.proxyPorts.https, 'box.localhost', proxyPaths(dataDir).caCert);
    const set = await runCli(dataDir, ['secrets', 'set', 'box', `TOKEN=${TOKEN}`]);
    assert.equal(set.code, 0, set.stdout + set.stderr);
  });

  after(async () => {
    load?.close();
    await shutDown(plane, dataDir);
    await lease?.release();
  });

  it('deploys an image as containers, pushes it to the registry and shows its digest in `berth releases`', async () => {
    const result = await runCli(dataDir, ['deploy', busyboxApp('one')]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /box: release v1/);
    assert.match(result.stdout, /v1 is live/);
    const [release] = await plane.client.releases('box');
    const image = release!.spec.services.web!.image!;
    assert.match(image, /^127\.0\.0\.1:\d+\/berth\/box\/web@sha256:[0-9a-f]{64}$/, 'resolved to a digest');
    const listed = await runCli(dataDir, ['releases', 'box']);
    const digest = image.slice(image.indexOf('@') + 1);
    assert.ok(listed.stdout.includes(digest.slice(0, 'sha256:'.length + 12)), listed.stdout);
    // The registry holds it: the manifest is there by digest.
    const [registry, ...path] = image.slice(0, image.indexOf('@')).split('/');
    const manifest = await fetch(`http://${registry}/v2/${path.join('/')}/manifests/${digest}`, {
      method: 'HEAD',
      headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    assert.equal(manifest.status, 200);
    const live = await healthy(2);
    assert.ok(live.every((i) => i.runtime === 'docker'));
    assert.equal((await containers()).length, 2);
    assert.match((await load.get()).body, /^one box\.web\./);
  });

  it('keeps the secret out of `docker inspect` (but its env) and scrubs it from the output', async () => {
    const [instance] = await plane.client.instances({ app: 'box' });
    const name = new DockerRuntime({ engine: lease.engine, owner: ownerMark(dataDir) }).containerName(instance!.id);
    const info = await lease.engine.json<{ Config: Record<string, unknown>; Args: string[] }>(
      'GET',
      `/containers/${name}/json`,
    );
    const { Env: env, ...rest } = info.Config;
    assert.ok((env as string[]).includes(`TOKEN=${TOKEN}`), 'the app gets it in its environment');
    assert.equal(JSON.stringify({ ...info, Config: rest }).includes(TOKEN), false);
    const labels = info.Config.Labels as Record<string, string>;
    assert.equal(labels['berth.app'], 'box');
    assert.equal(labels['berth.service'], 'web');
    assert.equal(labels['berth.instance'], instance!.id);
    assert.equal(labels['berth.release'], 'v1');
    const logs = await waitFor('the start line in berth logs', async () => {
      const result = await runCli(dataDir, ['logs', 'box', '--no-events']);
      return result.stdout.includes('starting with token') ? result.stdout : undefined;
    });
    assert.match(logs, /starting with token \[secret:TOKEN\]/);
    assert.equal(logs.includes(TOKEN), false);
  });

  // Requests the killed app was serving die with it: the proxy replays a safe request only when its connection
  // was a reused keep-alive one (docs/proxy.md), so a request on a fresh connection to the victim is lost. Zero
  // failures needs the proxy to replay a safe request on another target when a fresh connection is reset before
  // the response; until it does, at most the requests in flight on the victim fail, each a 502.
  it('replaces a container whose main process is killed with SIGKILL; only requests in flight on it fail', async () => {
    const before = await healthy(2);
    const victim = before[0]!;
    const connections = 4;
    const { answers, failures } = await load.during(async () => {
      // The app is the only child of the container's init (the instance's pid).
      const { readFileSync } = await import('node:fs');
      const app = Number(readFileSync(`/proc/${victim.pid}/task/${victim.pid}/children`, 'utf8').trim());
      process.kill(app, 'SIGKILL');
      await waitFor(
        'a replacement',
        async () => {
          const live = await plane.client.instances({ app: 'box' });
          const up = live.filter((i) => i.state === 'healthy');
          return up.length === 2 && !up.some((i) => i.id === victim.id) ? up : undefined;
        },
        30_000,
      );
    }, connections);
    assert.ok(failures.length <= connections, `${failures.length} of ${answers.length} requests failed`);
    for (const failure of failures)
      assert.match(failure, /^502 .*could not be reached or closed the connection/);
    assert.ok(answers.length > 20, `only ${answers.length} requests`);
    const events = await plane.client.events({ app: 'box', limit: 1000 });
    assert.ok(
      events.some(
        (e) => e.kind === 'instance.crashed' && e.instance === victim.id && /SIGKILL/.test(e.message),
      ),
    );
    await waitFor('the ended container to be removed', async () =>
      (await containers()).length === 2 ? true : undefined,
    );
  });

  it('re-adopts its containers after a control-plane restart: same instances, no duplicates, no failed request', async () => {
    const before = (await healthy(2)).map((i) => i.id).sort();
    const { answers, failures } = await load.during(async () => {
      await plane.stop();
      plane = await startControlPlane(dataDir, 20_000);
      await healthy(2);
    });
    assert.deepEqual(failures, [], `${failures.length} of ${answers.length} requests failed`);
    assert.deepEqual((await plane.client.instances({ app: 'box' })).map((i) => i.id).sort(), before);
    const running = await containers();
    assert.equal(running.length, 2, 'no duplicate container');
    assert.deepEqual(running.map((c) => c.Labels['berth.instance']).sort(), before);
    const events = await plane.client.events({ app: 'box', limit: 1000 });
    assert.equal(events.filter((e) => e.kind === 'instance.adopted').length, 2);
    // It still follows them: their output still reaches their log.
    assert.ok(answers.length > 0);
  });

  it('passes memory and CPU limits to the engine, and samples usage from its stats', async () => {
    const result = await runCli(dataDir, [
      'deploy',
      busyboxApp('two', ['    resources: { memory: 96Mi, cpu: 0.5 }']),
    ]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const [instance] = await healthy(2);
    const name = new DockerRuntime({ engine: lease.engine, owner: ownerMark(dataDir) }).containerName(instance!.id);
    const info = await lease.engine.inspectContainer(name);
    assert.equal(info?.HostConfig.Memory, 96 * 1024 * 1024);
    assert.equal(info?.HostConfig.NanoCpus, 500_000_000);
    const sampled = await waitFor('a memory sample', async () => {
      const [now] = (await plane.client.instances({ app: 'box' })).filter((i) => i.id === instance!.id);
      return (now?.usage?.memoryBytes ?? 0) > 0 ? now : undefined;
    });
    assert.ok(sampled.usage!.memoryBytes < 96 * 1024 * 1024);
  });
});

describe('without a Docker engine', () => {
  const dataDir = tempDir('berth-nodocker-');
  let plane: ControlPlaneProcess;

  before(async () => {
    plane = await startControlPlane(dataDir, 10_000, { DOCKER_HOST: `unix://${dataDir}/no-docker.sock` });
  });

  after(async () => {
    await shutDown(plane, dataDir);
  });

  it('refuses an app that needs containers, naming what to install, and changes nothing', async () => {
    const result = await runCli(dataDir, ['deploy', busyboxApp('one')]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /box runs on the docker runtime, but no Docker engine at .*no-docker\.sock/);
    assert.match(result.stderr, /apt-get install docker\.io/);
    await assert.rejects(plane.client.app('box'), { code: 'not_found' });
  });

  it('still runs process apps', async () => {
    const dir = writeApp({
      'berth.yaml': [
        'app: plain',
        'services:',
        '  worker:',
        '    run: node -e "setInterval(() => {}, 1000)"',
      ].join('\n'),
    });
    const result = await runCli(dataDir, ['deploy', dir]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /v1 is live/);
  });
});
