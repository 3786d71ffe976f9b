// Integration: canary deploys behind the real proxy, under load: a good canary walks its steps, a bad one is
// aborted by the analysis at the first step, weights hold within 3 % over SPLIT_SAMPLE requests, --promote/--abort,
// and a control-plane restart in the middle of a canary.
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Deployment } from '../src/domain/deployment.js';
import { ProxyAdminClient } from '../src/domain/proxy-admin-client.js';
import { proxyPaths } from '../src/domain/proxy-paths.js';
import {
  type ControlPlaneProcess,
  FIXTURE_APP,
  proxyUnavailable,
  runCli,
  shutDown,
  startControlPlane,
  tempDir,
  waitFor,
  writeApp,
} from './control-harness.js';
import { type Answer, answersAfter, LoadClient, SPLIT_SAMPLE } from './load-client.js';

/** The shop app with a canary deploy section; `env` makes each release tell itself apart. */
function appDir(env: Record<string, string>, deploy: string): string {
  const envText = Object.entries(env)
    .map(([k, v]) => `${k}: "${v}"`)
    .join(', ');
  const dir = writeApp({
    'berth.yaml': [
      'app: shop',
      'routes:',
      '  - host: shop.localhost',
      '    service: web',
      'services:',
      '  web:',
      '    run: node server.js',
      '    instances: 2',
      '    health: { path: /health, interval: 250ms, timeout: 200ms, healthy: 1, unhealthy: 2, grace: 1s }',
      `    deploy: { drain: 5s, stopTimeout: 5s, ${deploy} }`,
      `    env: { ${envText} }`,
    ].join('\n'),
  });
  copyFileSync(join(FIXTURE_APP, 'server.js'), join(dir, 'server.js'));
  return dir;
}

function greetingOf(answer: Answer): string {
  return (JSON.parse(answer.body) as { greeting: string }).greeting;
}

