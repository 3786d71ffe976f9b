// TLS handshakes per second through Berth's HTTPS listener and nginx, with the same ECDSA P-256 certificate (SNI):
// full handshakes and resumed ones (session tickets), interleaved rounds, server CPU per handshake from /proc; and a
// bare Node tls.Server (tls-floor-server.ts) with the same certificate: Node's floor, what Berth cannot go below.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { ProxyAdminClient } from '../../src/domain/proxy-admin-client.js';
import { proxyPaths } from '../../src/domain/proxy-paths.js';
import {
  cpuSeconds,
  descendants,
  firstJsonLine,
  median,
  scratchDir,
  start,
  startKeeper,
  stop,
  stopAll,
} from '../processes.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const HOST = 'bench.example.org';
/** Highest protocol the client offers (the client reads it too): TLSv1.3 (default) or TLSv1.2. */
const MAX_TLS = process.env.BENCH_MAX_TLS ?? 'TLSv1.3';
/** Worker processes of Berth (its keeper's `--workers`) and of nginx (`worker_processes`). */
const WORKERS = Number(process.env.BENCH_WORKERS ?? 1);
const dir = scratchDir('berth-bench-tls-');

interface Setup {
  name: string;
  port: number;
  pids: () => number[];
  stop(): Promise<void>;
}

interface Sample {
  rate: number;
  cpuUs: number;
  resumedShare: number;
  errors: number;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** One ECDSA P-256 certificate for HOST, from a CA of its own (the client verifies the chain and the name). */
function certificates(): { ca: string; cert: string; key: string } {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=bench CA']);
  run(['req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', `/CN=${HOST}`]);
  writeFileSync(join(dir, 'leaf.ext'), `subjectAltName=DNS:${HOST}\n`);
  run([
    'x509',
    '-req',
    '-in',
    'leaf.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'leaf.crt',
    '-days',
    '2',
    '-extfile',
    'leaf.ext',
  ]);
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 'leaf.crt'), key: join(dir, 'leaf.key') };
}

async function startBerth(cert: string, key: string): Promise<Setup> {
  const dataDir = join(dir, 'berth');
  // Ticket keys are the keeper's, shared by its workers.
  const child = startKeeper(join(import.meta.dirname, '..', '..'), dataDir, WORKERS);
  const ready = await firstJsonLine<{ https: number }>(child, '"listening"');
  const admin = new ProxyAdminClient(proxyPaths(dataDir).adminSocket);
  // What an ACME certificate becomes in the route table: files for the host.
  await admin.putRouteTable({
    routes: [{ host: HOST, backends: [{ targetGroup: 'bench' }] }],
    targetGroups: [{ name: 'bench', targets: [{ id: 'b1', host: '127.0.0.1', port: 9 }] }],
    certificates: [{ host: HOST, certFile: cert, keyFile: key }],
  });
  return {
    name: 'berth',
    port: ready.https,
    pids: () => [child.pid!, ...descendants(child.pid!)],
    stop: () => stop(child),
  };
}

async function startNodeFloor(cert: string, key: string): Promise<Setup> {
  const child = start(process.execPath, [join(import.meta.dirname, 'tls-floor-server.js'), cert, key]);
  const ready = await firstJsonLine<{ https: number }>(child, '"listening"');
  return { name: 'node', port: ready.https, pids: () => [child.pid!], stop: () => stop(child) };
}

async function startNginx(cert: string, key: string): Promise<Setup> {
  const port = await freePort();
  const ndir = join(dir, 'nginx');
  execFileSync('mkdir', ['-p', ndir]);
  writeFileSync(
    join(ndir, 'nginx.conf'),
    `daemon off;
master_process on;
worker_processes ${WORKERS};
pid ${ndir}/nginx.pid;
error_log ${ndir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${ndir}; proxy_temp_path ${ndir};
  fastcgi_temp_path ${ndir}; uwsgi_temp_path ${ndir}; scgi_temp_path ${ndir};
  server {
    listen 127.0.0.1:${port} ssl;
    server_name ${HOST};
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets on;
    location / { return 200 "hello"; }
  }
}
`,
  );
  const child = start('nginx', ['-c', join(ndir, 'nginx.conf'), '-p', ndir]);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) break;
    if (Date.now() > deadline) throw new Error('nginx did not listen');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    name: 'nginx',
    port,
    pids: () => [child.pid!, ...descendants(child.pid!)],
    stop: () => stop(child),
  };
}

