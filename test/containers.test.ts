// Integration: apps as Docker containers from an existing image (busybox httpd), behind the real proxy, under load:
// the release's image digest, output and secrets, SIGKILL of a container's process, re-adoption after a restart,
// limits, release images in a team's registry that wants a login (a second app on the same control plane); and,
// without an engine, docker apps refused with what to install while process apps run.
import assert from 'node:assert/strict';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ApiClient } from '../src/cli/client.js';
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

/**
 * App `app` (default box): busybox httpd serving `<greeting> <instance>` at / and `ok` at /health, printing the
 * secret TOKEN once; `service` lines go into its service, `top` lines at the top level.
 */
function busyboxApp(
  greeting: string,
  { app = 'box', service = [], top = [] }: { app?: string; service?: string[]; top?: string[] } = {},
): string {
  const script = [
    'mkdir -p /www',
    'echo ok > /www/health',
    `echo "${greeting} $BERTH_INSTANCE" > /www/index.html`,
    'echo "starting with token $TOKEN"',
    'exec httpd -f -p 127.0.0.1:$PORT -h /www',
  ].join(' && ');
  return writeApp({
    'berth.yaml': [
      `app: ${app}`,
      'routes:',
      `  - host: ${app}.localhost`,
      '    service: web',
      'services:',
      '  web:',
      `    image: ${BUSYBOX_IMAGE}`,
      `    run: sh -c '${script}'`,
      '    instances: 2',
      '    secrets: [TOKEN]',
      '    health: { path: /health, interval: 250ms, timeout: 200ms, healthy: 1, unhealthy: 2, grace: 2s }',
      '    deploy: { drain: 2s, stopTimeout: 3s }',
      ...service,
      ...top,
    ].join('\n'),
  });
}

const TOKEN = 'box-token-7f3a9c-secret';

