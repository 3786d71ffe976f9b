// Integration: day-2 operations with real processes. One owner per data dir (a second `berth up` or `npm start` is
// refused and changes nothing), two installs side by side, private files, backup under load and restore into a
// fresh data dir on other ports, the security of the deploy API's `file`, and CLI edges (EPIPE, --version).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../src/cli/client.js';
import { readProxyPid } from '../src/control/traffic/proxy-supervisor.js';
import { proxyPaths } from '../src/domain/proxy-paths.js';
import {
  CLI,
  type ControlPlaneProcess,
  FIXTURE_APP,
  processExists,
  proxyUnavailable,
  runCli,
  shutDown,
  startControlPlane,
  stopProxy,
  tempDir,
  waitFor,
  withDeadline,
  writeApp,
} from './control-harness.js';
import { LoadClient } from './load-client.js';

const DEMO = fileURLToPath(new URL('../src/main/demo.js', import.meta.url));
const SECRETS_APP = fileURLToPath(new URL('../../test/fixtures/secrets-app/server.js', import.meta.url));
/** Ports the processes started here pick themselves; listeners on loopback only. */
const FREE_PORTS = {
  BERTH_HTTP_PORT: '0',
  BERTH_HTTPS_PORT: '0',
  BERTH_API_PORT: '0',
  BERTH_LISTEN: '127.0.0.1',
};

function shopSpec(greeting: string): string {
  return [
    'app: shop',
    'routes:',
    '  - host: shop.localhost',
    '    service: web',
    'services:',
    '  web:',
    `    run: node ${FIXTURE_APP}/server.js`,
    // One instance: nothing here depends on how many, and each one is a process to start and health-check in
    // every Berth of this file (the first, the restored one, the two installs).
    '    instances: 1',
    '    health: { path: /health, interval: 200ms, timeout: 150ms, healthy: 1, unhealthy: 2, grace: 1s }',
    '    deploy: { stopTimeout: 5s, drain: 1s }',
    `    env: { GREETING: ${greeting} }`,
  ].join('\n');
}

const VAULT_SPEC = [
  'app: vault',
  'routes:',
  '  - host: vault.localhost',
  '    service: web',
  'services:',
  '  web:',
  `    run: node ${SECRETS_APP}`,
  '    instances: 1',
  '    health: { path: /health, interval: 200ms, timeout: 150ms, healthy: 1, unhealthy: 2, grace: 1s }',
  '    secrets: [DB_URL]',
].join('\n');

/** Runs a process to its end with a deadline; `env` adds to this process's environment. */
async function run(
  args: string[],
  env: Record<string, string> = {},
  ms = 60_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += String(chunk);
  });
  child.stderr.on('data', (chunk) => {
    stderr += String(chunk);
  });
  const [code] = (await withDeadline(once(child, 'exit'), ms, args.join(' '))) as [number];
  return { code, stdout, stderr };
}

async function converged(plane: ControlPlaneProcess, app: string): Promise<void> {
  await waitFor(
    `${app} to converge`,
    async () => ((await plane.client.app(app)).converged ? true : undefined),
    30_000,
  );
}

/** Deploys `spec` through the API and waits for its deployment to succeed, as `berth apply` does. */
async function deployed(plane: ControlPlaneProcess, spec: string): Promise<void> {
  const result = await plane.client.deploy(writeApp({ 'berth.yaml': spec }));
  if (result.deployment === null) return;
  await waitFor(
    `${result.app} v${result.release} to go live`,
    async () => {
      const { state } = (await plane.client.deployment(result.deployment!)).deployment;
      assert.ok(
        state === 'in_progress' || state === 'succeeded',
        `${result.app} v${result.release}: ${state}`,
      );
      return state === 'succeeded' ? true : undefined;
    },
    30_000,
    100,
  );
}

