// Side-by-side proxy benchmark: the same backend direct, through Berth, nginx and haproxy, with wrk, interleaved rounds.
// Over HTTP or TLS (the same P-256 certificate everywhere), keep-alive or a new connection per request, with the
// same number of workers for each proxy.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { join } from 'node:path';
import { ProxyAdminClient } from '../../src/domain/proxy-admin-client.js';
import { proxyPaths } from '../../src/domain/proxy-paths.js';
import { LocalCa } from '../../src/proxy/local-ca.js';
import { StickyCookie } from '../../src/proxy/sticky-cookie.js';
import {
  cpuSeconds,
  cpuSplit,
  descendants,
  firstJsonLine,
  median,
  scratchDir,
  start,
  startKeeper,
  stop,
  stopAll,
} from '../processes.js';

const DURATION = process.env.BENCH_DURATION ?? '10s';
const WARMUP = process.env.BENCH_WARMUP ?? '3s';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const THREADS = Number(process.env.BENCH_THREADS ?? 2);
const MODES = (process.env.BENCH_MODES ?? 'hello,work').split(',');
/** Worker processes (threads for haproxy) of every proxy: Berth's keeper `--workers`, nginx `worker_processes`. */
const WORKERS = Number(process.env.BENCH_WORKERS ?? 1);
/** `https`: wrk speaks TLS to the proxies (the backend, and so `direct`, stays plain HTTP). */
const PROTO = process.env.BENCH_PROTO === 'https' ? 'https' : 'http';
/** `1`: `Connection: close` on every request, so each one is a new connection (a new, resumed, TLS session). */
const CLOSE = process.env.BENCH_CLOSE === '1';
/** Another build of Berth (a checkout with dist/, e.g. main) measured as setup `base`, to compare two builds. */
const BASE_DIR = process.env.BENCH_BASE_DIR;
const SETUPS = (
  process.env.BENCH_SETUPS ?? `direct,berth,${BASE_DIR === undefined ? '' : 'base,'}nginx,haproxy`
).split(',');
/** Before a measured run, wait (up to QUIET_MAX_S) until other work on the machine is below QUIET_PCT of a core. */
const QUIET_PCT = Number(process.env.BENCH_QUIET_PCT ?? 25);
const QUIET_MAX_S = Number(process.env.BENCH_QUIET_MAX_S ?? 20);
/** A run during which other work used more than OTHER_PCT of a core is repeated once; the cleaner one is kept. */
const OTHER_PCT = Number(process.env.BENCH_OTHER_PCT ?? 30);
const ROOT = join(import.meta.dirname, '..', '..');
const HOST = 'bench.localhost';
/**
 * `tls`: the backend is an HTTPS server with its own CA (an external origin, as `origins:` declares one); every proxy
 * connects to it with SNI `ORIGIN_HOST`, verifies its certificate against that CA and sends Host `ORIGIN_HOST`.
 */
const UPSTREAM = process.env.BENCH_UPSTREAM ?? 'http';
const ORIGIN_HOST = 'origin.bench.test';
/**
 * Sticky sessions: Berth's route splits 90/10 between two groups (the same backend) with `stickiness`, haproxy's
 * backend between two servers with `cookie SERVERID insert indirect nocache`, and every request carries a cookie that
 * pins it to the 90 side (with an unrelated session cookie before it, as browsers send).
 */
const STICKY = process.env.BENCH_STICKY === '1';
/**
 * `1`: nginx sends the upstream the forwarding headers Berth sends (X-Forwarded-For, -Proto, -Host, -Port and a
 * request id) and returns the request id, so both do the same work and the backend parses the same head.
 */
const FORWARDED = process.env.BENCH_FORWARDED === '1';
/** The Cookie header of sticky runs; Berth's token is known once its proxy has made its key. */
let stickyCookie = '';

const dir = scratchDir('berth-bench-');
/** The origin's CA and certificate files when `BENCH_UPSTREAM=tls`. */
let tls: { ca: string; cert: string; key: string } | undefined;

async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** haproxy wants the certificate and its key in one file. */
function haproxyPem(): string {
  const pem = join(dir, 'haproxy.pem');
  writeFileSync(pem, readFileSync(tlsFiles!.cert, 'utf8') + readFileSync(tlsFiles!.key, 'utf8'));
  return pem;
}

