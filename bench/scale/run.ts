// Idle cost at scale: N apps × 2 instances (copies of examples/hello) on one Berth, then CPU (schedstat, every
// thread) and proportional memory (smaps_rollup) of each kind of process over a fixed idle window: the control
// plane, the proxy (keeper + workers), the shims, the apps. The peer: the same hello server run bare (no platform,
// no health checks) in the same window, so "health checking per instance" is the apps' CPU above the bare ones'.
// Run: npm run build && node dist/bench/scale/run.js [--steps 1,25,100,250] [--window 60] [--profile DIR]
// --profile writes a CPU profile of each window for the control plane, the keeper and the worker (the profiler's
// own cost is then in the figures: profile in a run apart from the one whose figures are kept).
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ApiClient } from '../../src/cli/client.js';
import { readProxyPid } from '../../src/control/traffic/proxy-supervisor.js';
import { parseDuration } from '../../src/lib/duration.js';
import {
  type ControlPlaneProcess,
  shutDown,
  startControlPlane,
  waitFor,
} from '../../test/control-harness.js';
import { scratchDir } from '../processes.js';
import { childrenOf, Role, treeOf } from './proc-usage.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const EXAMPLE = join(ROOT, 'examples/hello');

interface StepResult {
  apps: number;
  instances: number;
  windowS: number;
  /** % of one core, per role. */
  cpu: Record<string, number>;
  /** Bytes, per role. */
  pss: Record<string, number>;
  count: Record<string, number>;
  loadavg: number;
}

/** examples/hello as app `name`, routed on `<name>.localhost`, checked every `interval` (its own: 1s). */
function appDir(parent: string, name: string, interval: string): string {
  const dir = join(parent, name);
  cpSync(EXAMPLE, dir, { recursive: true });
  const spec = readFileSync(join(dir, 'berth.yaml'), 'utf8')
    .replace(/^app: hello$/m, `app: ${name}`)
    .replace('host: hello.localhost', `host: ${name}.localhost`)
    .replace('interval: 1s', `interval: ${interval}`);
  writeFileSync(join(dir, 'berth.yaml'), spec);
  return dir;
}

async function deployAll(client: ApiClient, dirs: string[], concurrency = 4): Promise<void> {
  const queue = [...dirs];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let dir = queue.shift(); dir !== undefined; dir = queue.shift()) await client.deploy(dir);
    }),
  );
}

async function settled(client: ApiClient, apps: number): Promise<void> {
  await waitFor(
    `${apps} apps with every instance healthy`,
    async () => {
      const all = await client.apps();
      const instances = await client.instances();
      const healthy = instances.filter((i) => i.state === 'healthy').length;
      return all.length === apps && all.every((a) => a.converged) && healthy === instances.length
        ? true
        : undefined;
    },
    30 * 60_000,
    1000,
  );
}

/** The hello server run bare: what one idle instance costs with no platform around it. */
function startBare(count: number): ChildProcess[] {
  return Array.from({ length: count }, () =>
    spawn(process.execPath, [join(EXAMPLE, 'server.js')], {
      cwd: EXAMPLE,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PORT: '0' },
      stdio: 'ignore',
    }),
  );
}

async function measure(
  plane: ControlPlaneProcess,
  dataDir: string,
  apps: number,
  bare: ChildProcess[],
  windowS: number,
  profile: boolean,
): Promise<StepResult> {
  const keeper = readProxyPid(dataDir);
  if (keeper === null) throw new Error('no proxy keeper');
  const instances = (await plane.client.instances()).filter((i) => i.pid !== null);
  const shims = instances.map((i) => i.pid!);
  const appPids = shims.flatMap((shim) => treeOf(shim).slice(1));
  const roles = [
    new Role('control plane', [plane.child.pid!]),
    new Role('proxy keeper', [keeper]),
    new Role('proxy workers', childrenOf(keeper)),
    new Role('shims', shims),
    new Role('apps', appPids),
    new Role(
      'bare apps (peer)',
      bare.map((c) => c.pid!),
    ),
  ];
  // The processes that run the profile hook: the first SIGUSR2 starts their profile, the second writes it.
  const profiled = profile ? [plane.child.pid!, keeper, ...childrenOf(keeper)] : [];
  for (const pid of profiled) process.kill(pid, 'SIGUSR2');
  const started = process.hrtime.bigint();
  for (const role of roles) role.begin();
  await new Promise((resolve) => setTimeout(resolve, windowS * 1000));
  const elapsedNs = Number(process.hrtime.bigint() - started);
  for (const pid of profiled) process.kill(pid, 'SIGUSR2');
  const result: StepResult = {
    apps,
    instances: instances.length,
    windowS,
    cpu: {},
    pss: {},
    count: {},
    loadavg: loadavg()[0]!,
  };
  for (const role of roles) {
    result.cpu[role.name] = (100 * role.cpuSinceBegin()) / elapsedNs;
    result.pss[role.name] = role.memory().pss;
    result.count[role.name] = role.pids.length;
  }
  return result;
}