describe('operations: one owner per data dir, backup and restore', { skip: proxyUnavailable }, () => {
  const dataDir = tempDir('berth-ops-');
  let plane: ControlPlaneProcess;

  before(async () => {
    // A data dir that exists already, readable by others: what Berth creates in it must still be private.
    chmodSync(dataDir, 0o755);
    plane = await startControlPlane(dataDir);
    // Set-up through the API (`berth apply` and `secrets set` are tested elsewhere): two releases of shop, vault.
    await deployed(plane, shopSpec('one'));
    await deployed(plane, shopSpec('two'));
    await plane.client.request('POST', '/v1/apps/vault/secrets', {
      values: { DB_URL: 'postgres://vault:s3cret@db/vault' },
    });
    await deployed(plane, VAULT_SPEC);
    await converged(plane, 'shop');
    await converged(plane, 'vault');
  });

  after(async () => {
    await shutDown(plane, dataDir);
  });

  it('refuses a second `berth up` on the same data dir, naming the running one, and changes nothing', async () => {
    const endpoint = readFileSync(join(dataDir, 'control.json'), 'utf8');
    const { pid, url } = JSON.parse(endpoint) as { pid: number; url: string };
    const processes = async (): Promise<string[]> =>
      (await plane.client.instances()).map((i) => `${i.id} ${i.pid} ${i.state}`).sort();
    const instances = await processes();
    const events = (await plane.client.events({ limit: 10_000 })).length;

    const second = await run([CLI, '--data-dir', dataDir, 'up'], FREE_PORTS);
    assert.equal(second.code, 3, second.stderr);
    assert.ok(second.stderr.includes(`control plane pid ${pid}`), second.stderr);
    assert.ok(second.stderr.includes(url), second.stderr);

    const demo = await run([DEMO], { ...FREE_PORTS, BERTH_HOME: dataDir });
    assert.equal(demo.code, 1);
    assert.match(
      demo.stderr,
      /refusing to start a second control plane: Berth already runs on the data directory/,
    );

    assert.equal(readFileSync(join(dataDir, 'control.json'), 'utf8'), endpoint, 'control.json is untouched');
    assert.deepEqual(await processes(), instances, 'nothing adopted, stopped or started');
    assert.equal((await plane.client.events({ limit: 10_000 })).length, events, 'no event recorded');
    assert.ok((await plane.client.ping()).ok, 'the first one still answers');
  });

  it('creates state, WAL, logs and artifacts private, whatever the mode of the data dir', () => {
    const mode = (path: string): string => (statSync(path).mode & 0o777).toString(8);
    assert.equal(mode(dataDir), '755', 'the data dir keeps its own mode');
    for (const file of ['state.db', 'state.db-wal', 'admin-token', 'master.key', 'control.json'])
      assert.equal(mode(join(dataDir, file)), '600', file);
    for (const dir of ['logs', 'artifacts', 'builds', 'git', 'pipeline', 'proxy'])
      assert.equal(mode(join(dataDir, dir)), '700', dir);
  });

  it('rejects a deploy `file` outside the directory and never echoes a file that is not a spec', async () => {
    const key = readFileSync(join(dataDir, 'master.key'), 'utf8').trim();
    const dir = writeApp({ 'berth.yaml': shopSpec('one') });
    symlinkSync(join(dataDir, 'master.key'), join(dir, 'linked.yaml'));
    copyFileSync(join(dataDir, 'master.key'), join(dir, 'copied.yaml'));
    for (const file of ['../master.key', '..', 'linked.yaml', 'copied.yaml']) {
      const response = await plane.client.raw('POST', '/v1/deploy', { directory: dir, file }).then(
        () => 'accepted',
        (error: Error) => JSON.stringify(error),
      );
      assert.notEqual(response, 'accepted', file);
      assert.ok(!response.includes(key), `${file}: the key is not in ${response}`);
    }
    const copied = await runCli(dataDir, ['apply', '-f', join(dir, 'copied.yaml')]);
    assert.equal(copied.code, 1);
    assert.ok(copied.stderr.includes(`${dir}/copied.yaml:1:1`), copied.stderr);
    assert.ok(!copied.stderr.includes(key));
  });

  it('ends quietly when the reader of its output goes away (berth events | head -1)', async () => {
    const child = spawn(process.execPath, [CLI, '--data-dir', dataDir, 'events'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += String(chunk);
    });
    const [code] = (await withDeadline(once(child, 'exit'), 30_000, 'berth events')) as [number];
    assert.equal(stderr, '');
    assert.equal(code, 0);
  });

  it('backs up under load and restores into a fresh data dir on other ports: every app answers as before', async () => {
    const ca = proxyPaths(dataDir).caCert;
    const load = new LoadClient(plane.proxyPorts.https, 'shop.localhost', ca);
    const backup = join(tempDir('berth-backup-'), 'berth.tar.gz');
    let made = { code: -1, stdout: '', stderr: '' };
    const result = await load.during(async () => {
      made = await runCli(dataDir, ['backup', backup]);
    });
    load.close();
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /backed up shop v2, vault v1 \(3 artifacts\)/);
    assert.match(made.stdout, /keep the master key apart/);
    assert.deepEqual(result.failures, [], 'the backup disturbed no request');
    assert.ok(result.answers.length > 0);
    assert.equal((statSync(backup).mode & 0o777).toString(8), '600');

    const restoredDir = join(tempDir('berth-restored-'), 'data');
    const refusedKeyless = await runCli(restoredDir, [
      'restore',
      backup,
      '--master-key-file',
      '/nonexistent',
    ]);
    assert.equal(refusedKeyless.code, 2);
    const restored = await runCli(restoredDir, [
      'restore',
      backup,
      '--master-key-file',
      join(dataDir, 'master.key'),
    ]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stdout, /restored shop v2, vault v1 into/);
    const again = await runCli(restoredDir, ['restore', backup]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /not empty/);

    const original = await plane.client.instances();
    const second = await startControlPlane(restoredDir);
    try {
      assert.notEqual(second.proxyPorts.https, plane.proxyPorts.https);
      await converged(second, 'shop');
      await converged(second, 'vault');
      const adopted = (await second.client.instances()).filter((i) => original.some((o) => o.pid === i.pid));
      assert.deepEqual(adopted, [], "the original's instances are its own: none is adopted");
      const restoredCa = proxyPaths(restoredDir).caCert;
      assert.equal(readFileSync(restoredCa, 'utf8'), readFileSync(ca, 'utf8'), 'the same CA');
      const shop = new LoadClient(second.proxyPorts.https, 'shop.localhost', restoredCa);
      const vault = new LoadClient(second.proxyPorts.https, 'vault.localhost', restoredCa);
      try {
        const answer = JSON.parse((await shop.get()).body) as { release: string; greeting: string };
        assert.deepEqual([answer.release, answer.greeting], ['v2', 'two']);
        const { env } = JSON.parse((await vault.get()).body) as { env: Record<string, string> };
        assert.equal(env.DB_URL, 'postgres://vault:s3cret@db/vault');
      } finally {
        shop.close();
        vault.close();
      }
      const releases = await second.client.releases('shop');
      assert.deepEqual(
        releases.map((r) => r.version),
        [1, 2],
      );
      for (const release of releases)
        assert.ok(
          release.sourceDir.startsWith(`${restoredDir}/artifacts/`),
          `${release.sourceDir} moved with the data`,
        );
      for (const instance of original) assert.ok(processExists(instance.pid!), 'the original keeps serving');
    } finally {
      await shutDown(second, restoredDir);
    }
  });
});

