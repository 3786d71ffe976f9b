// Integration: add-ons with real redis-server and PostgreSQL 15 under a real control plane, proxy and example app:
// provisioned from berth.yaml, used by examples/notes, killed, rotated under load, re-adopted.
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { AddonInfo } from '../src/control/addons/addon-service.js';
import { RedisConnection } from '../src/control/addons/redis-connection.js';
import type { AddonBackupView } from '../src/domain/addon.js';
import type { MetricSeries } from '../src/domain/metrics-types.js';
import { proxyPaths } from '../src/domain/proxy-paths.js';
import {
  addonClient,
  loopbackListeners,
  psql,
  redis,
  serverPid,
  shutDownWithAddons,
  skip,
} from './addon-harness.js';
import {
  type ControlPlaneProcess,
  processExists,
  startControlPlane,
  tempDir,
  waitFor,
} from './control-harness.js';
import { answersAfter, LoadClient } from './load-client.js';

const NOTES = fileURLToPath(new URL('../../examples/notes', import.meta.url));

/** examples/notes with health checks fast enough for a test: its berth.yaml otherwise as shipped. */
function notesApp(): string {
  const dir = tempDir('berth-notes-');
  cpSync(NOTES, dir, { recursive: true });
  const spec = readFileSync(join(dir, 'berth.yaml'), 'utf8')
    .replace(
      /health: \{[^}]*\}/,
      'health: { path: /health, interval: 500ms, timeout: 400ms, healthy: 1, unhealthy: 3, grace: 10s }',
    )
    .replace(/deploy: \{[^}]*\}/, 'deploy: { drain: 1s, stopTimeout: 5s }')
    // One instance of web, not two: each is a Node process with its own Redis and PostgreSQL connections, started
    // again at every roll of this file (six of them); the promises tested hold the same for one.
    .replace('instances: 2', 'instances: 1')
    .replace('cache: redis', 'cache: { kind: redis, backups: { every: 24h, keep: 2 } }');
  writeFileSync(join(dir, 'berth.yaml'), spec);
  return dir;
}

