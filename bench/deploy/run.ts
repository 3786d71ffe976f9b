// Deploy benchmark: examples/hello with 3 instances under HTTPS load through the proxy. Measures a good deploy
// (time to succeeded, failed requests), a broken one (time to rolled_back) and, as the peer, a naive restart
// (stop everything, then start the new release: what a platform without rolling deploys does).
// Run: npm run build && node dist/bench/deploy/run.js [--rounds 3]
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ApiClient } from '../../src/cli/client.js';
import { proxyPaths } from '../../src/domain/proxy-paths.js';
import { shutDown, startControlPlane, waitFor } from '../../test/control-harness.js';
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

function appVersion(greeting: string, broken: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-app-'));
  cpSync(EXAMPLE, dir, { recursive: true });
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
  await waitFor('the new release to be healthy', async () =>
    (await client.app('hello')).converged ? true : undefined,
  );
  await result;
  return { ms: Date.now() - started, state: 'restarted' };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
  const rounds = Number(values.rounds);
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-bench-deploy-'));
  const plane = await startControlPlane(dataDir);
  const client = plane.client;
  const health = await client.deploy(appVersion('v0', false));
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
        ['rolling deploy (good)', () => deployAndWait(client, appVersion(`good-${round}`, false))],
        [
          'rolling deploy (broken → rolled back)',
          () => deployAndWait(client, appVersion(`bad-${round}`, true)),
        ],
        ['naive restart (peer)', () => naiveRestart(client, appVersion(`naive-${round}`, false))],
      ] as const) {
        let outcome = { ms: 0, state: '' };
        const { sent, failures } = await load.during(async () => {
          outcome = await run();
        }, 8);
        results[name]!.push({
          ms: outcome.ms,
          requests: sent,
          failed: failures.length,
          state: outcome.state,
        });
        process.stderr.write(
          `${name} #${round + 1}: ${outcome.ms} ms, ${outcome.state}, ${failures.length} of ${sent} failed\n`,
        );
      }
    }
  } finally {
    load.close();
    await shutDown(plane, dataDir);
  }
  console.log(
    `\nexamples/hello, 3 instances, health interval 1s, 8 keep-alive HTTPS clients through the proxy; ${rounds} rounds, medians`,
  );
  console.log('| scenario | time to end (ms) | end state | requests | failed requests |');
  console.log('| --- | ---: | --- | ---: | ---: |');
  for (const [name, samples] of Object.entries(results)) {
    console.log(
      `| ${name} | ${median(samples.map((s) => s.ms))} | ${[...new Set(samples.map((s) => s.state))].join(', ')} | ${median(samples.map((s) => s.requests))} | ${samples.map((s) => s.failed).join(' / ')} |`,
    );
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
