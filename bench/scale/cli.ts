// How long `berth ps`, `berth metrics APP` and `berth events` take, wall time with hyperfine (Debian package
// hyperfine), against a running Berth serving examples/hello; the peer in the same run is node itself starting and
// exiting (`node -e 0`), the floor of any CLI written for node. `--base DIR` adds another build's CLI (e.g. main's
// checkout) on the same control plane, for a before/after.
// Run: npm run build && node dist/bench/scale/cli.js [--runs 40] [--base /work/main]
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { shutDown, startControlPlane, waitFor } from '../../test/control-harness.js';
import { scratchDir } from '../processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

interface HyperfineResult {
  command: string;
  mean: number;
  stddev: number;
  median: number;
  min: number;
  /** CPU seconds (mean): unlike wall time, barely moved by what else the machine runs. */
  user: number;
  system: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { runs: { type: 'string', default: '40' }, base: { type: 'string' } },
  });
  if (spawnSync('hyperfine', ['--version']).error) {
    console.error('bench/scale/cli needs hyperfine (Debian package hyperfine)');
    process.exit(1);
  }
  const dataDir = scratchDir('berth-bench-cli-');
  const plane = await startControlPlane(dataDir, 30_000);
  try {
    await plane.client.deploy(join(ROOT, 'examples/hello'));
    await waitFor(
      'hello healthy',
      async () => ((await plane.client.apps()).every((a) => a.converged) ? true : undefined),
      120_000,
    );
    const node = process.execPath;
    const cli = (root: string, args: string) =>
      `${node} ${join(root, 'bin/berth.js')} --data-dir ${dataDir} ${args}`;
    const builds: [label: string, root: string][] = [['this build', ROOT]];
    if (values.base) builds.push(['base', values.base]);
    const commands: [name: string, command: string][] = [[`node -e 0 (peer)`, `${node} -e 0`]];
    for (const args of ['ps', 'metrics hello', 'events']) {
      for (const [label, root] of builds) commands.push([`berth ${args} (${label})`, cli(root, args)]);
    }
    const out = join(dataDir, 'hyperfine.json');
    execFileSync(
      'hyperfine',
      [
        '-N',
        '--warmup',
        '3',
        '--runs',
        values.runs,
        '--export-json',
        out,
        ...commands.flatMap(([name, command]) => ['-n', name, command]),
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const results = (JSON.parse(readFileSync(out, 'utf8')) as { results: HyperfineResult[] }).results;
    const floor = results[0]!.median;
    console.log(
      `\nhyperfine -N --warmup 3 --runs ${values.runs}, a Berth serving examples/hello on this machine`,
    );
    console.log(
      '| command | median | mean ± σ | min | / node -e 0 | CPU (user + sys, mean) | CPU above node -e 0 |',
    );
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    const floorCpu = results[0]!.user + results[0]!.system;
    for (const r of results) {
      const ms = (s: number) => `${(s * 1000).toFixed(0)} ms`;
      console.log(
        `| ${r.command} | ${ms(r.median)} | ${ms(r.mean)} ± ${ms(r.stddev)} | ${ms(r.min)} | ${(r.median / floor).toFixed(2)} | ` +
          `${ms(r.user + r.system)} | ${ms(r.user + r.system - floorCpu)} |`,
      );
    }
  } finally {
    await shutDown(plane, dataDir, 120_000);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
