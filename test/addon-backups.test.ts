// Integration: add-on backups with real redis-server and PostgreSQL 15: backup, destroy, restore into new add-ons
// and the same one, a port taken meanwhile, a server that fails to start, a full disk, and `berth backup`/`restore`.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { socketDirectory } from '../src/control/addons/postgres-engine.js';
import type { AddonBackupView, AddonView } from '../src/domain/addon.js';
import { addonClient, psql, redis, run, shutDownWithAddons, skip } from './addon-harness.js';
import { type ControlPlaneProcess, runCli, startControlPlane, tempDir, waitFor } from './control-harness.js';

describe('add-on backups and failures', { skip }, () => {
  let dataDir: string;
  let plane: ControlPlaneProcess;
  const { cli, refused, addons, addon, reveal, create, stop } = addonClient(
    () => dataDir,
    () => plane,
  );

  /** The backups of an app's add-ons through the API, where listing them is set-up, not what is tested. */
  const backupsOf = (app: string): Promise<AddonBackupView[]> =>
    plane.client.request<AddonBackupView[]>('GET', `/v1/apps/${app}/addon-backups`);

  before(async () => {
    dataDir = tempDir('berth-addon-backups-');
    plane = await startControlPlane(dataDir);
  });

  after(() => shutDownWithAddons(plane, dataDir));

  it('backs up, destroys, and restores into a new add-on with the data intact', async () => {
    // Created through the API: set-up here; backup, destroy and restore are the commands under test.
    await create('vault', 'redis');
    // A name long enough that the server's Unix socket cannot live in its own directory (Linux allows 107 bytes),
    // even with TMPDIR=/tmp: the socket moves to a short directory in /tmp, which the destroy removes.
    const ledger = 'ledger-of-every-entry-ever-made-since-the-books-opened';
    const sockets = socketDirectory(join(dataDir, 'addons', 'vault', ledger, 'server'));
    assert.match(sockets, /^\/tmp\/berth-pg-[0-9a-f]{16}$/);
    await create('vault', 'postgres', ledger);
    assert.ok(existsSync(sockets));
    const redisUrl = await reveal('vault', 'REDIS_URL');
    const dbUrl = await reveal('vault', 'DATABASE_URL');
    await redis(redisUrl, 'SET', 'greeting', 'kept across a destroy');
    await psql(
      dbUrl,
      "CREATE TABLE entries (id serial PRIMARY KEY, body text); INSERT INTO entries (body) VALUES ('one'), ('two')",
    );
    await cli('addons', 'backup', 'vault', 'redis');
    await cli('addons', 'backup', 'vault', ledger);
    const backups = JSON.parse(await cli('addons', 'backups', 'vault', '--json')) as AddonBackupView[];
    assert.deepEqual(
      backups.map((b) => [b.addon, b.trigger]),
      [
        ['redis', 'manual'],
        [ledger, 'manual'],
      ],
    );
    for (const b of backups) assert.ok(b.sizeBytes > 0);
    const dirs = (await addons('vault')).map((a) => a.dataDir);
    await cli('addons', 'destroy', 'vault', 'redis', '--confirm', 'vault');
    await cli('addons', 'destroy', 'vault', ledger, '--confirm', 'vault');
    assert.deepEqual(await addons('vault'), []);
    for (const dir of [...dirs, sockets]) assert.equal(existsSync(dir), false, `${dir} deleted`);
    assert.match(await refused('secrets', 'get', 'vault', 'REDIS_URL', '--reveal'), /REDIS_URL/);
    // Kept after the destroy, and loaded into new add-ons.
    assert.equal((await backupsOf('vault')).length, 2);
    await cli('addons', 'restore', 'vault', 'cache', backups[0]!.id);
    await cli('addons', 'restore', 'vault', 'books', backups[1]!.id);
    assert.equal(await redis(await reveal('vault', 'REDIS_URL'), 'GET', 'greeting'), 'kept across a destroy');
    assert.equal(
      await psql(
        await reveal('vault', 'DATABASE_URL'),
        "SELECT string_agg(body, ',' ORDER BY id) FROM entries",
      ),
      'one,two',
    );
  });

  it('moves a server whose port was taken while it was stopped, its URL following', async () => {
    const before = await stop('vault', 'cache');
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(before.port, '127.0.0.1', resolve));
    try {
      await cli('addons', 'start', 'vault', 'cache');
    } finally {
      squatter.close();
    }
    const after = await addon('vault', 'cache');
    assert.equal(after.state, 'available');
    assert.notEqual(after.port, before.port);
    const url = await reveal('vault', 'REDIS_URL');
    assert.match(url, new RegExp(`:${after.port}$`));
    assert.equal(await redis(url, 'GET', 'greeting'), 'kept across a destroy');
  });

  it('shows the last log lines of a server that fails to start, and a restore brings it back', async () => {
    // The backup of the destroyed redis add-on, which `cache` was restored from.
    const backup = (await backupsOf('vault')).find((b) => b.kind === 'redis');
    assert.ok(backup);
    const { dataDir: dir } = await stop('vault', 'cache');
    writeFileSync(join(dir, 'appendonlydir', 'appendonly.aof.manifest'), 'this is not a manifest\n');
    const failed = await refused('addons', 'start', 'vault', 'cache');
    assert.match(failed, /vault\/cache: failed to start/);
    assert.match(failed, /manifest/i, 'the server log says what is wrong');
    assert.equal((await addon('vault', 'cache')).state, 'unavailable');
    await cli('addons', 'restore', 'vault', 'cache', backup.id);
    assert.equal((await addon('vault', 'cache')).state, 'available');
    assert.equal(await redis(await reveal('vault', 'REDIS_URL'), 'GET', 'greeting'), 'kept across a destroy');
  });

  it('fails a backup on a full disk: no file left, no record, the server still running', async (t) => {
    await create('full', 'redis');
    const dir = join(dataDir, 'addons', 'backups', 'full');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      await run('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', dir]);
    } catch (error) {
      t.skip(`a full disk is a 64 KiB tmpfs, which only root can mount (${String(error).split('\n')[0]})`);
      return;
    }
    try {
      const url = await reveal('full', 'REDIS_URL');
      // Random bytes do not compress: an RDB of 256 KiB.
      await redis(url, 'SET', 'big', randomBytes(192 * 1024).toString('base64'));
      const failed = await refused('addons', 'backup', 'full', 'redis');
      assert.match(failed, /backup of full\/redis failed: .*no backup file was kept/);
      assert.deepEqual(readdirSync(dir), []);
      assert.deepEqual(await backupsOf('full'), []);
      const view = await addon('full', 'redis');
      assert.equal(view.state, 'available');
      assert.equal(await redis(url, 'STRLEN', 'big'), 262144);
    } finally {
      await run('umount', [dir]);
    }
  });

  it('puts a consistent dump of every add-on into berth backup, and berth restore brings their data back', async () => {
    const file = join(tempDir('berth-addons-backup-'), 'berth.tar.gz');
    await cli('backup', file);
    const { stdout } = await run('tar', ['-tzf', file]);
    for (const entry of [
      'addons/snapshots/vault/cache.rdb',
      'addons/snapshots/vault/books.dump',
      'addons/backups/vault/',
    ])
      assert.ok(
        stdout.split('\n').some((line) => line.includes(entry)),
        `${entry} in:\n${stdout}`,
      );
    // Another Berth from that file, beside this one: its servers start from the dumps (on other ports).
    // Inside a directory the add-on servers' user may pass (mkdtemp makes it 0700; Berth's own data dir it opens).
    const parent = tempDir('berth-addons-restored-');
    chmodSync(parent, 0o711);
    const restoredDir = join(parent, 'data');
    const restored = await runCli(restoredDir, [
      'restore',
      file,
      '--master-key-file',
      join(dataDir, 'master.key'),
    ]);
    assert.equal(restored.code, 0, restored.stderr);
    const second = await startControlPlane(restoredDir);
    try {
      const revived = await waitFor(
        'the restored add-ons to run',
        async () => {
          const list = await second.client.request<AddonView[]>('GET', '/v1/apps/vault/addons');
          return list.length === 2 && list.every((a) => a.state === 'available') ? list : undefined;
        },
        90_000,
        // Every 200 ms: the servers start from their dumps (an initdb and a pg_restore), which takes seconds.
        200,
      );
      const originals = await addons('vault');
      for (const a of revived) assert.ok(a.dataDir.startsWith(restoredDir), a.dataDir);
      assert.ok(revived.every((a) => originals.every((o) => o.port !== a.port)));
      const secret = async (name: string) =>
        (await second.client.request<{ value: string }>('POST', `/v1/apps/vault/secrets/${name}/reveal`, {}))
          .value;
      assert.equal(await redis(await secret('REDIS_URL'), 'GET', 'greeting'), 'kept across a destroy');
      assert.equal(
        await psql(await secret('DATABASE_URL'), "SELECT string_agg(body, ',' ORDER BY id) FROM entries"),
        'one,two',
      );
    } finally {
      await shutDownWithAddons(second, restoredDir);
    }
  });
});
