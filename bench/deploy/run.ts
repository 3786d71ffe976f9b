// Deploy benchmark: examples/hello with 3 instances under HTTPS load through the proxy, as processes and as Docker
// containers side by side. Measures a good deploy (time to succeeded, failed requests), a broken one (time to
// rolled_back) and, as the peer, a naive restart (stop everything, then start the new release: what a platform
// without rolling deploys does); per instance, start to healthy and the memory the runtime adds beside the app
// (the process runtime's shim; a container's containerd shim and init).
// Run: npm run build && node dist/bench/deploy/run.js [--rounds 3] [--runtime process|docker|both]
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ApiClient } from '../../src/cli/client.js';
import { proxyPaths } from '../../src/domain/proxy-paths.js';
import { shutDown, startControlPlane, waitFor } from '../../test/control-harness.js';
import {
  type EngineLease,
  ensureNodeImage,
  leaseDockerEngine,
  NODE_IMAGE,
  nodeImageSkipReason,
} from '../../test/docker-host.js';
import { LoadClient } from '../../test/load-client.js';
import { median } from '../processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const EXAMPLE = join(ROOT, 'examples/hello');

interface Sample {
  ms: number;
  requests: number;
  failed: number;
  state: string;
}

type RuntimeKind = 'process' | 'docker';

function appVersion(greeting: string, broken: boolean, runtime: RuntimeKind): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-app-'));
  cpSync(EXAMPLE, dir, { recursive: true });
  // The same app in an image: the same command, run in the container from WORKDIR /app.
  if (runtime === 'docker')
    writeFileSync(
      join(dir, 'Dockerfile'),
      `FROM ${NODE_IMAGE}\nWORKDIR /app\nCOPY . /app/\nCMD ["node", "server.js"]\n`,
    );
  let spec = readFileSync(join(dir, 'berth.yaml'), 'utf8')
    .replace(/instances: \d+/, 'instances: 3')
    .replace(/GREETING: .*/, `GREETING: ${greeting}`);
  if (broken) spec = spec.replace('run: node server.js', 'run: node -e "process.exit(1)"');
  writeFileSync(join(dir, 'berth.yaml'), spec);
  return dir;
}

async function deployAndWait(client: ApiClient, dir: string): Promise<{ ms: number; state: string }> {
  const started = Date.now();
  const result = await client.deploy(dir);
  const view = await waitFor('the deployment to end', async () => {
    const now = await client.deployment(result.deployment!);
    const settled = now.deployment.state !== 'in_progress' && now.status.converged;
    return settled ? now : undefined;
  });
  return { ms: Date.now() - started, state: view.deployment.state };
}

async function naiveRestart(client: ApiClient, dir: string): Promise<{ ms: number; state: string }> {
  const started = Date.now();
  await client.down('hello');
  await waitFor('all instances to stop', async () =>
    (await client.instances({ app: 'hello' })).length === 0 ? true : undefined,
  );
  const result = await client.deploy(dir);
  // A deploy keeps the count `down` set (0): the restart brings the instances back, as `heroku ps:restart` does.
  await client.scale('hello', { web: 3 });
  await waitFor('the new release to be healthy', async () =>
    (await client.app('hello')).converged ? true : undefined,
  );
  await result;
  return { ms: Date.now() - started, state: 'restarted' };
}

/** Resident and private (not shared with other processes) memory of a process, from smaps_rollup, in bytes. */
function memoryOf(pid: number): { rss: number; private: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name: string): number =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { rss: field('Rss'), private: field('Private_Clean') + field('Private_Dirty') };
}

