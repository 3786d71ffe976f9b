// Canary benchmark: a release that answers 500 to 20 % of requests, deployed under HTTPS load through the proxy,
// as a canary (10 % first step, 2 s analysis windows) and, as the peer in the same run, as a rolling deploy (what
// happens without a canary: its health check passes, so it goes live whole). Measures the time from the first bad
// response to the abort decision (in analysis windows), the requests the bad release served before and after the
// decision, and the bad responses each strategy let through in the same span.
// Run: npm run build && node dist/bench/canary/run.js [--rounds 3]
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { proxyPaths } from '../../src/domain/proxy-paths.js';
import { FIXTURE_APP, shutDown, startControlPlane, waitFor } from '../../test/control-harness.js';
import { type Answer, LoadClient } from '../../test/load-client.js';
import { median } from '../processes.js';

const INTERVAL_MS = 2000;

function appDir(greeting: string, failEvery: number, deploy: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-canary-'));
  writeFileSync(
    join(dir, 'berth.yaml'),
    [
      'app: shop',
      'routes: [{ host: shop.localhost, service: web }]',
      'services:',
      '  web:',
      '    run: node server.js',
      '    instances: 2',
      '    health: { path: /health, interval: 250ms, timeout: 200ms, healthy: 1, unhealthy: 2, grace: 1s }',
      `    deploy: { drain: 2s, stopTimeout: 2s${deploy === '' ? '' : `, ${deploy}`} }`,
      `    env: { GREETING: "${greeting}", FAIL_EVERY: "${failEvery}" }`,
    ].join('\n'),
  );
  copyFileSync(join(FIXTURE_APP, 'server.js'), join(dir, 'server.js'));
  return dir;
}

const greetingOf = (a: Answer): string => (JSON.parse(a.body) as { greeting: string }).greeting;

interface Round {
  /** First bad response → the abort decision, in ms and in analysis windows. */
  detectMs: number;
  /** Requests the bad release served before the decision, and after it (until the route table changed). */
  badBefore: number;
  badAfter: number;
  /** Requests of the deciding window (both releases). */
  windowRequests: number;
  /** 500s the clients got from the canary, and from the rolling deploy over the same span after its first. */
  canary500: number;
  rolling500: number;
}

async function round(n: number): Promise<Round> {
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-bench-canary-data-'));
  const plane = await startControlPlane(dataDir);
  const load = new LoadClient(plane.proxyPorts.https, 'shop.localhost', proxyPaths(dataDir).caCert);
  try {
    const canarySpec = `strategy: canary, steps: [10, 50, 100], interval: ${INTERVAL_MS}ms, analysis: { minRequests: 20 }`;
    const first = await plane.client.deploy(appDir('good', 0, canarySpec));
    await waitFor(
      'v1 to be live',
      async () => ((await plane.client.app('shop')).converged ? true : undefined),
      30_000,
    );
    void first;
    // The canary.
    let decisionAt = 0;
    let windowStart = 0;
    // Back to back (no pause): the benchmark measures under full load, as it always has.
    const canaryRun = await load.during(
      async () => {
        const result = await plane.client.deploy(appDir(`bad${n}`, 5, canarySpec));
        const view = await waitFor(
          'the canary to be aborted',
          async () => {
            const now = await plane.client.deployment(result.deployment!);
            return now.deployment.state === 'rolled_back' ? now : undefined;
          },
          60_000,
          20,
        );
        decisionAt = view.deployment.canary!.last!.at;
        windowStart = view.deployment.canary!.windowStartedAt!;
        // A little more load after the decision, to see whether anything still reaches the bad release.
        const until = Date.now() + 1000;
        await waitFor('1 s after the abort', () => (Date.now() >= until ? true : undefined), 5000);
      },
      8,
      0,
    );
    const bad = canaryRun.answers.filter((a) => greetingOf(a) === `bad${n}`);
    const firstBad = Math.min(...bad.filter((a) => a.status === 500).map((a) => a.doneAt));
    const inWindow = canaryRun.answers.filter((a) => a.sentAt >= windowStart && a.sentAt <= decisionAt);
    await waitFor(
      'v1 whole again',
      async () => ((await plane.client.app('shop')).converged ? true : undefined),
      30_000,
    );
    // The peer: the same bad release as a rolling deploy, counted over the same span after its first 500.
    const span = decisionAt - firstBad;
    let rolling500 = 0;
    // Back to back, as above.
    const rollingRun = await load.during(
      async (sofar) => {
        await plane.client.deploy(appDir(`bad${n}r`, 5, ''));
        const first500 = await waitFor(
          'the rolling release to answer a 500',
          () => sofar.answers.find((a) => a.status === 500)?.doneAt,
          60_000,
          10,
        );
        await waitFor('the same span', () => (Date.now() >= first500 + span ? true : undefined), 60_000, 10);
        rolling500 = sofar.answers.filter((a) => a.status === 500 && a.doneAt <= first500 + span).length;
      },
      8,
      0,
    );
    void rollingRun;
    return {
      detectMs: decisionAt - firstBad,
      badBefore: bad.filter((a) => a.doneAt <= decisionAt).length,
      badAfter: bad.filter((a) => a.sentAt > decisionAt).length,
      windowRequests: inWindow.length,
      canary500: canaryRun.answers.filter((a) => a.status === 500).length,
      rolling500,
    };
  } finally {
    load.close();
    await shutDown(plane, dataDir);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
  const rounds: Round[] = [];
  for (let n = 1; n <= Number(values.rounds); n++) {
    const r = await round(n);
    console.log(`round ${n}: ${JSON.stringify(r)}`);
    rounds.push(r);
  }
  const m = (f: (r: Round) => number): number => median(rounds.map(f));
  console.log(
    `\nfixture app, 2 instances, 8 keep-alive HTTPS clients; bad release answers 500 to 1 in 5 requests; canary steps 10/50/100 %, ${INTERVAL_MS} ms windows; ${rounds.length} rounds, medians`,
  );
  console.log('| metric | value |');
  console.log('| --- | ---: |');
  console.log(
    `| first bad response → abort decision | ${m((r) => r.detectMs)} ms (${(m((r) => r.detectMs) / INTERVAL_MS).toFixed(2)} windows) |`,
  );
  console.log(`| requests the bad release served before the decision | ${m((r) => r.badBefore)} |`);
  console.log(
    `| requests it served after the decision | ${m((r) => r.badAfter)} (${((100 * m((r) => r.badAfter)) / m((r) => r.windowRequests)).toFixed(2)} % of the window's ${m((r) => r.windowRequests)}) |`,
  );
  console.log(
    `| 500s clients got: canary / rolling deploy over the same span (ratio) | ${m((r) => r.canary500)} / ${m((r) => r.rolling500)} (${(
      m((r) => r.canary500) /
        Math.max(
          1,
          m((r) => r.rolling500),
        )
    ).toFixed(3)}) |`,
  );
}

await main();