/** Sets secrets of an app through the API: setup for the tests here (`berth secrets` has its own tests). */
async function setSecrets(client: ApiClient, app: string, values: Record<string, string>): Promise<void> {
  await client.request('POST', `/v1/apps/${app}/secrets`, { values });
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return dir !== '';
    } catch {
      return false;
    }
  });
}

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
        n.startsWith(
          `/${new DockerRuntime({ engine: lease.engine, owner: ownerMark(dataDir) }).containerName('')}`,
        ),
      ),
    );

  before(async () => {
    lease = await leaseDockerEngine();
    await ensureBusyboxImage(lease.engine);
    plane = await startControlPlane(dataDir);
    load = new LoadClient(plane.proxyPorts.https, 'box.localhost', proxyPaths(dataDir).caCert);
    await setSecrets(plane.client, 'box', { TOKEN });
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
    const name = new DockerRuntime({ engine: lease.engine, owner: ownerMark(dataDir) }).containerName(
      instance!.id,
    );
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

  // Requests the killed app was serving are sent again to the other container: a safe request whose connection
  // broke before any response byte is replayed on another target (docs/proxy.md, "Retries").
  it('replaces a container whose main process is killed with SIGKILL under load without a failed request', async () => {
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
    assert.deepEqual(failures, [], `${failures.length} of ${answers.length} requests failed`);
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
      plane = await startControlPlane(dataDir);
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
      busyboxApp('two', { service: ['    resources: { memory: 96Mi, cpu: 0.5 }'] }),
    ]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const [instance] = await healthy(2);
    const name = new DockerRuntime({ engine: lease.engine, owner: ownerMark(dataDir) }).containerName(
      instance!.id,
    );
    const info = await lease.engine.inspectContainer(name);
    assert.equal(info?.HostConfig.Memory, 96 * 1024 * 1024);
    assert.equal(info?.HostConfig.NanoCpus, 500_000_000);
    const sampled = await waitFor('a memory sample', async () => {
      const [now] = (await plane.client.instances({ app: 'box' })).filter((i) => i.id === instance!.id);
      return (now?.usage?.memoryBytes ?? 0) > 0 ? now : undefined;
    });
    assert.ok(sampled.usage!.memoryBytes < 96 * 1024 * 1024);
  });

  describe('release images in a registry that wants a login', {
    skip: onPath('htpasswd') ? false : 'htpasswd not found on PATH (Debian package apache2-utils)',
  }, () => {
    // App teambox, on the same control plane as box (which keeps its images in the embedded registry).
    let registry: { address: string; stop: () => void };

    before(async () => {
      registry = await startAuthRegistry(tempDir('berth-team-registry-'), 'deploy', 'r3g1stry-pw');
    });

    after(() => registry?.stop());

    const registryLines = (password: string) => [
      'registry:',
      `  url: ${registry.address}/team`,
      '  username: deploy',
      `  password: ${password}`,
    ];

    it('refuses a deploy whose registry password secret does not exist, before building', async () => {
      const result = await runCli(dataDir, [
        'deploy',
        busyboxApp('one', { app: 'teambox', top: registryLines('REGISTRY_PASSWORD') }),
      ]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /REGISTRY_PASSWORD/);
    });

    it('pushes with the login from a sealed secret, records the digest there, and fails cleanly with a wrong one', async () => {
      await setSecrets(plane.client, 'teambox', { TOKEN, WRONG: 'not-the-password' });
      const refused = await runCli(dataDir, [
        'deploy',
        busyboxApp('one', { app: 'teambox', top: registryLines('WRONG') }),
      ]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /image build failed: .*(unauthorized|authentication required)/);
      await setSecrets(plane.client, 'teambox', { REGISTRY_PASSWORD: 'r3g1stry-pw' });
      const result = await runCli(dataDir, [
        'deploy',
        busyboxApp('one', { app: 'teambox', top: registryLines('REGISTRY_PASSWORD') }),
      ]);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      const image = (await plane.client.releases('teambox')).at(-1)!.spec.services.web!.image!;
      assert.ok(image.startsWith(`${registry.address}/team/teambox/web@sha256:`), image);
      const manifest = `http://${registry.address}/v2/team/teambox/web/manifests/${image.slice(image.indexOf('@') + 1)}`;
      const accept = { Accept: 'application/vnd.docker.distribution.manifest.v2+json' };
      assert.equal(
        (await fetch(manifest, { method: 'HEAD', headers: accept })).status,
        401,
        'it wants the login',
      );
      const login = `Basic ${Buffer.from('deploy:r3g1stry-pw').toString('base64')}`;
      assert.equal(
        (await fetch(manifest, { method: 'HEAD', headers: { ...accept, Authorization: login } })).status,
        200,
      );
      // Removed from this machine, the release's image is pulled back with the same login when an instance starts.
      await lease.engine.removeImage(image, { force: true });
      await plane.client.scale('teambox', { web: 3 });
      await waitFor(
        '3 healthy instances',
        async () =>
          (await plane.client.instances({ app: 'teambox' })).filter((i) => i.state === 'healthy').length === 3
            ? true
            : undefined,
        60_000,
      );
      assert.ok(await lease.engine.inspectImage(image));
    });
  });
});

/** A second docker-registry on 127.0.0.1 that wants a login (htpasswd), as a team's own registry would. */
async function startAuthRegistry(dir: string, user: string, password: string) {
  const { execFileSync, spawn } = await import('node:child_process');
  const { createServer } = await import('node:net');
  const { writeFileSync, mkdirSync } = await import('node:fs');
  const port = await new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address() as { port: number };
      server.close(() => resolve(address.port));
    });
  });
  mkdirSync(join(dir, 'data'), { recursive: true });
  writeFileSync(join(dir, 'htpasswd'), execFileSync('htpasswd', ['-Bbn', user, password]));
  writeFileSync(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log: { level: warn, accesslog: { disabled: true } }',
      `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} } }`,
      `http: { addr: "127.0.0.1:${port}" }`,
      `auth: { htpasswd: { realm: test, path: ${join(dir, 'htpasswd')} } }`,
      '',
    ].join('\n'),
  );
  const child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
  const address = `127.0.0.1:${port}`;
  await waitFor('the registry to answer', async () => {
    const answer = await fetch(`http://${address}/v2/`).catch(() => undefined);
    return answer?.status === 401 ? true : undefined;
  });
  return { address, stop: () => child.kill('SIGTERM') };
}

describe('without a Docker engine', () => {
  const dataDir = tempDir('berth-nodocker-');
  let plane: ControlPlaneProcess;

  before(async () => {
    plane = await startControlPlane(dataDir, undefined, {
      env: { DOCKER_HOST: `unix://${dataDir}/no-docker.sock` },
    });
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
