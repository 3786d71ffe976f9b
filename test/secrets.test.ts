// Integration: secrets through a real control plane, proxy and instances: injected, scrubbed, rolled, never on disk.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { InstanceView } from '../src/domain/api-types.js';
import { proxyPaths } from '../src/domain/proxy-paths.js';
import {
  CLI,
  type ControlPlaneProcess,
  getJson,
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

const SECRETS_APP = fileURLToPath(new URL('../../test/fixtures/secrets-app/server.js', import.meta.url));
const DB_URL = `postgres://shop:pw-${Math.random().toString(36).slice(2)}@db.internal/shop`;
const API_KEY = `sk-live-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
const NEW_DB_URL = `postgres://shop:rotated-${Math.random().toString(36).slice(2)}@db.internal/shop`;

function spec(webSecrets: string[] = ['DB_URL', 'API_KEY']): string {
  const health =
    '    health: { path: /health, interval: 200ms, timeout: 150ms, healthy: 1, unhealthy: 2, grace: 10s }';
  return [
    'app: shop',
    'routes:',
    '  - host: shop.localhost',
    '    service: web',
    'services:',
    '  web:',
    `    run: node ${SECRETS_APP}`,
    // One web instance, as the worker: what each instance gets and a roll with no failed request are the same
    // promises for one as for two, and every instance is a process to start and check.
    '    instances: 1',
    health,
    '    deploy: { drain: 2s, stopTimeout: 5s }',
    '    env: { PRINT_SECRET: DB_URL }',
    `    secrets: [${webSecrets.join(', ')}]`,
    '  worker:',
    `    run: node ${SECRETS_APP}`,
    '    instances: 1',
    health,
    '    secrets: [API_KEY]',
  ].join('\n');
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return filesUnder(path);
    return entry.isFile() ? [path] : [];
  });
}

/** Runs the CLI with `input` on its stdin. */
async function runCliWithStdin(
  dataDir: string,
  args: string[],
  input: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, '--data-dir', dataDir, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += String(chunk);
  });
  child.stderr.on('data', (chunk) => {
    stderr += String(chunk);
  });
  child.stdin.end(input);
  const [code] = (await withDeadline(once(child, 'exit'), 30_000, `berth ${args.join(' ')}`)) as [number];
  return { code, stdout, stderr };
}

interface EnvAnswer {
  instance: string;
  service: string;
  env: Record<string, string>;
}

