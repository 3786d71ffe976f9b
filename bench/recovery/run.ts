// Recovery timings of the foundation: `deploy` of examples/hello until every instance answers, and `kill -9` of an
// instance (the pid `berth ps` shows) until its replacement answers. Medians of 5. No peer runs these: they time
// Berth's own reconcile loop; docs/benchmarks.md says so.
// Run: npm run build && node dist/bench/recovery/run.js [--runs 5]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { shutDown, startControlPlane, waitFor } from '../../test/control-harness.js';
import { median } from '../processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const EXAMPLE = join(ROOT, 'examples/hello');

async function answers(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
  const runs = Number(values.runs);
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-bench-recovery-'));
  const plane = await startControlPlane(dataDir);
  const client = plane.client;
  const deployMs: number[] = [];
  const replaceMs: number[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      await client.down('hello').catch(() => undefined);
      await waitFor('no instances', async () =>
        (await client.instances({ app: 'hello' })).length === 0 ? true : undefined,
      );
      const started = Date.now();
      await client.deploy(EXAMPLE);
      await waitFor(
        'every instance to answer',
        async () => {
          const live = await client.instances({ app: 'hello' });
          const desired = (await client.app('hello')).services[0]?.desired ?? 0;
          if (live.length !== desired || desired === 0) return undefined;
          const ok = await Promise.all(live.map((i) => (i.port === null ? false : answers(i.port))));
          return ok.every(Boolean) ? true : undefined;
        },
        60_000,
        10,
      );
      deployMs.push(Date.now() - started);
      // Each kill is a single crash of a settled app: the deploy above reset the crash-loop backoff (a second
      // crash within 30 s of the first would wait 1 s, then 2 s, ...: that is the backoff, not recovery).
      const [victim] = await client.instances({ app: 'hello' });
      const killedAt = Date.now();
      process.kill(victim!.pid!, 'SIGKILL');
      await waitFor(
        'a replacement to answer',
        async () => {
          const live = await client.instances({ app: 'hello' });
          const fresh = live.find((i) => i.id !== victim!.id && i.createdAt >= killedAt && i.port !== null);
          return fresh && (await answers(fresh.port!)) ? true : undefined;
        },
        60_000,
        10,
      );
      replaceMs.push(Date.now() - killedAt);
    }
  } finally {
    await shutDown(plane, dataDir);
  }
  console.log(`examples/hello (2 instances), ${runs} runs each`);
  console.log('| measurement | median ms | all runs (ms) |');
  console.log('| --- | ---: | --- |');
  console.log(`| deploy → every instance answers | ${median(deployMs)} | ${deployMs.join(', ')} |`);
  console.log(`| kill -9 → replacement answers | ${median(replaceMs)} | ${replaceMs.join(', ')} |`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