const pct = (n: number): string => `${n.toFixed(n < 1 ? 3 : 2)} %`;
const mb = (n: number): string => `${(n / 1048576).toFixed(n < 10 * 1048576 ? 2 : 1)} MB`;

function report(results: StepResult[], bareCount: number, intervalMs: number): void {
  console.log(
    `\nexamples/hello × 2 instances per app (health check every ${intervalMs / 1000} s, keep-alive probes), idle window ${results[0]?.windowS} s; ` +
      `${cpus().length} cores; peer: ${bareCount} bare hello servers (no platform) in the same windows`,
  );
  console.log(
    '| apps | instances | control plane | proxy (keeper + workers) | CP + proxy | shims (all) | apps (all) | app CPU per instance: Berth / bare | health checking per instance (app) | app CPU per check | shim PSS per instance | app PSS per instance (bare) | CP PSS | proxy PSS | load |',
  );
  console.log(
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  // % of one core per instance → µs of CPU per check: the instance is checked 1000 / intervalMs times a second.
  const perCheckUs = (percent: number): number => percent * 1e4 * (intervalMs / 1000);
  for (const r of results) {
    const proxy = r.cpu['proxy keeper']! + r.cpu['proxy workers']!;
    const n = Math.max(1, r.instances);
    const appPer = r.cpu.apps! / n;
    const barePer = r.cpu['bare apps (peer)']! / Math.max(1, r.count['bare apps (peer)']!);
    console.log(
      `| ${r.apps} | ${r.instances} | ${pct(r.cpu['control plane']!)} | ${pct(proxy)} | ${pct(r.cpu['control plane']! + proxy)} | ${pct(r.cpu.shims!)} | ${pct(r.cpu.apps!)} | ` +
        `${pct(appPer)} / ${pct(barePer)} | ${pct(appPer - barePer)} | ${perCheckUs(appPer - barePer).toFixed(0)} µs | ${mb(r.pss.shims! / n)} | ` +
        `${mb(r.pss.apps! / n)} (${mb(r.pss['bare apps (peer)']! / Math.max(1, r.count['bare apps (peer)']!))}) | ` +
        `${mb(r.pss['control plane']!)} | ${mb(r.pss['proxy keeper']! + r.pss['proxy workers']!)} | ${r.loadavg.toFixed(2)} |`,
    );
  }
  // Straight line through the two largest steps, to 500 instances, when the machine did not get there.
  const [a, b] = results.slice(-2);
  if (a && b && b.instances < 500 && b.instances > a.instances) {
    const at500 = (f: (r: StepResult) => number): number =>
      f(b) + ((f(b) - f(a)) / (b.instances - a.instances)) * (500 - b.instances);
    const cpPlusProxy = (r: StepResult) =>
      r.cpu['control plane']! + r.cpu['proxy keeper']! + r.cpu['proxy workers']!;
    console.log(
      `extrapolated to 500 instances (a straight line through ${a.instances} and ${b.instances}): control plane + proxy ${pct(at500(cpPlusProxy))}, shims' PSS ${mb(at500((r) => r.pss.shims!) / 500)} per instance`,
    );
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string', default: '1,25,100,250' },
      window: { type: 'string', default: '60' },
      settle: { type: 'string', default: '15' },
      bare: { type: 'string', default: '20' },
      profile: { type: 'string' },
      json: { type: 'string' },
      // The health-check interval of every app (examples/hello's own is 1s; a spec's default is 2s).
      interval: { type: 'string', default: '1s' },
    },
  });
  const steps = values.steps.split(',').map(Number);
  const windowS = Number(values.window);
  const dataDir = scratchDir('berth-bench-scale-');
  const appsDir = scratchDir('berth-bench-scale-apps-');
  const env: Record<string, string> = {};
  if (values.profile) {
    mkdirSync(values.profile, { recursive: true });
    // The proxy keeper and its workers inherit it; each process profiles the measuring windows (SIGUSR2).
    env.NODE_OPTIONS = `--import=${fileURLToPath(new URL('./cpu-profile-hook.js', import.meta.url))}`;
    env.BERTH_CPU_PROFILE_DIR = values.profile;
  }
  const plane = await startControlPlane(dataDir, 30_000, { env });
  const bare = startBare(Number(values.bare));
  const results: StepResult[] = [];
  let deployed = 0;
  try {
    for (const apps of steps) {
      const dirs: string[] = [];
      for (; deployed < apps; deployed++) dirs.push(appDir(appsDir, `s${deployed}`, values.interval));
      const began = Date.now();
      await deployAll(plane.client, dirs);
      await settled(plane.client, apps);
      process.stderr.write(
        `${apps} apps deployed and healthy in ${((Date.now() - began) / 1000).toFixed(0)} s\n`,
      );
      await new Promise((resolve) => setTimeout(resolve, Number(values.settle) * 1000));
      const result = await measure(plane, dataDir, apps, bare, windowS, values.profile !== undefined);
      results.push(result);
      process.stderr.write(`${JSON.stringify(result)}\n`);
    }
  } finally {
    for (const child of bare) child.kill('SIGTERM');
    await shutDown(plane, dataDir, 10 * 60_000);
  }
  if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 2));
  report(results, bare.length, parseDuration(values.interval));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