describe('secrets', { skip: proxyUnavailable }, () => {
  const dataDir = tempDir('berth-secrets-');
  let plane: ControlPlaneProcess;
  let load: LoadClient;

  async function healthy(service: string, count: number): Promise<InstanceView[]> {
    return waitFor(
      `${count} healthy ${service} instances`,
      async () => {
        const status = await plane.client.app('shop');
        const live = (await plane.client.instances({ app: 'shop' })).filter((i) => i.service === service);
        return status.converged && live.length === count && live.every((i) => i.state === 'healthy')
          ? live
          : undefined;
      },
      15_000,
      100,
    );
  }

  before(async () => {
    plane = await startControlPlane(dataDir);
    load = new LoadClient(plane.proxyPorts.https, 'shop.localhost', proxyPaths(dataDir).caCert);
    const keyFile = join(tempDir('berth-secret-file-'), 'api-key');
    writeFileSync(keyFile, API_KEY);
    const set = await runCliWithStdin(
      dataDir,
      ['secrets', 'set', 'shop', 'DB_URL=-', '--from-file', `API_KEY=${keyFile}`],
      `${DB_URL}\n`,
    );
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /DB_URL v1 set/);
    assert.ok(!set.stdout.includes(DB_URL));
    // The config and the first release through the API: set-up (the CLI's `config set` and `deploy` are tested
    // elsewhere); `healthy` below waits for what `berth deploy` would.
    await plane.client.request('POST', '/v1/apps/shop/config', { values: { MODE: 'live' } });
    await plane.client.deploy(writeApp({ 'berth.yaml': spec() }));
    await healthy('web', 1);
    await healthy('worker', 1);
  });

  after(async () => {
    load?.close();
    await shutDown(plane, dataDir);
  });

  it('gives each instance exactly the secrets its service names, plus the app config', async () => {
    for (const instance of await plane.client.instances({ app: 'shop' })) {
      const answer = (await getJson(instance.port!)) as unknown as EnvAnswer;
      const expected: Record<string, string> =
        instance.service === 'web'
          ? { API_KEY, DB_URL, MODE: 'live', PRINT_SECRET: 'DB_URL' }
          : { API_KEY, MODE: 'live' };
      assert.deepEqual(answer.env, expected, `${instance.id} (${instance.service})`);
    }
  });

  it('lists names, versions and users of secrets, never values', async () => {
    const list = await runCli(dataDir, ['secrets', 'list', 'shop']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /API_KEY\s+v1\s+-\s+.*web,worker\s+active/);
    assert.match(list.stdout, /DB_URL\s+v1\s+-\s+.*web\s+active/);
    for (const value of [DB_URL, API_KEY]) assert.ok(!list.stdout.includes(value));
    const refused = await runCli(dataDir, ['secrets', 'get', 'shop', 'DB_URL']);
    assert.equal(refused.code, 2);
    const revealed = await runCli(dataDir, ['secrets', 'get', 'shop', 'DB_URL', '--reveal']);
    assert.equal(revealed.stdout, `${DB_URL}\n`);
    const events = await plane.client.events({ app: 'shop' });
    assert.ok(events.some((e) => e.kind === 'secret.revealed' && /DB_URL v1 revealed/.test(e.message)));
  });

  it('scrubs a secret the app prints, even split across two writes, from `berth logs`', async () => {
    // Awaited through the API (a CLI process per poll costs more than the poll), then read with `berth logs`.
    // The app's second write ends the line; on a loaded machine it may come after the quiet spell (200 ms), and then
    // the line is two records, the secret still whole in the second.
    await waitFor('the app to print its connection string', async () =>
      (await plane.client.logs('shop', { service: 'web' })).some((l) => l.line.endsWith(' now'))
        ? true
        : undefined,
    );
    const result = await runCli(dataDir, ['logs', 'shop', '--service', 'web']);
    assert.equal(result.code, 0, result.stderr);
    const logs = result.stdout;
    assert.match(logs, /\[out\] connecting with (\n\S+ \S+\[out\] )?\[secret:DB_URL\] now/);
    assert.ok(!logs.includes(DB_URL));
    assert.ok(!logs.includes(DB_URL.slice(4)));
  });

  it('refuses a release naming a missing secret, leaving the running instances alone', async () => {
    const before = (await plane.client.instances({ app: 'shop' })).map((i) => i.id).sort();
    const result = await runCli(dataDir, [
      'deploy',
      writeApp({ 'berth.yaml': spec(['DB_URL', 'API_KEY', 'NOPE']) }),
    ]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /no secret NOPE/);
    const after = (await plane.client.instances({ app: 'shop' })).map((i) => i.id).sort();
    assert.deepEqual(after, before);
  });

  it('keeps every secret value out of every file of the data directory', async () => {
    // WAL contents reach the main file only at a checkpoint: both are read, with the logs and everything else.
    const files = filesUnder(dataDir);
    assert.ok(files.some((f) => f.endsWith('state.db')) && files.some((f) => f.endsWith('.log')));
    for (const file of files) {
      if (statSync(file).size > 64 * 1024 * 1024) continue;
      const bytes = readFileSync(file);
      for (const value of [DB_URL, API_KEY, DB_URL.slice(0, 24), API_KEY.slice(8)]) {
        assert.equal(bytes.includes(Buffer.from(value)), false, `${file} holds a secret value`);
      }
    }
  });

  it('rolls the services using a changed secret with no failed request', async () => {
    const webBefore = (await healthy('web', 1)).map((i) => i.id);
    const workerBefore = (await healthy('worker', 1)).map((i) => i.id);
    // The load client keeps a request in flight at every moment of the roll (see LoadClient.during), paced at 20 ms
    // a connection: each instant of the cut-over is covered as by an unpaced loop, with far fewer requests.
    const result = await load.during(
      async () => {
        const set = await runCli(dataDir, ['secrets', 'set', 'shop', `DB_URL=${NEW_DB_URL}`]);
        assert.equal(set.code, 0, set.stderr);
        await waitFor(
          'web to run the new value',
          async () => {
            const live = await healthy('web', 1);
            if (live.some((i) => webBefore.includes(i.id))) return undefined;
            const answers = await Promise.all(live.map((i) => getJson(i.port!)));
            return answers.every((a) => (a as unknown as EnvAnswer | undefined)?.env.DB_URL === NEW_DB_URL)
              ? true
              : undefined;
          },
          20_000,
        );
      },
      4,
      20,
    );
    assert.deepEqual(result.failures, [], `${result.failures.length} of ${result.sent} requests failed`);
    assert.ok(result.sent > 20, `only ${result.sent} requests were sent`);
    // The worker does not use DB_URL: it keeps running.
    assert.deepEqual(
      (await healthy('worker', 1)).map((i) => i.id),
      workerBefore,
    );
  });

  it('exports to a passphrase bundle that imports on a second data directory with the same values', async () => {
    const passphraseFile = join(tempDir('berth-pass-'), 'passphrase');
    writeFileSync(passphraseFile, 'a long export passphrase\n', { mode: 0o600 });
    const exported = await runCli(dataDir, [
      'secrets',
      'export',
      'shop',
      '--passphrase-file',
      passphraseFile,
    ]);
    assert.equal(exported.code, 0, exported.stderr);
    for (const value of [NEW_DB_URL, API_KEY]) assert.ok(!exported.stdout.includes(value));
    const bundleFile = join(tempDir('berth-bundle-'), 'shop.bundle');
    writeFileSync(bundleFile, exported.stdout);

    const otherDir = tempDir('berth-secrets-other-');
    let other = await startControlPlane(otherDir);
    try {
      const wrongFile = join(tempDir('berth-pass-'), 'wrong');
      writeFileSync(wrongFile, 'not the passphrase\n');
      const wrong = await runCli(otherDir, [
        'secrets',
        'import',
        'shop',
        bundleFile,
        '--passphrase-file',
        wrongFile,
      ]);
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /wrong passphrase/);
      // What the import left is read through the API: the commands under test are `import` and `rotate-master-key`.
      const reveal = async (name: string): Promise<string> =>
        (await other.client.request<{ value: string }>('POST', `/v1/apps/shop/secrets/${name}/reveal`, {}))
          .value;
      assert.deepEqual(await other.client.request<unknown[]>('GET', '/v1/apps/shop/secrets'), []);

      const imported = await runCli(otherDir, [
        'secrets',
        'import',
        'shop',
        bundleFile,
        '--passphrase-file',
        passphraseFile,
      ]);
      assert.equal(imported.code, 0, imported.stderr);
      assert.match(imported.stdout, /imported 2 secrets \(API_KEY, DB_URL\) and 1 config vars/);
      for (const [name, value] of [
        ['DB_URL', NEW_DB_URL],
        ['API_KEY', API_KEY],
      ] as const) {
        assert.equal(await reveal(name), value);
      }
      assert.deepEqual(
        (await other.client.request<{ key: string; value: string }[]>('GET', '/v1/apps/shop/config')).map(
          (v) => [v.key, v.value],
        ),
        [['MODE', 'live']],
      );

      // Rotating the master key re-seals the data keys: a restart with the new key file opens every value.
      const oldKey = readFileSync(join(otherDir, 'master.key'), 'utf8');
      const rotated = await runCli(otherDir, ['secrets', 'rotate-master-key']);
      assert.match(rotated.stdout, /master key rotated: 2 data keys re-sealed/);
      assert.notEqual(readFileSync(join(otherDir, 'master.key'), 'utf8'), oldKey);
      await other.stop();
      other = await startControlPlane(otherDir);
      assert.equal(await reveal('API_KEY'), API_KEY);
      await other.stop();

      // The same data directory with the old key, a wrong key, or with a key file others can read, does not start.
      try {
        for (const key of [oldKey.trim(), randomBytes(32).toString('base64')]) {
          process.env.BERTH_MASTER_KEY = key;
          await assert.rejects(startControlPlane(otherDir), /does not open the existing secrets/);
        }
      } finally {
        delete process.env.BERTH_MASTER_KEY;
      }
      chmodSync(join(otherDir, 'master.key'), 0o644);
      await assert.rejects(startControlPlane(otherDir), /readable by group or others \(mode 0644\)/);
    } finally {
      await other.stop();
      await stopProxy(otherDir);
    }
  });
});