async function waitReady(port: number, host = HOST, proto: 'http' | 'https' = 'http'): Promise<void> {
  const deadline = Date.now() + 15_000;
  const client = proto === 'https' ? https : http;
  for (;;) {
    const status = await new Promise<number>((resolve) => {
      const options = {
        host: '127.0.0.1',
        port,
        path: '/',
        headers: { host },
        agent: false,
        rejectUnauthorized: false,
      };
      const req = client.get(options, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
    });
    if (status === 200) return;
    if (Date.now() > deadline) throw new Error(`port ${port} not ready`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** CPU seconds (user+sys) of a process and its children threads, from /proc. */
interface Sample {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  cpuUsPerReq: number;
  /** The user-space part of `cpuUsPerReq` (the rest is the kernel's: syscalls, TCP, TLS-free loopback). */
  userUsPerReq: number;
  /** Other work on the machine during the run, % of one core (noise indicator). */
  foreignPct: number;
}

function parseLatency(text: string, pct: string): number {
  const m = new RegExp(`^\\s+${pct}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(text);
  if (m === null) return Number.NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

/**
 * CPU seconds that processes used on the whole machine (user + nice + system, all cores), from /proc/stat.
 * Interrupt and softirq time is left out: loopback networking is accounted there, not to the processes, and it
 * would make the benchmark's own traffic look like foreign load.
 */
function machineBusySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return ((fields[0] ?? 0) + (fields[1] ?? 0) + (fields[2] ?? 0)) / 100;
}

/** CPU seconds of this harness and its waited-for children (wrk), from /proc/self/stat. */
function selfAndChildrenSeconds(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / 100;
}

/** Other work on the machine over one second, in % of one core (the benchmark's own processes excluded). */
async function foreignLoad(pids: number[]): Promise<number> {
  const own0 = cpuSeconds([...benchPids, ...pids]) + selfAndChildrenSeconds();
  const busy0 = machineBusySeconds();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const own = cpuSeconds([...benchPids, ...pids]) + selfAndChildrenSeconds() - own0;
  return Math.max(0, (machineBusySeconds() - busy0 - own) * 100);
}

async function waitQuiet(pids: number[]): Promise<void> {
  const deadline = Date.now() + QUIET_MAX_S * 1000;
  while (Date.now() < deadline) if ((await foreignLoad(pids)) < QUIET_PCT) return;
}

/** Pids whose CPU counts as the benchmark's own (backend); set per mode. */
let benchPids: number[] = [];
/** The certificate every TLS listener serves when `BENCH_PROTO=https`: Berth's default one (P-256, its local CA). */
let tlsFiles: { cert: string; key: string } | undefined;

function wrk(port: number, duration: string, pids: number[], scheme: string): Sample {
  const before = cpuSplit(pids);
  const ownBefore = cpuSeconds(benchPids) + selfAndChildrenSeconds();
  const busyBefore = machineBusySeconds();
  const started = Date.now();
  const out = execFileSync(
    'wrk',
    [
      `-t${THREADS}`,
      `-c${CONNECTIONS}`,
      `-d${duration}`,
      '--latency',
      '-H',
      `Host: ${HOST}`,
      ...(CLOSE ? ['-H', 'Connection: close'] : []),
      ...(STICKY ? ['-H', `Cookie: ${stickyCookie}`] : []),
      `${scheme}://127.0.0.1:${port}/`,
    ],
    { encoding: 'utf8' },
  );
  const after = cpuSplit(pids);
  const user = after.user - before.user;
  const cpu = user + after.sys - before.sys;
  const elapsed = (Date.now() - started) / 1000;
  const own = cpuSeconds(benchPids) + selfAndChildrenSeconds() - ownBefore + cpu;
  // CPU used by anything else on the machine during the run, in % of one core (this box has 200 %).
  const foreign = Math.max(0, ((machineBusySeconds() - busyBefore - own) / elapsed) * 100);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = sockErr ? sockErr.slice(1).reduce((s, x) => s + Number(x), 0) : 0;
  const errors = non2xx + socketErrors;
  if (errors > 0)
    process.stderr.write(`  wrk: ${non2xx} non-2xx responses, socket errors: ${sockErr?.[0] ?? 'none'}\n`);
  return {
    rps,
    p50: parseLatency(out, '50'),
    p99: parseLatency(out, '99'),
    errors,
    cpuUsPerReq: pids.length === 0 || total === 0 ? 0 : (cpu * 1e6) / total,
    userUsPerReq: pids.length === 0 || total === 0 ? 0 : (user * 1e6) / total,
    foreignPct: foreign,
  };
}

interface Setup {
  name: string;
  port: number;
  /** How wrk reaches it: `BENCH_PROTO` for the proxies; for `direct`, the backend's own. */
  scheme: string;
  pids: number[];
  stop(): Promise<void>;
}

/**
 * Node's floor (`pipe-floor-server.ts`): a relay that parses nothing, plain HTTP to the backend. With
 * `BENCH_PROTO=https` it terminates TLS with Berth's certificate (list `berth` before `floor`); with
 * `BENCH_FORWARDED=1` it adds Berth's forwarding headers and request id, so it does Berth's wire work and no more.
 */
async function startFloor(backendPort: number): Promise<Setup> {
  if (tls !== undefined || STICKY) throw new Error('setup floor: no BENCH_UPSTREAM=tls or BENCH_STICKY');
  if (PROTO === 'https' && tlsFiles === undefined)
    throw new Error(
      'setup floor over https: list berth before floor in BENCH_SETUPS (its certificate is used)',
    );
  const child = start(process.execPath, [
    join(import.meta.dirname, 'pipe-floor-server.js'),
    String(backendPort),
    FORWARDED ? 'forwarded' : 'plain',
    ...(PROTO === 'https' ? [tlsFiles!.cert, tlsFiles!.key] : []),
  ]);
  const ready = await firstJsonLine<{ port: number }>(child, '"listening"');
  await waitReady(ready.port, HOST, PROTO);
  return { name: 'floor', port: ready.port, scheme: PROTO, pids: [child.pid!], stop: () => stop(child) };
}

async function startBerth(backendPort: number, name = 'berth', root = ROOT): Promise<Setup> {
  const dataDir = join(dir, name);
  const child = startKeeper(root, dataDir, WORKERS, ['--no-redirect']);
  const ready = await firstJsonLine<{ http: number; https: number }>(child, '"listening"');
  tlsFiles ??= {
    cert: join(proxyPaths(dataDir).dir, 'certs', 'localhost.crt'),
    key: join(proxyPaths(dataDir).dir, 'certs', 'localhost.key'),
  };
  const admin = new ProxyAdminClient(proxyPaths(dataDir).adminSocket);
  // Health checks on (every second), metrics are always on.
  const group = (name: string) => ({
    name,
    health: { path: '/health', intervalMs: 1000, timeoutMs: 500 },
    ...(tls === undefined ? {} : { origin: { host: ORIGIN_HOST, ca: readFileSync(tls.ca, 'utf8') } }),
    targets: [{ id: 'b1', host: '127.0.0.1', port: backendPort }],
  });
  await admin.putRouteTable(
    STICKY
      ? {
          routes: [
            {
              host: HOST,
              stickiness: { durationS: 3600 },
              backends: [
                { targetGroup: 'bench', weight: 90 },
                { targetGroup: 'canary', weight: 10 },
              ],
            },
          ],
          targetGroups: [group('bench'), group('canary')],
        }
      : { routes: [{ host: HOST, backends: [{ targetGroup: 'bench' }] }], targetGroups: [group('bench')] },
  );
  if (STICKY) {
    const token = StickyCookie.fromFile(join(proxyPaths(dataDir).dir, 'sticky-cookie.key')).token('bench');
    stickyCookie = `session=3f1c9a7e0b2d4c6e8f; berth-tg=${token}; SERVERID=s1`;
  }
  await waitReady(ready.http);
  return {
    name,
    port: PROTO === 'https' ? ready.https : ready.http,
    scheme: PROTO,
    pids: [child.pid!, ...descendants(child.pid!)],
    stop: () => stop(child),
  };
}

async function startNginx(backendPort: number): Promise<Setup> {
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
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  upstream backend {
    server 127.0.0.1:${backendPort};
    keepalive 128;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${port}${PROTO === 'https' ? ' ssl' : ''};
    ${PROTO === 'https' ? `ssl_certificate ${tlsFiles!.cert}; ssl_certificate_key ${tlsFiles!.key};` : ''}
    location / {
      proxy_pass ${tls === undefined ? 'http' : 'https'}://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";${
        FORWARDED
          ? `
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Request-Id $request_id;
      add_header X-Request-Id $request_id always;`
          : ''
      }${
        tls === undefined
          ? ''
          : `
      proxy_set_header Host ${ORIGIN_HOST};
      proxy_ssl_server_name on;
      proxy_ssl_name ${ORIGIN_HOST};
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ${tls.ca};
      proxy_ssl_session_reuse on;`
      }
    }
  }
}
`,
  );
  const child = start('nginx', ['-c', join(ndir, 'nginx.conf'), '-p', ndir]);
  await waitReady(port, HOST, PROTO);
  return {
    name: 'nginx',
    port,
    scheme: PROTO,
    pids: [child.pid!, ...descendants(child.pid!)],
    stop: () => stop(child),
  };
}

async function startHaproxy(backendPort: number): Promise<Setup> {
  const port = await freePort();
  const cfg = join(dir, 'haproxy.cfg');
  const upstreamTls =
    tls === undefined ? '' : ` ssl verify required ca-file ${tls.ca} sni str(${ORIGIN_HOST})`;
  writeFileSync(
    cfg,
    `global
  nbthread ${WORKERS}
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:${port}${PROTO === 'https' ? ` ssl crt ${haproxyPem()}` : ''}
  default_backend be
backend be
  balance roundrobin
${
  STICKY
    ? `  cookie SERVERID insert indirect nocache
  server s1 127.0.0.1:${backendPort} weight 90 cookie s1${upstreamTls}
  server s2 127.0.0.1:${backendPort} weight 10 cookie s2${upstreamTls}`
    : `  server s1 127.0.0.1:${backendPort}${upstreamTls}`
}${tls === undefined ? '' : `\n  http-request set-header Host ${ORIGIN_HOST}`}
`,
  );
  const child = start('haproxy', ['-db', '-f', cfg]);
  await waitReady(port, HOST, PROTO);
  return { name: 'haproxy', port, scheme: PROTO, pids: [child.pid!], stop: () => stop(child) };
}

const fmt = (n: number, digits = 2) => (Number.isNaN(n) ? '–' : n.toFixed(digits));

async function benchMode(mode: string): Promise<string> {
  const backend = start(process.execPath, [join(import.meta.dirname, 'backend.js')], {
    env: { MODE: mode, ...(tls === undefined ? {} : { TLS_CERT: tls.cert, TLS_KEY: tls.key }) },
  });
  const { port: backendPort } = await firstJsonLine<{ port: number }>(backend, '"port"');
  benchPids = [backend.pid!];
  const setups: Setup[] = [];
  for (const name of SETUPS) {
    if (name === 'direct') {
      setups.push({
        name,
        port: backendPort,
        pids: [],
        scheme: tls === undefined ? 'http' : 'https',
        stop: async () => {},
      });
    } else if (name === 'berth') setups.push(await startBerth(backendPort));
    else if (name === 'base' && BASE_DIR !== undefined)
      setups.push(await startBerth(backendPort, 'base', join(BASE_DIR, 'dist')));
    else if (name === 'floor') setups.push(await startFloor(backendPort));
    else if (name === 'nginx') setups.push(await startNginx(backendPort));
    else if (name === 'haproxy') setups.push(await startHaproxy(backendPort));
  }
  const samples = new Map<string, Sample[]>(setups.map((s) => [s.name, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const setup of setups) {
      wrk(setup.port, WARMUP, [], setup.scheme);
      await waitQuiet(setup.pids);
      let sample = wrk(setup.port, DURATION, setup.pids, setup.scheme);
      if (sample.foreignPct > OTHER_PCT) {
        await waitQuiet(setup.pids);
        const again = wrk(setup.port, DURATION, setup.pids, setup.scheme);
        if (again.foreignPct < sample.foreignPct) sample = again;
      }
      samples.get(setup.name)!.push(sample);
      process.stderr.write(
        `[${mode} round ${round}] ${setup.name.padEnd(8)} ${fmt(sample.rps, 0)} req/s p50 ${fmt(sample.p50)} ms p99 ${fmt(sample.p99)} ms` +
          ` errors ${sample.errors} cpu ${fmt(sample.cpuUsPerReq, 1)} µs/req (user ${fmt(sample.userUsPerReq, 1)}) other ${fmt(sample.foreignPct, 0)} %\n`,
      );
    }
  }
  for (const setup of setups) await setup.stop();
  await stop(backend);

  const perRound = (a: string, b: string, f: (s: Sample) => number) => {
    const xs = samples.get(a);
    const ys = samples.get(b);
    if (xs === undefined || ys === undefined) return Number.NaN;
    return median(xs.map((x, i) => f(x) / f(ys[i]!)));
  };
  const added = (name: string) => {
    const xs = samples.get(name);
    const ys = samples.get('direct');
    if (xs === undefined || ys === undefined) return Number.NaN;
    return median(xs.map((x, i) => (x.p50 - ys[i]!.p50) * 1000));
  };
  const lines = [
    `### backend "${mode}"${tls === undefined ? '' : ' over TLS (an external origin)'}${STICKY ? ', sticky route (90/10, pinned cookie)' : ''}, ` +
      `clients over ${PROTO}${CLOSE ? ' (Connection: close)' : ' keep-alive'}, ${WORKERS} worker(s) each, ` +
      `wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION}, ${ROUNDS} interleaved rounds (medians)`,
    '',
    '| setup | req/s | p50 ms | p99 ms | p50 − direct µs | proxy CPU µs/req | of which user | other CPU % | errors | req/s ÷ nginx | CPU/req ÷ nginx | p99 ÷ nginx | req/s ÷ haproxy | req/s ÷ direct |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const setup of setups) {
    const s = samples.get(setup.name)!;
    lines.push(
      `| ${setup.name} | ${fmt(median(s.map((x) => x.rps)), 0)} | ${fmt(median(s.map((x) => x.p50)))} | ${fmt(median(s.map((x) => x.p99)))} | ` +
        `${setup.name === 'direct' ? '–' : fmt(added(setup.name), 0)} | ` +
        `${setup.pids.length === 0 ? '–' : fmt(median(s.map((x) => x.cpuUsPerReq)), 1)} | ` +
        `${setup.pids.length === 0 ? '–' : fmt(median(s.map((x) => x.userUsPerReq)), 1)} | ${fmt(median(s.map((x) => x.foreignPct)), 0)} | ` +
        `${s.reduce((n, x) => n + x.errors, 0)} | ` +
        `${fmt(perRound(setup.name, 'nginx', (x) => x.rps))} | ${fmt(perRound(setup.name, 'nginx', (x) => x.cpuUsPerReq))} | ${fmt(perRound(setup.name, 'nginx', (x) => x.p99))} | ` +
        `${fmt(perRound(setup.name, 'haproxy', (x) => x.rps))} | ${fmt(perRound(setup.name, 'direct', (x) => x.rps))} |`,
    );
  }
  lines.push(
    '',
    `Berth ÷ nginx: throughput ${fmt(perRound('berth', 'nginx', (x) => x.rps))}, CPU per request ${fmt(perRound('berth', 'nginx', (x) => x.cpuUsPerReq))}, p99 ${fmt(perRound('berth', 'nginx', (x) => x.p99))}; ` +
      `Berth ÷ haproxy: ${fmt(perRound('berth', 'haproxy', (x) => x.rps))}; Berth ÷ direct: ${fmt(perRound('berth', 'direct', (x) => x.rps))} ` +
      '(ratios are medians of per-round ratios).',
    ...(samples.has('base')
      ? [
          `Berth ÷ base (${BASE_DIR}): throughput ${fmt(perRound('berth', 'base', (x) => x.rps))}, ` +
            `proxy CPU per request ${fmt(perRound('berth', 'base', (x) => x.cpuUsPerReq))}.`,
        ]
      : []),
    '',
  );
  return lines.join('\n');
}

async function main(): Promise<void> {
  for (const tool of ['wrk', ...SETUPS.filter((s) => s === 'nginx' || s === 'haproxy')]) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`]);
    } catch {
      console.error(`${tool} is not installed (apt-get install -y wrk nginx haproxy)`);
      process.exit(2);
    }
  }
  if (UPSTREAM === 'tls') {
    const ca = new LocalCa(join(dir, 'origin-ca'));
    await ca.ensure();
    const leaf = await ca.issue(join(dir, 'origin-ca', 'origin'), [ORIGIN_HOST]);
    tls = { ca: ca.paths.cert, cert: leaf.cert, key: leaf.key };
  }
  const reports: string[] = [];
  for (const mode of MODES) reports.push(await benchMode(mode));
  console.log(`\n${reports.join('\n')}`);
  stopAll();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