describe('canary deploys', { skip: proxyUnavailable }, () => {
  const dataDir = tempDir('berth-canary-');
  let plane: ControlPlaneProcess;
  let load: LoadClient;

  async function deployment(): Promise<Deployment> {
    return (await plane.client.currentDeployment('shop')).deployment;
  }

  async function converged(): Promise<void> {
    await waitFor(
      'the app to converge',
      async () => ((await plane.client.app('shop')).converged ? true : undefined),
      30_000,
    );
  }

  /** The route's backends as the proxy serves them now. */
  async function backends(): Promise<{ targetGroup: string; weight: number; release?: string }[]> {
    const admin = new ProxyAdminClient(proxyPaths(dataDir).adminSocket);
    const table = await admin.getRouteTable();
    return table.routes.find((r) => r.host === 'shop.localhost')!.backends;
  }

  before(async () => {
    plane = await startControlPlane(dataDir);
    load = new LoadClient(plane.proxyPorts.https, 'shop.localhost', proxyPaths(dataDir).caCert);
    // A first deploy has no old release to compare with: it rolls, whatever the strategy says.
    const first = await runCli(dataDir, [
      'deploy',
      appDir({ GREETING: 'one' }, 'strategy: canary, steps: [50, 100], interval: 1s'),
    ]);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.doesNotMatch(first.stdout, /canary/);
    await converged();
  });

  after(async () => {
    load.close();
    await shutDown(plane, dataDir);
  });

  it('walks a good canary through every step under load with zero failed requests, then only the new release serves', async () => {
    let finishedAt = 0;
    let output = '';
    const { answers, failures } = await load.during(async (sofar) => {
      const result = await runCli(dataDir, [
        'deploy',
        appDir(
          { GREETING: 'two' },
          'strategy: canary, steps: [10, 50, 100], interval: 1s, analysis: { minRequests: 20, maxLatencyRatio: 100 }',
        ),
      ]);
      output = result.stdout;
      assert.equal(result.code, 0, result.stdout + result.stderr);
      finishedAt = Date.now();
      await answersAfter(sofar, finishedAt);
    });
    assert.deepEqual(failures, [], `${failures.length} of ${answers.length} requests failed`);
    for (const step of ['canary 10% (step 1/3)', 'canary 50% (step 2/3)', 'canary 100% (step 3/3)']) {
      assert.ok(output.includes(step), `deploy shows ${step}:\n${output}`);
    }
    assert.match(output, /promote: 5xx 0% \(limit 5%\)/);
    assert.match(output, /v2 is live/);
    const afterwards = answers.filter((a) => a.sentAt > finishedAt);
    assert.deepEqual([...new Set(afterwards.map(greetingOf))], ['two']);
    assert.ok(answers.some((a) => greetingOf(a) === 'one') && answers.some((a) => greetingOf(a) === 'two'));
    const events = await plane.client.events({ app: 'shop' });
    const passed = events.filter((e) => e.kind === 'deployment.canary_passed');
    assert.equal(passed.length, 3, 'one passed analysis per step');
    const numbers = passed[0]!.data as { canary: { requests: number }; baseline: { requests: number } };
    assert.ok(numbers.canary.requests >= 20 && numbers.baseline.requests > 0, JSON.stringify(numbers));
    await converged();
    assert.equal((await plane.client.instances({ app: 'shop' })).length, 2, 'the old instances are gone');
    assert.deepEqual(await backends(), [{ targetGroup: 'shop.web.v2', weight: 1 }]);
    // The canary's group counts for its service: `berth metrics --by release` has both releases' requests.
    await waitFor(
      'v2 requests in berth metrics',
      async () => {
        // What `berth metrics shop --since 5m --by release --json` prints, read from the API (a poll, not the test).
        const result = await plane.client.request<{
          series: { release?: number; points: { requests: number }[] }[];
        }>('GET', '/v1/apps/shop/metrics?since=5m&by=release');
        const served = (release: number): number =>
          result.series
            .filter((x) => x.release === release)
            .reduce((sum, x) => sum + x.points.reduce((n, p) => n + p.requests, 0), 0);
        return served(1) > 0 && served(2) > 0 ? true : undefined;
      },
      20_000,
      500,
    );
  });

  it('aborts a canary that answers 500 to 20 % of requests at its first step: no failure but its own', async () => {
    let output = '';
    let code = 0;
    let finishedAt = 0;
    const { answers, failures } = await load.during(async (sofar) => {
      const result = await runCli(dataDir, [
        'deploy',
        appDir(
          { GREETING: 'three', FAIL_EVERY: '5' },
          'strategy: canary, steps: [10, 50, 100], interval: 1s, analysis: { minRequests: 20, maxLatencyRatio: 100 }',
        ),
      ]);
      output = result.stdout;
      code = result.code;
      finishedAt = Date.now();
      // Not answersAfter: it counts failures too, and the bad release's 500s are already failures.
      await waitFor('20 answers sent after the abort', () =>
        sofar.answers.filter((a) => a.sentAt > finishedAt).length >= 20 ? true : undefined,
      );
    });
    assert.equal(code, 1, output);
    assert.match(output, /abort: 5xx \d+(\.\d+)?% \(limit 5%\)/);
    assert.match(output, /deployment rolled back to v2/);
    assert.doesNotMatch(output, /canary 50%/, 'never went past the first step');
    // Every failed request is one the bad release answered itself: a 500 carrying its greeting.
    const failed = answers.filter((a) => a.status !== 200);
    assert.equal(failed.length, failures.length, `requests without an answer: ${failures.join('; ')}`);
    assert.ok(failed.length > 0, 'the bad release served some of the traffic');
    assert.deepEqual([...new Set(failed.map((a) => `${a.status} ${greetingOf(a)}`))], ['500 three']);
    const afterwards = answers.filter((a) => a.sentAt > finishedAt);
    assert.deepEqual([...new Set(afterwards.map(greetingOf))], ['two']);
    const events = await plane.client.events({ app: 'shop' });
    const aborted = events.find((e) => e.kind === 'deployment.canary_aborted');
    assert.ok(aborted, 'the abort is an event');
    const data = aborted.data as { verdict: string; canary: { errorRatePercent: number; requests: number } };
    assert.equal(data.verdict, 'abort');
    assert.ok(data.canary.errorRatePercent > 10 && data.canary.requests >= 20, JSON.stringify(data));
    await converged();
    assert.deepEqual(await backends(), [{ targetGroup: 'shop.web.v2', weight: 1 }]);
    const instances = await plane.client.instances({ app: 'shop' });
    assert.ok(
      instances.every((i) => i.release === 2),
      'the new instances were stopped',
    );
  });

  it(`splits by weight within ±3 % over ${SPLIT_SAMPLE} requests; --promote and --abort act on a running canary`, async () => {
    const idle = await runCli(dataDir, ['deploy', '--abort', 'shop']);
    assert.equal(idle.code, 1);
    assert.match(idle.stderr, /shop has no deployment in progress: nothing to promote or abort/);

    const started = await runCli(dataDir, [
      'deploy',
      '--no-wait',
      appDir({ GREETING: 'four' }, 'strategy: canary, steps: [30, 100], interval: 1h'),
    ]);
    assert.equal(started.code, 0, started.stdout + started.stderr);
    await waitFor(
      'the first window to open',
      async () => ((await deployment()).canary?.windowStartedAt != null ? true : undefined),
      30_000,
    );
    const status = await runCli(dataDir, ['deploy', 'status', 'shop']);
    assert.match(status.stdout, /deployment \d+ \(canary\) v2 → v4: canary/);
    assert.match(status.stdout, /steps \[30%\] → 100%, 1h each/);
    await waitFor('the proxy to split 70/30', async () => {
      const b = await backends();
      return b.length === 2 && b[1]!.weight === 30 ? true : undefined;
    });

    // SPLIT_SAMPLE requests are enough for ±3 % (the arithmetic is at its definition).
    const counts = new Map<string, number>();
    const { answers, failures } = await load.during(async (sofar) => {
      await waitFor(
        `${SPLIT_SAMPLE} answers`,
        () => (sofar.answers.length >= SPLIT_SAMPLE ? true : undefined),
        60_000,
        100,
      );
    }, 8);
    assert.deepEqual(failures, []);
    for (const a of answers.slice(0, SPLIT_SAMPLE))
      counts.set(greetingOf(a), (counts.get(greetingOf(a)) ?? 0) + 1);
    const share = (100 * (counts.get('four') ?? 0)) / SPLIT_SAMPLE;
    assert.ok(
      Math.abs(share - 30) <= 3,
      `the new release got ${share}% of ${SPLIT_SAMPLE} requests, not 30 ± 3 %`,
    );

    const promoted = await runCli(dataDir, ['deploy', '--promote', 'shop']);
    assert.equal(promoted.code, 0, promoted.stderr);
    assert.match(promoted.stdout, /shop: v4 now gets 100% of requests/);
    await waitFor('the proxy to send everything to v4', async () => {
      const b = await backends();
      return b[1]?.weight === 100 && b[0]?.weight === 0 ? true : undefined;
    });
    const aborted = await runCli(dataDir, ['deploy', '--abort', 'shop']);
    assert.equal(aborted.code, 0, aborted.stderr);
    assert.match(aborted.stdout, /canary v4 aborted; every request goes to v2 again/);
    // One route-table swap: the old group alone, at once.
    assert.deepEqual(await backends(), [{ targetGroup: 'shop.web.v2', weight: 1 }]);
    assert.equal((await deployment()).state, 'rolled_back');
    await converged();
  });

  it('resumes a canary after a control-plane restart; the proxy keeps the weights meanwhile', async () => {
    // Set-up through the API: `deploy --no-wait` is the CLI under test in the test above.
    await plane.client.deploy(
      appDir({ GREETING: 'five' }, 'strategy: canary, steps: [50, 100], interval: 1h'),
    );
    await waitFor(
      'the first window to open',
      async () => ((await deployment()).canary?.windowStartedAt != null ? true : undefined),
      30_000,
    );
    const before = await deployment();
    await plane.stop();
    const { answers, failures } = await load.during(async (sofar) => {
      await waitFor('200 answers', () => (sofar.answers.length >= 200 ? true : undefined));
    });
    assert.deepEqual(failures, []);
    assert.deepEqual([...new Set(answers.map(greetingOf))].sort(), ['five', 'two'], 'both sides serve');
    plane = await startControlPlane(dataDir);
    const resumed = await deployment();
    assert.equal(resumed.id, before.id);
    assert.equal(resumed.state, 'canary');
    assert.equal(resumed.canary?.step, 0);
    assert.equal(resumed.canary?.windowStartedAt, before.canary?.windowStartedAt);
    const { failures: during } = await load.during(async () => {
      for (const _ of [1, 2]) await plane.client.canary('shop', 'promote');
      await waitFor(
        'the canary to succeed',
        async () => ((await deployment()).state === 'succeeded' ? true : undefined),
        30_000,
      );
    });
    assert.deepEqual(during, []);
    assert.deepEqual(await backends(), [{ targetGroup: 'shop.web.v5', weight: 1 }]);
  });

  it('keeps a sticky client on its release through a canary, and X-Berth-Release reaches the canary at its first step', async () => {
    await plane.client.deploy(
      appDir(
        { GREETING: 'six' },
        'strategy: canary, steps: [10, 100], interval: 1h, stickiness: { enabled: true, duration: 1h }, releaseOverride: true',
      ),
    );
    // The first window opens once the new release's instances are all healthy.
    await waitFor(
      'the first window to open',
      async () => ((await deployment()).canary?.windowStartedAt != null ? true : undefined),
      30_000,
    );
    await waitFor('the proxy to split 90/10', async () => {
      const b = await backends();
      return b.length === 2 && b[1]!.weight === 10 ? true : undefined;
    });
    assert.deepEqual(
      (await backends()).map((b) => b.release),
      ['v5', 'v6'],
    );
    const get = (headers: Record<string, string> = {}) => load.send('GET', '/', undefined, 10_000, headers);
    const pinOf = (answer: Answer) => String(answer.headers['set-cookie']).split(';')[0]!;

    // A tester's header (or cookie) reaches the new release at its first step, every time, and pins nobody.
    for (let i = 0; i < 20; i++) {
      const forced = await get({ 'x-berth-release': 'v6' });
      assert.equal(greetingOf(forced), 'six');
      assert.equal(forced.headers['set-cookie'], undefined);
      assert.equal(greetingOf(await get({ cookie: 'berth-release=v6' })), 'six');
      assert.equal(greetingOf(await get({ 'x-berth-release': 'v5' })), 'five');
    }

    // New clients: about one in ten lands on the canary; each gets a pin to the release it got.
    const pins = new Map<string, string>();
    for (let i = 0; pins.size < 2 && i < 200; i++) {
      const first = await get();
      pins.set(greetingOf(first), pinOf(first));
    }
    assert.deepEqual([...pins.keys()].sort(), ['five', 'six']);
    const onlySeen = async (cookie: string, count = 50) => {
      const seen = new Set<string>();
      for (let i = 0; i < count; i++) seen.add(greetingOf(await get({ cookie })));
      return [...seen];
    };
    assert.deepEqual(await onlySeen(pins.get('five')!), ['five']);
    assert.deepEqual(await onlySeen(pins.get('six')!), ['six']);
    // Without a cookie, the split holds.
    const { answers, failures } = await load.during(async (sofar) => {
      await waitFor(
        `${SPLIT_SAMPLE} answers`,
        () => (sofar.answers.length >= SPLIT_SAMPLE ? true : undefined),
        60_000,
        100,
      );
    });
    assert.deepEqual(failures, []);
    const six = answers.slice(0, SPLIT_SAMPLE).filter((a) => greetingOf(a) === 'six').length;
    const share = (100 * six) / SPLIT_SAMPLE;
    assert.ok(
      Math.abs(share - 10) <= 3,
      `the canary got ${share}% of ${SPLIT_SAMPLE} requests without a cookie, not 10 ± 3 %`,
    );

    // Promoted to 100 %: the old release has weight 0, so its clients move; the canary's stay where they were.
    await plane.client.canary('shop', 'promote');
    await waitFor('the proxy to send everything to v6', async () =>
      (await backends())[1]?.weight === 100 ? true : undefined,
    );
    assert.deepEqual(await onlySeen(pins.get('five')!, 10), ['six']);
    assert.deepEqual(await onlySeen(pins.get('six')!, 10), ['six']);
    await plane.client.canary('shop', 'promote');
    await waitFor('the canary to succeed', async () =>
      (await deployment()).state === 'succeeded' ? true : undefined,
    );
    const last = await get({ cookie: pins.get('six')! });
    assert.equal(greetingOf(last), 'six');
    assert.equal(last.headers['set-cookie'], undefined, 'one group: nothing to pin');
    await converged();
  });
});
