// Add-on benchmark: time to provision a Redis and a PostgreSQL add-on against bringing up the bare server by hand,
// and the example app's Redis path (GET /visits through the proxy) with its add-on against the same app on a
// redis-server the benchmark started itself: the add-on must cost nothing per request.
// Run: npm run build && node dist/bench/addons/run.js [--rounds 3] [--duration 10s]
import { execFileSync } from 'node:child_process';
import { chownSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PostgresEngine } from '../../src/control/addons/postgres-engine.js';
import { RedisConnection } from '../../src/control/addons/redis-connection.js';
import { resolveServerUser } from '../../src/control/addons/server-user.js';
import type { AddonView } from '../../src/domain/addon.js';
import { allocatePort } from '../../src/lib/free-port.js';
import { runCli, shutDown, startControlPlane, waitFor } from '../../test/control-harness.js';
import { median, scratchDir, start, stop } from '../processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, duration: { type: 'string', default: '10s' } },
});
const ROUNDS = Number(values.rounds);
const DURATION = values.duration;
const PG_BIN = `/usr/lib/postgresql/${new PostgresEngine().versions()[0] ?? '15'}/bin`;

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** redis-server by hand (the peer of `berth addons create APP redis`): start, then PING answered. */
async function bareRedis(dir: string): Promise<{ ms: number; stop: () => Promise<void>; port: number }> {
  const started = Date.now();
  const port = await allocatePort();
  const child = start('redis-server', [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--appendonly',
    'yes',
    '--appendfsync',
    'everysec',
    '--requirepass',
    'bench-password-0123456789abcdef0123456789abcdef',
  ]);
  await waitFor(
    'redis-server to answer',
    async () => {
      try {
        const c = await RedisConnection.open(port, {
          password: 'bench-password-0123456789abcdef0123456789abcdef',
          timeoutMs: 200,
        });
        c.close();
        return true;
      } catch {
        return undefined;
      }
    },
    10_000,
    10,
  );
  return { ms: Date.now() - started, port, stop: () => stop(child) };
}

/** initdb, then postgres started and answering (pg_isready), as the user add-on servers run as. */
async function barePostgres(dir: string): Promise<number> {
  const user = resolveServerUser();
  chownSync(dir, user.uid, user.gid);
  const started = Date.now();
  const data = join(dir, 'data');
  // As the server user (setpriv …), the way Berth runs them: postgres refuses to run as root.
  const argv = (cmd: string, args: string[]): [string, string[]] => {
    const all = [...user.prefix, cmd, ...args];
    return [all[0]!, all.slice(1)];
  };
  execFileSync(
    ...argv(`${PG_BIN}/initdb`, [
      '-D',
      data,
      '-U',
      'postgres',
      '--auth-local=peer',
      '--auth-host=reject',
      '--encoding=UTF8',
      '--locale=C.UTF-8',
      '--no-instructions',
    ]),
    {
      stdio: 'ignore',
    },
  );
  const port = await allocatePort();
  const child = start(
    ...argv(`${PG_BIN}/postgres`, [
      '-D',
      data,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `port=${port}`,
      '-c',
      `unix_socket_directories=${dir}`,
    ]),
  );
  await waitFor(
    'postgres to answer',
    () => {
      try {
        execFileSync(`${PG_BIN}/pg_isready`, ['-h', '127.0.0.1', '-p', String(port), '-t', '1'], {
          stdio: 'ignore',
        });
        return true;
      } catch {
        return undefined;
      }
    },
    30_000,
    20,
  );
  const ms = Date.now() - started;
  await stop(child);
  return ms;
}

function wrk(port: number, host: string): { rps: number; p50: string; p99: string; errors: number } {
  const out = execFileSync(
    'wrk',
    ['-t2', '-c32', `-d${DURATION}`, '--latency', '-H', `Host: ${host}`, `https://127.0.0.1:${port}/visits`],
    { encoding: 'utf8' },
  );
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
    p50: /\s50%\s+(\S+)/.exec(out)?.[1] ?? '?',
    p99: /\s99%\s+(\S+)/.exec(out)?.[1] ?? '?',
    errors: non2xx + (sock ? sock.slice(1).reduce((s, x) => s + Number(x), 0) : 0),
  };
}

function notesApp(app: string, ownServers: boolean): string {
  const dir = scratchDir(`berth-bench-${app}-`);
  cpSync(join(ROOT, 'examples/notes'), dir, { recursive: true });
  let spec = readFileSync(join(dir, 'berth.yaml'), 'utf8')
    .replace('app: notes', `app: ${app}`)
    .replace('host: notes.localhost', `host: ${app}.localhost`);
  // The same app on servers it was given by hand: no add-ons, the URLs as config vars (set before the deploy).
  // Its release phase (the notes table) is left out: the measured path, GET /visits, uses Redis only.
  if (ownServers) {
    spec = spec.replace(/addons:\n( {2}.*\n)+/, '');
    writeFileSync(join(dir, 'Procfile'), 'web: node server.js\n');
  }
  writeFileSync(join(dir, 'berth.yaml'), spec);
  return dir;
}

