// Metrics cost: proxy throughput with the control plane's collection on vs off (same run, interleaved rounds), and
// the collector's own CPU while it collects from 20 instances.
import { type ChildProcess, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProxyAdminClient } from '../../src/domain/proxy-admin-client.js';
import { proxyPaths } from '../../src/domain/proxy-paths.js';
import { firstJsonLine, median, scratchDir, start } from '../processes.js';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const INSTANCES = Number(process.env.BENCH_INSTANCES ?? 20);
/** Collection interval for the "on" rounds: 1 s, five times the default, so the cost shows if there is one. */
const INTERVAL_MS = Number(process.env.BENCH_COLLECT_INTERVAL_MS ?? 1000);
/** The compiled tree (dist/), where this file runs from. */
const ROOT = join(import.meta.dirname, '..', '..');
const HOST = 'bench.localhost';

const dir = scratchDir('berth-bench-metrics-');

function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

interface Round {
  rps: number;
  proxyUsPerReq: number;
  collectorPct: number;
}

async function measure(port: number, proxyPid: number, collector: ChildProcess | undefined): Promise<Round> {
  const proxyBefore = cpuSeconds(proxyPid);
  const collectorBefore = collector ? cpuSeconds(collector.pid!) : 0;
  const started = process.hrtime.bigint();
  const out = execFileSync(
    'wrk',
    ['-t2', `-c${CONNECTIONS}`, `-d${DURATION_S}s`, '-H', `Host: ${HOST}`, `http://127.0.0.1:${port}/`],
    { encoding: 'utf8' },
  );
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  return {
    rps,
    proxyUsPerReq: ((cpuSeconds(proxyPid) - proxyBefore) * 1e6) / Math.max(1, requests),
    collectorPct: collector ? (100 * (cpuSeconds(collector.pid!) - collectorBefore)) / wallS : 0,
  };
}

async function main(): Promise<void> {
  const backend = start(process.execPath, [join(ROOT, 'bench/metrics/backend.js')], { detached: true });
  const { ports } = await firstJsonLine<{ ports: number[] }>(backend, 'ports');
  const proxy = start(process.execPath, [
    join(ROOT, 'src/main/proxy.js'),
    '--data-dir',
    dir,
    '--http-port',
    '0',
    '--https-port',
    '0',
    '--no-redirect',
  ]);
  const listening = await firstJsonLine<{ http: number; pid: number }>(proxy, '"listening"');
  const admin = new ProxyAdminClient(proxyPaths(dir).adminSocket);
  await admin.putRouteTable({
    routes: [{ host: HOST, backends: [{ targetGroup: 'bench.web', weight: 1 }] }],
    targetGroups: [
      {
        name: 'bench.web',
        health: { path: '/', intervalMs: 1000, timeoutMs: 500 },
        targets: ports.map((port, i) => ({ id: `t-${i}`, host: '127.0.0.1', port })),
      },
    ],
  });
  const database = join(dir, 'metrics.db');
  const args = [
    database,
    proxyPaths(dir).adminSocket,
    String(INTERVAL_MS),
    String(INSTANCES),
    String(backend.pid),
  ];
  // Warm-up, also creating the store.
  execFileSync('wrk', [
    '-t2',
    `-c${CONNECTIONS}`,
    '-d3s',
    '-H',
    `Host: ${HOST}`,
    `http://127.0.0.1:${listening.http}/`,
  ]);

  // The deterministic part of the cost: proxy CPU per `GET /metrics` (20 targets with full histograms), idle.
  const scrapes = 300;
  const proxyBefore = cpuSeconds(listening.pid);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < scrapes; i++) await admin.metrics();
  const scrapeWallMs = Number(process.hrtime.bigint() - t0) / 1e6 / scrapes;
  const scrapeCpuMs = ((cpuSeconds(listening.pid) - proxyBefore) * 1000) / scrapes;

  const off: Round[] = [];
  const on: Round[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    off.push(await measure(listening.http, listening.pid, undefined));
    const collector = start(process.execPath, [join(ROOT, 'bench/metrics/collector.js'), ...args]);
    await firstJsonLine(collector, 'ready');
    on.push(await measure(listening.http, listening.pid, collector));
    collector.kill('SIGTERM');
    await new Promise((resolve) => collector.once('exit', resolve));
    process.stderr.write(
      `round ${round + 1}: off ${off[round]!.rps.toFixed(0)} req/s, on ${on[round]!.rps.toFixed(0)} req/s, collector ${on[round]!.collectorPct.toFixed(2)} % CPU\n`,
    );
  }
  const ratios = on.map((r, i) => r.rps / off[i]!.rps);
  const rows = [
    [
      'collection off',
      median(off.map((r) => r.rps)).toFixed(0),
      median(off.map((r) => r.proxyUsPerReq)).toFixed(1),
      '-',
    ],
    [
      `collection on (every ${INTERVAL_MS} ms, ${INSTANCES} instances)`,
      median(on.map((r) => r.rps)).toFixed(0),
      median(on.map((r) => r.proxyUsPerReq)).toFixed(1),
      `${median(on.map((r) => r.collectorPct)).toFixed(2)} %`,
    ],
  ];
  process.stdout.write(
    '\n| setup | req/s (median) | proxy CPU µs/req | collector CPU (% of one core) |\n|---|---|---|---|\n',
  );
  for (const row of rows) process.stdout.write(`| ${row.join(' | ')} |\n`);
  process.stdout.write(
    `\non/off throughput ratio: ${median(ratios).toFixed(3)} (per round: ${ratios.map((r) => r.toFixed(3)).join(', ')})\n`,
  );
  process.stdout.write(
    `proxy CPU per metrics scrape (${INSTANCES} targets): ${scrapeCpuMs.toFixed(2)} ms (wall ${scrapeWallMs.toFixed(2)} ms) = ` +
      `${((100 * scrapeCpuMs) / INTERVAL_MS).toFixed(3)} % of one core at ${INTERVAL_MS} ms, ` +
      `${((100 * scrapeCpuMs) / 5000).toFixed(3)} % at the default 5 s\n`,
  );
  const db = await import('better-sqlite3');
  const handle = new db.default(database, { readonly: true });
  const rowsStored = (handle.prepare('SELECT COUNT(*) AS n FROM metric_points').get() as { n: number }).n;
  handle.close();
  process.stdout.write(`metric rows stored during the on rounds: ${rowsStored}\n`);
  process.exit(0);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