describe('operations: two installs on one machine, --detach and stop', { skip: proxyUnavailable }, () => {
  const dirs = [tempDir('berth-one-'), tempDir('berth-two-')];

  after(async () => {
    // Through the API and a signal, not the CLI: this is clean-up, and `berth stop` is tested below.
    for (const dir of dirs) {
      const file = join(dir, 'control.json');
      const control = existsSync(file)
        ? (JSON.parse(readFileSync(file, 'utf8')) as { pid: number })
        : undefined;
      if (control && processExists(control.pid)) {
        const client = ApiClient.fromDataDir(dir);
        await client.downAll().catch(() => undefined);
        await waitFor(
          'every instance to stop',
          async () => ((await client.instances()).length === 0 ? true : undefined),
          30_000,
          100,
        ).catch(() => undefined);
        process.kill(control.pid, 'SIGTERM');
        await waitFor(
          'the control plane to exit',
          () => (processExists(control.pid) ? undefined : true),
          15_000,
        );
      }
      await stopProxy(dir);
    }
  });

  it('runs two Berths side by side, each daemonised with its own ports, each reached by its own CLI', async () => {
    const urls: string[] = [];
    for (const dir of dirs) {
      const up = await run([CLI, '--data-dir', dir, 'up', '--detach'], FREE_PORTS);
      assert.equal(up.code, 0, up.stderr);
      assert.match(up.stdout, /Berth is running in the background: pid \d+, API http:\/\/127\.0\.0\.1:\d+/);
      const endpoint = JSON.parse(readFileSync(join(dir, 'control.json'), 'utf8')) as { url: string };
      urls.push(endpoint.url);
      assert.ok(!endpoint.url.endsWith(':7070'), 'the API port 0 picked a free port and recorded it');
    }
    assert.notEqual(urls[0], urls[1]);
    for (const [i, dir] of dirs.entries()) {
      const app = writeApp({ 'berth.yaml': shopSpec(`install-${i}`) });
      const applied = await runCli(dir, ['apply'], app);
      assert.equal(applied.code, 0, applied.stderr);
    }
    for (const [i, dir] of dirs.entries()) {
      const endpoint = JSON.parse(readFileSync(join(dir, 'control.json'), 'utf8')) as {
        proxy: { https: number };
      };
      const client = new LoadClient(endpoint.proxy.https, 'shop.localhost', proxyPaths(dir).caCert);
      try {
        const answer = JSON.parse((await client.get()).body) as { greeting: string };
        assert.equal(answer.greeting, `install-${i}`);
      } finally {
        client.close();
      }
    }
    const [first] = dirs;
    assert.equal((await runCli(first!, ['down', '--all'])).code, 0);
    const early = await runCli(first!, ['proxy', 'stop']);
    assert.equal(early.code, 1);
    assert.match(early.stderr, /would start the proxy again: stop it first with `berth stop`/);
    const stopped = await runCli(first!, ['stop']);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /stopped the control plane \(pid \d+\)/);
    const gone = await runCli(first!, ['ps']);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /Berth is not running on the data directory/);
    const keeper = readProxyPid(first!);
    assert.ok(keeper !== null && processExists(keeper), 'the proxy outlives the control plane');
    const proxyStopped = await runCli(first!, ['proxy', 'stop']);
    assert.equal(proxyStopped.code, 0, proxyStopped.stderr);
    assert.match(proxyStopped.stdout, new RegExp(`stopped the proxy \\(keeper pid ${keeper}\\)`));
    // Gone from the process table once reaped (its command line empties as it exits, which the CLI waits for).
    await waitFor('the keeper to be gone', () => (processExists(keeper) ? undefined : true), 5000);
    assert.match((await runCli(first!, ['proxy', 'stop'])).stdout, /no proxy runs on the data directory/);
    assert.equal((await runCli(dirs[1]!, ['ps'])).code, 0, 'the other install is untouched');
  });
});