function parentOf(pid: number): number {
  return Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

/**
 * What the runtime runs per instance beside the app: the shim (a process instance's recorded pid is its shim);
 * for a container, its containerd shim (the parent of the init) and the init (the recorded pid).
 */
function overheadPids(pid: number, runtime: RuntimeKind): number[] {
  return runtime === 'process' ? [pid] : [parentOf(pid), pid];
}

interface PerInstance {
  startToHealthyMs: number[];
  overhead: { rss: number; private: number }[];
}

async function perInstance(client: ApiClient, runtime: RuntimeKind, into: PerInstance): Promise<void> {
  const live = await client.instances({ app: 'hello' });
  for (const instance of live) {
    if (instance.healthyAt !== null) into.startToHealthyMs.push(instance.healthyAt - instance.createdAt);
    const parts = overheadPids(instance.pid!, runtime).map(memoryOf);
    into.overhead.push({
      rss: parts.reduce((sum, m) => sum + m.rss, 0),
      private: parts.reduce((sum, m) => sum + m.private, 0),
    });
  }
}

const MiB = (bytes: number): string => (bytes / 1_048_576).toFixed(1);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { rounds: { type: 'string', default: '3' }, runtime: { type: 'string', default: 'both' } },
  });
  const rounds = Number(values.rounds);
  const runtimes: RuntimeKind[] =
    values.runtime === 'both' ? ['process', 'docker'] : [values.runtime as RuntimeKind];
  let lease: EngineLease | undefined;
  if (runtimes.includes('docker')) {
    const skip = nodeImageSkipReason();
    if (skip) {
      process.stderr.write(`docker runtime skipped: ${skip}\n`);
      runtimes.splice(runtimes.indexOf('docker'), 1);
    } else {
      lease = await leaseDockerEngine();
      await ensureNodeImage(lease.engine);
    }
  }
  const tables: string[] = [];
  const instances: Record<string, PerInstance> = {};
  try {
    for (const runtime of runtimes) {
      const per: PerInstance = { startToHealthyMs: [], overhead: [] };
      instances[runtime] = per;
      tables.push(...(await benchRuntime(runtime, rounds, per)));
    }
  } finally {
    await lease?.release();
  }
  console.log(
    `\nexamples/hello, 3 instances, health interval 1s, 8 keep-alive HTTPS clients through the proxy; ${rounds} rounds, medians`,
  );
  console.log('| runtime | scenario | time to end (ms) | end state | requests | failed requests |');
  console.log('| --- | --- | ---: | --- | ---: | ---: |');
  for (const line of tables) console.log(line);
  console.log('\nper instance (every instance of every good deploy), medians');
  console.log(
    '| runtime | start → healthy (ms) | runtime memory beside the app: RSS (MiB) | of it private (MiB) |',
  );
  console.log('| --- | ---: | ---: | ---: |');
  for (const [runtime, per] of Object.entries(instances)) {
    console.log(
      `| ${runtime} | ${median(per.startToHealthyMs)} | ${MiB(median(per.overhead.map((o) => o.rss)))} | ${MiB(median(per.overhead.map((o) => o.private)))} |`,
    );
  }
  const [p, d] = [instances.process, instances.docker];
  if (p && d && p.startToHealthyMs.length > 0 && d.startToHealthyMs.length > 0) {
    console.log(
      `\ndocker / process: start → healthy ${(median(d.startToHealthyMs) / median(p.startToHealthyMs)).toFixed(2)}, memory beside the app (RSS) ${(median(d.overhead.map((o) => o.rss)) / median(p.overhead.map((o) => o.rss))).toFixed(2)}`,
    );
  }
}

async function benchRuntime(runtime: RuntimeKind, rounds: number, per: PerInstance): Promise<string[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-bench-deploy-'));
  const plane = await startControlPlane(dataDir);
  const client = plane.client;
  const health = await client.deploy(appVersion('v0', false, runtime));
  await waitFor('the first release', async () => {
    const view = await client.deployment(health.deployment!);
    return view.deployment.state === 'succeeded' ? true : undefined;
  });
  const load = new LoadClient(plane.proxyPorts.https, 'hello.localhost', proxyPaths(dataDir).caCert);
  const results: Record<string, Sample[]> = {
    'rolling deploy (good)': [],
    'rolling deploy (broken → rolled back)': [],
    'naive restart (peer)': [],
  };
  try {
    for (let round = 0; round < rounds; round++) {
      for (const [name, run] of [
        ['rolling deploy (good)', () => deployAndWait(client, appVersion(`good-${round}`, false, runtime))],
        [
          'rolling deploy (broken → rolled back)',
          () => deployAndWait(client, appVersion(`bad-${round}`, true, runtime)),
        ],
        ['naive restart (peer)', () => naiveRestart(client, appVersion(`naive-${round}`, false, runtime))],
      ] as const) {
        let outcome = { ms: 0, state: '' };
        // Back to back (no pause): the benchmark measures the proxy under full load, as it always has.
        const { sent, failures } = await load.during(
          async () => {
            outcome = await run();
          },
          8,
          0,
        );
        results[name]!.push({
          ms: outcome.ms,
          requests: sent,
          failed: failures.length,
          state: outcome.state,
        });
        process.stderr.write(
          `${runtime} ${name} #${round + 1}: ${outcome.ms} ms, ${outcome.state}, ${failures.length} of ${sent} failed\n`,
        );
        if (name === 'rolling deploy (good)') await perInstance(client, runtime, per);
      }
    }
  } finally {
    load.close();
    await shutDown(plane, dataDir);
  }
  return Object.entries(results).map(
    ([name, samples]) =>
      `| ${runtime} | ${name} | ${median(samples.map((s) => s.ms))} | ${[...new Set(samples.map((s) => s.state))].join(', ')} | ${median(samples.map((s) => s.requests))} | ${samples.map((s) => s.failed).join(' / ')} |`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