async function main(): Promise<void> {
  for (const tool of ['wrk', 'redis-server', `${PG_BIN}/initdb`]) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      console.error(`${tool} is not installed (apt-get install -y wrk redis-server postgresql)`);
      process.exit(2);
    }
  }
  const dataDir = scratchDir('berth-bench-addons-');
  const plane = await startControlPlane(dataDir, 30_000);
  const cli = async (...args: string[]): Promise<string> => {
    const r = await runCli(dataDir, args);
    if (r.code !== 0) throw new Error(`berth ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const created: [string, string][] = [];
  try {
    // Provisioning, interleaved with the bare servers.
    const times: Record<string, number[]> = {
      redis: [],
      'bare redis': [],
      postgres: [],
      'bare postgres': [],
    };
    for (let round = 0; round < ROUNDS; round++) {
      for (const kind of ['redis', 'postgres'] as const) {
        const started = Date.now();
        await plane.client.request<AddonView>('POST', '/v1/apps/provision/addons', {
          kind,
          name: `${kind}-${round}`,
          as: `${kind.toUpperCase()}_${round}_URL`,
        });
        times[kind]!.push(Date.now() - started);
        created.push(['provision', `${kind}-${round}`]);
      }
      const bare = await bareRedis(scratchDir('berth-bench-redis-'));
      times['bare redis']!.push(bare.ms);
      await bare.stop();
      times['bare postgres']!.push(await barePostgres(scratchDir('berth-bench-pg-')));
    }
    console.log(JSON.stringify({ provisioningMs: times }));

    // Request path: the example app with its add-ons vs the same app on a redis-server started here.
    await cli('deploy', notesApp('notes', false));
    created.push(['notes', 'cache'], ['notes', 'db']);
    const own = await bareRedis(scratchDir('berth-bench-own-redis-'));
    const dbUrl = (await cli('secrets', 'get', 'notes', 'DATABASE_URL', '--reveal')).trim();
    await cli(
      'config',
      'set',
      'mine',
      `REDIS_URL=redis://default:bench-password-0123456789abcdef0123456789abcdef@127.0.0.1:${own.port}`,
      `DATABASE_URL=${dbUrl}`,
    );
    await cli('deploy', notesApp('mine', true));
    const port = plane.proxyPorts.https;
    wrk(port, 'notes.localhost');
    wrk(port, 'mine.localhost');
    const samples: Record<string, ReturnType<typeof wrk>[]> = { addon: [], own: [] };
    for (let round = 0; round < ROUNDS; round++) {
      samples.addon!.push(wrk(port, 'notes.localhost'));
      samples.own!.push(wrk(port, 'mine.localhost'));
    }
    await own.stop();

    const load = execFileSync('uptime', { encoding: 'utf8' }).trim();
    const lines = [
      `### Add-ons, ${ROUNDS} interleaved rounds (medians); ${load}`,
      '',
      '| provisioning                                   | median  | min     | max     |',
      '| ---------------------------------------------- | ------- | ------- | ------- |',
      ...Object.entries(times).map(
        ([k, v]) =>
          `| ${k.padEnd(46)} | ${seconds(median(v)).padEnd(7)} | ${seconds(Math.min(...v)).padEnd(7)} | ${seconds(Math.max(...v)).padEnd(7)} |`,
      ),
      '',
      `redis add-on / bare redis-server: ${(median(times.redis!) / median(times['bare redis']!)).toFixed(2)}; ` +
        `postgres add-on / bare initdb + postgres: ${(median(times.postgres!) / median(times['bare postgres']!)).toFixed(2)}`,
      '',
      `| GET /visits through the proxy, wrk -t2 -c32 -d${DURATION} | req/s | p50 | p99 | errors |`,
      '| ------------------------------------------------- | ----- | --- | --- | ------ |',
      ...Object.entries(samples).map(
        ([k, v]) =>
          `| ${k === 'addon' ? 'REDIS_URL from the add-on' : 'REDIS_URL to a redis-server started by hand'} | ${median(v.map((s) => s.rps)).toFixed(0)} | ${v.map((s) => s.p50).join(' ')} | ${v.map((s) => s.p99).join(' ')} | ${v.reduce((s, x) => s + x.errors, 0)} |`,
      ),
      '',
      `add-on / own redis (req/s): ${(median(samples.addon!.map((s) => s.rps)) / median(samples.own!.map((s) => s.rps))).toFixed(3)}`,
    ];
    console.log(lines.join('\n'));
  } finally {
    await plane.client.downAll().catch(() => undefined);
    for (const a of await plane.client.request<AddonView[]>('GET', '/v1/addons').catch(() => [])) {
      if (a.state !== 'stopped') await runCli(dataDir, ['addons', 'stop', a.app, a.name]);
    }
    await shutDown(plane, dataDir);
  }
}

await main();