describe('CLI without a control plane', () => {
  it('prints its version, and one line with a hint for an unknown command', async () => {
    const version = await run([CLI, '--version']);
    const pkg = JSON.parse(
      readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8'),
    ) as {
      version: string;
    };
    assert.equal(version.stdout.trim(), pkg.version);
    const unknown = await run([CLI, 'dpeloy']);
    assert.equal(unknown.code, 2);
    assert.deepEqual(unknown.stderr.trim().split('\n'), [
      "error: unknown command 'dpeloy' (did you mean deploy?)",
      '(run `berth --help` for the commands)',
    ]);
  });

  it('writes systemd units for the proxy and the control plane of a data directory', async () => {
    const output = tempDir('berth-units-');
    const result = await run([
      CLI,
      '--data-dir',
      '/var/lib/berth',
      'install',
      'systemd',
      '--output',
      output,
      '--user',
      'berth',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /systemctl enable --now berth-proxy\.service berth\.service/);
    const proxy = readFileSync(join(output, 'berth-proxy.service'), 'utf8');
    assert.match(proxy, /proxy-keeper\.js --data-dir \/var\/lib\/berth --http-port 80 --https-port 443/);
    assert.match(readFileSync(join(output, 'berth.service'), 'utf8'), /--external-proxy/);
  });

  it('says which data directory it looked at when Berth is not running there', async () => {
    const dir = tempDir('berth-none-');
    writeFileSync(join(dir, 'README'), 'not a running Berth\n');
    const ps = await runCli(dir, ['ps']);
    assert.equal(ps.code, 1);
    assert.equal(
      ps.stderr.trim(),
      `error: Berth is not running on the data directory ${dir}; start it with \`berth up\` (or \`berth up --detach\`)`,
    );
  });
});