async function measure(setup: Setup, ca: string, mode: 'full' | 'resumed', seconds: number): Promise<Sample> {
  const pids = setup.pids();
  const before = cpuSeconds(pids);
  const client = start(process.execPath, [
    join(import.meta.dirname, 'handshake-client.js'),
    String(setup.port),
    HOST,
    ca,
    mode,
    String(seconds),
    String(CONCURRENCY),
  ]);
  const result = await firstJsonLine<{
    handshakes: number;
    seconds: number;
    resumed: number;
    errors: number;
  }>(client, '"handshakes"');
  const cpu = cpuSeconds(pids) - before;
  await stop(client);
  return {
    rate: result.handshakes / result.seconds,
    cpuUs: result.handshakes === 0 ? Number.NaN : (cpu * 1e6) / result.handshakes,
    resumedShare: result.handshakes === 0 ? 0 : result.resumed / result.handshakes,
    errors: result.errors,
  };
}

const fmt = (n: number, digits = 0) => (Number.isNaN(n) ? '–' : n.toFixed(digits));

async function main(): Promise<void> {
  for (const tool of ['nginx', 'openssl']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`]);
    } catch {
      console.error(`${tool} is not installed (apt-get install -y nginx openssl)`);
      process.exit(2);
    }
  }
  const { ca, cert, key } = certificates();
  const setups = [await startBerth(cert, key), await startNodeFloor(cert, key), await startNginx(cert, key)];
  const samples = new Map<string, Sample[]>();
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mode of ['full', 'resumed'] as const) {
      for (const setup of setups) {
        await measure(setup, ca, mode, 1); // warm-up
        const sample = await measure(setup, ca, mode, SECONDS);
        const key = `${setup.name} ${mode}`;
        samples.set(key, [...(samples.get(key) ?? []), sample]);
        process.stderr.write(
          `[round ${round}] ${key.padEnd(14)} ${fmt(sample.rate)} handshakes/s, server CPU ${fmt(sample.cpuUs)} µs each, ` +
            `${fmt(sample.resumedShare * 100)} % resumed, ${sample.errors} errors\n`,
        );
      }
    }
  }
  for (const setup of setups) await setup.stop();
  const ratio = (a: string, b: string, f: (s: Sample) => number) =>
    median(samples.get(a)!.map((x, i) => f(x) / f(samples.get(b)![i]!)));
  const lines = [
    `### TLS handshakes (${MAX_TLS}), ECDSA P-256, ${WORKERS} worker(s) for Berth and nginx, ${CONCURRENCY} client connections at a time, ${SECONDS} s × ${ROUNDS} interleaved rounds (medians)`,
    '',
    '| setup | handshakes/s | server CPU µs/handshake | resumed | errors | rate ÷ nginx | CPU ÷ nginx |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const mode of ['full', 'resumed']) {
    for (const name of ['berth', 'node', 'nginx']) {
      const s = samples.get(`${name} ${mode}`)!;
      lines.push(
        `| ${name} ${mode} | ${fmt(median(s.map((x) => x.rate)))} | ${fmt(median(s.map((x) => x.cpuUs)))} | ` +
          `${fmt(median(s.map((x) => x.resumedShare * 100)))} % | ${s.reduce((n, x) => n + x.errors, 0)} | ` +
          `${fmt(
            ratio(`${name} ${mode}`, `nginx ${mode}`, (x) => x.rate),
            2,
          )} | ${fmt(
            ratio(`${name} ${mode}`, `nginx ${mode}`, (x) => x.cpuUs),
            2,
          )} |`,
      );
    }
  }
  lines.push(
    '',
    `Berth ÷ nginx, full handshakes: rate ${fmt(
      ratio('berth full', 'nginx full', (x) => x.rate),
      2,
    )}, server CPU ${fmt(
      ratio('berth full', 'nginx full', (x) => x.cpuUs),
      2,
    )}; ` +
      `resumed: rate ${fmt(
        ratio('berth resumed', 'nginx resumed', (x) => x.rate),
        2,
      )}. ` +
      `Berth resumed ÷ full: server CPU ${fmt(
        ratio('berth resumed', 'berth full', (x) => x.cpuUs),
        2,
      )}, rate ${fmt(
        ratio('berth resumed', 'berth full', (x) => x.rate),
        2,
      )}.`,
    `Berth ÷ bare Node (the floor: a tls.Server doing nothing with its connections), server CPU per handshake: full ${fmt(
      ratio('berth full', 'node full', (x) => x.cpuUs),
      2,
    )}, resumed ${fmt(
      ratio('berth resumed', 'node resumed', (x) => x.cpuUs),
      2,
    )}; bare Node ÷ nginx: full ${fmt(
      ratio('node full', 'nginx full', (x) => x.cpuUs),
      2,
    )}, resumed ${fmt(
      ratio('node resumed', 'nginx resumed', (x) => x.cpuUs),
      2,
    )}.`,
    '',
  );
  console.log(`\n${lines.join('\n')}`);
  stopAll();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