describe('add-ons: managed Redis and PostgreSQL', { skip }, () => {
  let dataDir: string;
  let plane: ControlPlaneProcess;
  let load: LoadClient;
  let app: string;
  const { cli, refused, addons, addon, reveal } = addonClient(
    () => dataDir,
    () => plane,
  );
  const eventKinds = async (kind: string): Promise<string[]> =>
    (await plane.client.events({ app: 'notes', limit: 1000 }))
      .filter((e) => e.kind === kind)
      .map((e) => e.message);
  const settled = (what: string) =>
    waitFor(
      what,
      async () => {
        const list = await addons('notes');
        return list.every((a) => a.state === 'available' && !a.rotating) &&
          (await plane.client.instances()).filter((i) => i.app === 'notes' && i.state === 'healthy')
            .length === 1
          ? list
          : undefined;
      },
      90_000,
      // Every 200 ms, not 50: these waits last seconds (restarts, rolls) and each poll is two API calls.
      200,
    );

  before(async () => {
    dataDir = tempDir('berth-addons-');
    plane = await startControlPlane(dataDir);
    load = new LoadClient(plane.proxyPorts.https, 'notes.localhost', proxyPaths(dataDir).caCert);
    app = notesApp();
  });

  after(async () => {
    load?.close();
    await shutDownWithAddons(plane, dataDir);
  });

  it('provisions the add-ons berth.yaml declares, on loopback with strong passwords, and the app uses them', async () => {
    await cli('deploy', app);
    const list = await addons('notes');
    assert.deepEqual(
      list.map((a) => [a.name, a.kind, a.state, a.as, a.declared]),
      [
        ['cache', 'redis', 'available', 'REDIS_URL', true],
        ['db', 'postgres', 'available', 'DATABASE_URL', true],
      ],
    );
    const listening = loopbackListeners();
    for (const a of list) {
      assert.ok(a.dataDir.startsWith(join(dataDir, 'addons')), a.dataDir);
      assert.ok(listening.has(a.port), `${a.name} listens on 127.0.0.1:${a.port}`);
    }
    // Redis: AOF on, a 256-bit password, nothing without it.
    const redisUrl = await reveal('notes', 'REDIS_URL');
    assert.match(redisUrl, /^redis:\/\/default:[A-Za-z0-9_-]{43}@127\.0\.0\.1:\d+$/);
    assert.ok(existsSync(join(list[0]!.dataDir, 'appendonlydir')));
    assert.match(readFileSync(join(list[0]!.dataDir, 'redis.conf'), 'utf8'), /^appendonly yes$/m);
    const anonymous = await RedisConnection.open(list[0]!.port);
    await assert.rejects(anonymous.command(['GET', 'visits']), /NOAUTH/);
    anonymous.close();
    // PostgreSQL: SCRAM only for TCP, a 256-bit password.
    const dbUrl = await reveal('notes', 'DATABASE_URL');
    assert.match(dbUrl, /^postgres:\/\/app_blue:[A-Za-z0-9_-]{43}@127\.0\.0\.1:\d+\/app$/);
    const hba = readFileSync(join(list[1]!.dataDir, 'data', 'pg_hba.conf'), 'utf8');
    assert.match(hba, /^host\s.*scram-sha-256$/m);
    assert.doesNotMatch(hba, /^host\s.*trust$/m);
    assert.equal(await psql(dbUrl, 'SHOW password_encryption'), 'scram-sha-256');
    await assert.rejects(
      psql(dbUrl.replace(/:[^:@/]+@/, ':wrong@'), 'SELECT 1'),
      /password authentication failed/,
    );
    // The app, through the proxy: a note in PostgreSQL, a counter in Redis.
    const note = await load.post('/notes', 'written before anything broke');
    assert.equal(note.status, 201, note.body);
    assert.equal(JSON.parse((await load.get('/visits')).body).visits, 1);
    assert.equal(await redis(redisUrl, 'GET', 'visits'), '1');
    // CPU and memory beside the app's services, once the metrics collector has sampled them (every 5 s).
    // Awaited through the API (a CLI process per poll costs more than the poll); then `berth top` shows them.
    await waitFor(
      'the add-ons sampled',
      async () => {
        const services = (await plane.client.request<MetricSeries[]>('GET', '/v1/top?window=1m'))
          .filter((s) => s.app === 'notes')
          .map((s) => s.service);
        return services.includes('addon:cache') && services.includes('addon:db') ? true : undefined;
      },
      15_000,
      250,
    );
    const top = await cli('top', '--once');
    assert.match(top, /notes\s+addon:cache\s/);
    assert.match(top, /notes\s+addon:db\s/);
  });

  it('refuses bad input and a destroy of a declared add-on, changing nothing', async () => {
    const before = await addons('notes');
    assert.match(await refused('addons', 'create', 'notes', 'mysql'), /unknown add-on kind "mysql"/);
    assert.match(
      await refused('addons', 'create', 'notes', 'redis', '--name', 'cache'),
      /already has an add-on named cache/,
    );
    assert.match(
      await refused('addons', 'create', 'notes', 'redis', '--name', 'Bad_Name'),
      /bad add-on name/,
    );
    assert.match(
      await refused('addons', 'create', 'notes', 'postgres', '--version', '9'),
      /unknown postgres version 9/,
    );
    assert.match(
      await refused('addons', 'create', 'notes', 'redis', '--name', 'c2'),
      /already given as REDIS_URL/,
    );
    assert.match(
      await refused('addons', 'create', 'notes', 'redis', '--name', 'c3', '--as', 'PORT'),
      /bad variable name/,
    );
    assert.match(await refused('addons', 'destroy', 'notes', 'cache'), /--confirm notes/);
    assert.match(
      await refused('addons', 'destroy', 'notes', 'cache', '--confirm', 'shop'),
      /--confirm notes/,
    );
    assert.match(
      await refused('addons', 'destroy', 'notes', 'cache', '--confirm', 'notes'),
      /declares add-on cache/,
    );
    assert.match(await refused('addons', 'destroy', 'notes', 'nope', '--confirm', 'notes'), /nope/);
    const now = await addons('notes');
    assert.deepEqual(
      now.map((a) => [a.name, a.state, a.pid]),
      before.map((a) => [a.name, a.state, a.pid]),
    );
    assert.equal(
      readdirSync(join(dataDir, 'addons', 'notes'))
        .sort()
        .join(','),
      'cache,db',
    );
  });

  it('restarts a server killed with SIGKILL, records it, and keeps its data (AOF, WAL)', async () => {
    const before = await addons('notes');
    const visits = Number(await redis(await reveal('notes', 'REDIS_URL'), 'GET', 'visits'));
    process.kill(serverPid(before[0]!.pid!, 'redis-server'), 'SIGKILL');
    process.kill(serverPid(before[1]!.pid!, 'postgres'), 'SIGKILL');
    const after = await waitFor(
      'both servers restarted',
      async () => {
        const list = await addons('notes');
        return list.every((a, i) => a.state === 'available' && a.pid !== null && a.pid !== before[i]!.pid)
          ? list
          : undefined;
      },
      60_000,
      200,
    );
    assert.equal(after.length, 2);
    const crashed = await eventKinds('addon.crashed');
    assert.ok(
      crashed.some((m) => m.includes('notes/cache')),
      crashed.join('\n'),
    );
    assert.ok(
      crashed.some((m) => m.includes('notes/db')),
      crashed.join('\n'),
    );
    await settled('the app healthy again');
    // The app's own database client reconnects on its next query after the server came back.
    const notes = await waitFor('the notes read again', async () => {
      const answer = await load.get('/notes');
      return answer.status === 200 ? (JSON.parse(answer.body) as { notes: { body: string }[] }) : undefined;
    });
    assert.deepEqual(
      notes.notes.map((n) => n.body),
      ['written before anything broke'],
    );
    const counted = await waitFor('the visit counter again', async () => {
      const answer = await load.get('/visits');
      return answer.status === 200 ? (JSON.parse(answer.body) as { visits: number }) : undefined;
    });
    assert.ok(counted.visits > visits);
  });

  it('rotates both passwords under load with no failed request, then revokes the old ones', async () => {
    await settled('nothing under way');
    const oldRedis = await reveal('notes', 'REDIS_URL');
    const oldDb = await reveal('notes', 'DATABASE_URL');
    const result = await load.during(
      async (sofar) => {
        for (const name of ['cache', 'db']) {
          await cli('addons', 'rotate', 'notes', name);
          await waitFor(
            `${name} rotated`,
            async () => ((await addon('notes', name)).rotating ? undefined : true),
            90_000,
            200,
          );
          await settled(`the app rolled onto the new ${name} URL`);
        }
        await answersAfter(sofar, Date.now());
        // Paced at 20 ms a connection, not 2: each request here is a proxy hop, a Redis INCR and a PostgreSQL query,
        // and the rotations last seconds. The load client still keeps a request in flight at every moment (a
        // connection sends at once when no other is waiting), so every instant of each cut-over is still covered;
        // 4 connections at >= 1 request per 20 ms + latency still give hundreds of answers over the rotations.
      },
      4,
      20,
    );
    assert.deepEqual(result.failures, []);
    assert.ok(result.answers.length > 50, `${result.answers.length} answers`);
    const newRedis = await reveal('notes', 'REDIS_URL');
    const newDb = await reveal('notes', 'DATABASE_URL');
    assert.notEqual(newRedis, oldRedis);
    assert.notEqual(newDb, oldDb);
    await assert.rejects(redis(oldRedis, 'PING'), /WRONGPASS|invalid/i);
    assert.equal(await redis(newRedis, 'PING'), 'PONG');
    await assert.rejects(psql(oldDb, 'SELECT 1'), /password authentication failed|not permitted to log in/);
    assert.equal(await psql(newDb, 'SELECT count(*) FROM notes'), '1');
  });

  it('re-adopts the running servers after a control-plane restart', async () => {
    const before = await addons('notes');
    await plane.stop();
    for (const a of before) assert.ok(processExists(a.pid!), `${a.name} outlives the control plane`);
    plane = await startControlPlane(dataDir);
    const after = await addons('notes');
    assert.deepEqual(
      after.map((a) => [a.name, a.state, a.pid]),
      before.map((a) => [a.name, 'available', a.pid]),
    );
    const adopted = await eventKinds('addon.adopted');
    assert.ok(adopted.filter((m) => m.startsWith('notes/')).length >= 2, adopted.join('\n'));
    assert.equal((await load.get('/')).status, 200);
  });

  it('finishes a rotation whose control plane was killed with SIGKILL midway', async () => {
    await settled('nothing under way');
    const rotating = plane.client
      .request('POST', '/v1/apps/notes/addons/cache/rotate', {})
      .catch(() => undefined);
    await waitFor(
      'the rotation to begin',
      async () => ((await addon('notes', 'cache')).rotating ? true : undefined),
      30_000,
    );
    plane.child.kill('SIGKILL');
    await rotating;
    plane = await startControlPlane(dataDir);
    await waitFor(
      'the rotation to end',
      async () => ((await addon('notes', 'cache')).rotating ? undefined : true),
      90_000,
      200,
    );
    await settled('the app on the new URL');
    // What the app was given is what the server takes, after a restart of the server too.
    const url = await reveal('notes', 'REDIS_URL');
    assert.equal(await redis(url, 'PING'), 'PONG');
    for (let i = 0; i < 10; i++) assert.equal((await load.get('/')).status, 200);
  });

  it('keeps the newest backups berth.yaml asks for (keep: 2), files and records', async () => {
    // Made through the API (`berth addons backup` is tested in addon-backups): the retention is what is checked here.
    for (let i = 0; i < 3; i++) await plane.client.request('POST', '/v1/apps/notes/addons/cache/backups', {});
    const kept = JSON.parse(await cli('addons', 'backups', 'notes', 'cache', '--json')) as AddonBackupView[];
    assert.equal(kept.length, 2);
    assert.deepEqual(
      readdirSync(join(dataDir, 'addons', 'backups', 'notes'))
        .filter((f) => f.startsWith('cache-'))
        .sort(),
      kept.map((b) => `${b.id}.rdb`).sort(),
    );
    assert.equal((await addon('notes', 'cache')).backups.keep, 2);
  });

  it('stops PostgreSQL with the app connected by a fast shutdown, not a SIGKILL, and starts it again with its data', async () => {
    await settled('the app connected to both servers');
    assert.equal((await load.get('/notes')).status, 200);
    await cli('addons', 'stop', 'notes', 'db');
    // A smart shutdown (SIGTERM) would wait for the app's connection until the 30 s SIGKILL, and log neither line.
    const info = await plane.client.request<AddonInfo>('GET', '/v1/apps/notes/addons/db');
    assert.equal(info.state, 'stopped');
    const log = info.logTail.join('\n');
    assert.match(log, /received fast shutdown request/);
    assert.match(log, /database system is shut down/);
    await cli('addons', 'start', 'notes', 'db');
    const notes = await waitFor('the notes read again', async () => {
      const answer = await load.get('/notes');
      return answer.status === 200 ? (JSON.parse(answer.body) as { notes: { body: string }[] }) : undefined;
    });
    assert.ok(notes.notes.some((n) => n.body === 'written before anything broke'));
  });
});
