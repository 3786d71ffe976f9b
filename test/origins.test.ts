// Integration: an external origin (a local HTTPS server with its own CA, standing in for the old platform) behind the
// real proxy: TLS with SNI and the origin's CA, Host rewritten, weights honoured, a ramp to 100 % under load with no
// failed request, a ramp whose Berth side answers 500s sent back to the origin by itself, a wrong CA reported.
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { proxyPaths } from '../src/domain/proxy-paths.js';
import type { TrafficStatus } from '../src/domain/traffic.js';
import { LocalCa } from '../src/proxy/local-ca.js';
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
import { answersAfter, LoadClient, SPLIT_SAMPLE } from './load-client.js';

const ORIGIN_HOST = 'shop.oldplatform.test';

/** The app with two origins: `heroku` trusted through its CA file, `stale` without it (so not trusted). */
function appDir(originPort: number, caFile: string, env: Record<string, string> = {}): string {
  const envText = Object.entries({ GREETING: 'berth', ...env })
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
      '    deploy: { drain: 5s, stopTimeout: 5s, releaseOverride: true, analysis: { minRequests: 20, maxLatencyRatio: 100 } }',
      `    env: { ${envText} }`,
      'origins:',
      '  heroku:',
      `    url: https://127.0.0.1:${originPort}`,
      `    host: ${ORIGIN_HOST}`,
      '    health: /health',
      '    ca: old-ca.pem',
      '  stale:',
      `    url: https://127.0.0.1:${originPort}`,
      `    host: ${ORIGIN_HOST}`,
    ].join('\n'),
  });
  copyFileSync(join(FIXTURE_APP, 'server.js'), join(dir, 'server.js'));
  copyFileSync(caFile, join(dir, 'old-ca.pem'));
  return dir;
}

describe('external origins', { skip: proxyUnavailable }, () => {
  const dataDir = tempDir('berth-origins-');
  const caDir = tempDir('berth-origins-ca-');
  let plane: ControlPlaneProcess;
  let load: LoadClient;
  let origin: Server;
  let originPort = 0;
  let caFile = '';
  /** What the origin saw: Host, SNI and X-Forwarded-Host of each request but health checks. */
  const seen: { host: string; sni: string; forwardedHost: string }[] = [];

  async function traffic(args: string[] = []): Promise<TrafficStatus> {
    const result = await runCli(dataDir, ['traffic', 'shop', ...args, '--json']);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    return JSON.parse(result.stdout) as TrafficStatus;
  }

  /** The status `berth traffic shop --json` prints, read from the API: for polling (a CLI call is ~0.1 CPU-s). */
  async function trafficStatus(): Promise<TrafficStatus> {
    return plane.client.request<TrafficStatus>('GET', '/v1/apps/shop/traffic');
  }

  /**
   * Set-up of the weights (or a ramp) through the API, as `berth traffic shop web=0 heroku=100` (or `--ramp`) sends
   * them: the CLI's own output is tested where it is the subject (the warning, the refusals, the first ramp).
   */
  async function setTraffic(weights: Record<string, number>): Promise<TrafficStatus> {
    return plane.client.request<TrafficStatus>('PUT', '/v1/apps/shop/traffic', { weights });
  }

  async function startRamp(service: string, steps: number[], intervalMs: number): Promise<TrafficStatus> {
    return plane.client.request<TrafficStatus>('POST', '/v1/apps/shop/traffic/ramp', {
      service,
      steps,
      intervalMs,
    });
  }

  async function originHealth(name: string): Promise<{ health: string; healthReason: string } | undefined> {
    return (await trafficStatus()).sides.find((s) => s.name === name)?.targets[0];
  }

  before(async () => {
    const ca = new LocalCa(caDir);
    await ca.ensure();
    caFile = ca.paths.cert;
    const leaf = await ca.issue(join(caDir, 'origin'), [ORIGIN_HOST]);
    origin = createServer({ cert: readFileSync(leaf.cert), key: readFileSync(leaf.key) }, (req, res) => {
      if (req.url !== '/health')
        seen.push({
          host: req.headers.host ?? '',
          sni: (req.socket as TLSSocket).servername || '',
          forwardedHost: String(req.headers['x-forwarded-host'] ?? ''),
        });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ greeting: 'heroku' }));
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    originPort = (origin.address() as AddressInfo).port;
    plane = await startControlPlane(dataDir);
    load = new LoadClient(plane.proxyPorts.https, 'shop.localhost', proxyPaths(dataDir).caCert);
    const deployed = await runCli(dataDir, ['deploy', appDir(originPort, caFile)]);
    assert.equal(deployed.code, 0, deployed.stdout + deployed.stderr);
    await waitFor('the app to converge', async () =>
      (await plane.client.app('shop')).converged ? true : undefined,
    );
    await waitFor(
      'the heroku origin healthy',
      async () => ((await originHealth('heroku'))?.health === 'healthy' ? true : undefined),
      15_000,
      250,
    );
  });

  after(async () => {
    load.close();
    await shutDown(plane, dataDir);
    origin.closeAllConnections();
    await new Promise((resolve) => origin.close(resolve));
  });

  it('reports an origin whose CA is not trusted as unhealthy, with the reason', async () => {
    const stale = await waitFor(
      'the stale origin unhealthy',
      async () => {
        const target = await originHealth('stale');
        return target?.health === 'unhealthy' ? target : undefined;
      },
      15_000,
      250,
    );
    assert.match(stale.healthReason, /TLS: certificate not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    // Weighting it is allowed (it may come up), with a warning that says why it would fail now.
    const set = await runCli(dataDir, ['traffic', 'shop', 'web=99', 'stale=1']);
    assert.equal(set.code, 0, set.stderr);
    assert.match(
      set.stdout,
      /warning: origin stale \(https:\/\/127\.0\.0\.1:\d+\) is unhealthy: TLS: certificate not trusted/,
    );
  });

  it('refuses weights that name nothing known or add up to 0', async () => {
    const unknown = await runCli(dataDir, ['traffic', 'shop', 'web=10', 'fly=90']);
    assert.notEqual(unknown.code, 0);
    assert.match(
      unknown.stderr,
      /fly: shop has no routed service or origin "fly"; expected one of web \(service\), heroku \(origin\), stale \(origin\)/,
    );
    const zero = await runCli(dataDir, ['traffic', 'shop', 'web=0', 'heroku=0']);
    assert.notEqual(zero.code, 0);
    assert.match(zero.stderr, /the weights must add up to more than 0/);
    // A deploy whose origin CA file is missing is refused whole, naming the field.
    const dir = appDir(originPort, caFile);
    rmSync(join(dir, 'old-ca.pem'));
    const missing = await runCli(dataDir, ['deploy', dir]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /origins\.heroku\.ca: old-ca\.pem: no such file/);
  });

  it('sends the origin its own Host and SNI over TLS, and honours the weights within 3 %', async () => {
    await setTraffic({ web: 30, heroku: 70 });
    await waitFor('the split in the proxy', async () => {
      const answer = await load.get();
      return JSON.parse(answer.body).greeting === 'heroku' ? true : undefined;
    });
    seen.length = 0;
    const counts = { berth: 0, heroku: 0 };
    // SPLIT_SAMPLE requests are enough for ±3 % (the arithmetic is at its definition).
    const n = SPLIT_SAMPLE;
    for (let i = 0; i < n; i += 10) {
      const answers = await Promise.all(Array.from({ length: 10 }, () => load.get()));
      for (const a of answers) {
        assert.equal(a.status, 200, a.body);
        counts[JSON.parse(a.body).greeting as 'berth' | 'heroku']++;
      }
    }
    const share = (100 * counts.berth) / n;
    assert.ok(Math.abs(share - 30) <= 3, `berth got ${share.toFixed(1)} % (${JSON.stringify(counts)})`);
    assert.equal(seen.length, counts.heroku);
    assert.deepEqual(
      [...new Set(seen.map((s) => `${s.host} ${s.sni} ${s.forwardedHost}`))],
      [`${ORIGIN_HOST} ${ORIGIN_HOST} shop.localhost`],
    );
    const status = await traffic();
    const heroku = status.sides.find((s) => s.name === 'heroku')!;
    assert.equal(heroku.percent, 70);
    assert.ok(heroku.requests >= counts.heroku, `the proxy counted ${heroku.requests} origin requests`);
    // The origin's requests are series of the app in berth metrics, as service origin:heroku.
    await waitFor(
      'origin requests in berth metrics',
      async () => {
        // What `berth metrics shop --since 5m --json` prints, read from the API (a poll, not the test).
        const result = await plane.client.request<{
          series: { service?: string; points: { requests: number }[] }[];
        }>('GET', '/v1/apps/shop/metrics?since=5m&by=service');
        const served = result.series
          .filter((x) => x.service === 'origin:heroku')
          .reduce((sum, x) => sum + x.points.reduce((n, p) => n + p.requests, 0), 0);
        return served >= counts.heroku ? true : undefined;
      },
      20_000,
      500,
    );
  });

  it('sends a tester to either side with X-Berth-Release or the berth-release cookie, whatever the weights', async () => {
    const greeting = async (headers: Record<string, string> = {}) =>
      JSON.parse((await load.send('GET', '/', undefined, 10_000, headers)).body).greeting as string;
    await setTraffic({ web: 100, heroku: 0 });
    await waitFor('the header to reach the origin at weight 0', async () =>
      (await greeting({ 'x-berth-release': 'heroku' })) === 'heroku' ? true : undefined,
    );
    for (let i = 0; i < 10; i++) {
      assert.equal(await greeting({ 'x-berth-release': 'heroku' }), 'heroku');
      assert.equal(await greeting({ cookie: 'berth-release=heroku' }), 'heroku');
      assert.equal(await greeting(), 'berth');
    }
    await setTraffic({ web: 0, heroku: 100 });
    await waitFor('the header to reach the Berth side at weight 0', async () =>
      (await greeting({ 'x-berth-release': 'web' })) === 'berth' ? true : undefined,
    );
    assert.equal(await greeting(), 'heroku');
  });

  it('answers a split only once the proxy serves it: the next request follows the new weights', async () => {
    const greeting = async () => JSON.parse((await load.send('GET', '/', undefined, 10_000)).body).greeting;
    for (let i = 0; i < 10; i++) {
      await setTraffic({ web: 100, heroku: 0 });
      assert.equal(await greeting(), 'berth', `flip ${i}: all to web`);
      await setTraffic({ web: 0, heroku: 100 });
      assert.equal(await greeting(), 'heroku', `flip ${i}: all to heroku`);
    }
  });

  it('ramps the Berth side 10 -> 100 % under load with zero failed requests', async () => {
    await setTraffic({ web: 0, heroku: 100 });
    let status: TrafficStatus | undefined;
    const { answers, failures } = await load.during(async (sofar) => {
      await traffic(['--ramp', 'web', '10,50,100', '--interval', '1s']);
      status = await waitFor(
        'the ramp to succeed',
        async () => {
          const now = await trafficStatus();
          return now.split?.ramp?.state === 'running' ? undefined : now;
        },
        60_000,
        250,
      );
      await answersAfter(sofar, Date.now());
    });
    assert.deepEqual(failures, [], `${failures.length} of ${answers.length} requests failed`);
    assert.equal(status?.split?.ramp?.state, 'succeeded', JSON.stringify(status?.split?.ramp?.last));
    const last = answers.slice(-20).map((a) => JSON.parse(a.body).greeting);
    assert.deepEqual([...new Set(last)], ['berth']);
    assert.ok(answers.some((a) => JSON.parse(a.body).greeting === 'heroku'));
    const events = await plane.client.events({ app: 'shop' });
    assert.equal(events.filter((e) => e.kind === 'traffic.ramp_passed').length, 2);
    assert.equal(events.filter((e) => e.kind === 'traffic.ramp_succeeded').length, 1);
  });

  it('resumes a ramp after a control-plane restart; the proxy keeps the split meanwhile', async () => {
    await setTraffic({ web: 0, heroku: 100 });
    await startRamp('web', [20, 100], 3000);
    const opened = await waitFor(
      'the first window to open',
      async () => {
        const ramp = (await trafficStatus()).split?.ramp;
        return ramp?.windowStartedAt != null ? ramp : undefined;
      },
      30_000,
      250,
    );
    // The window opens when the control plane records the step; the proxy gets the step's weights at the next route
    // sync. A control plane stopped in between leaves the proxy on 0/100, rightly (it keeps the split it has): a
    // stress run failed that way, every answer from heroku.
    await waitFor('the proxy to serve the first step', async () =>
      JSON.parse((await load.get()).body).greeting === 'berth' ? true : undefined,
    );
    await plane.stop();
    const { answers, failures } = await load.during(async (sofar) => {
      await waitFor('200 answers', () => (sofar.answers.length >= 200 ? true : undefined));
    });
    assert.deepEqual(failures, []);
    assert.deepEqual([...new Set(answers.map((a) => JSON.parse(a.body).greeting))].sort(), [
      'berth',
      'heroku',
    ]);
    plane = await startControlPlane(dataDir);
    // The same ramp goes on: still in the window it opened (or already judged on it, the interval having passed
    // while the control plane was down), never started again.
    const resumed = (await trafficStatus()).split?.ramp;
    assert.ok(
      resumed?.windowStartedAt === opened.windowStartedAt || (resumed?.step ?? 0) >= 1,
      JSON.stringify({ opened: opened.windowStartedAt, resumed }),
    );
    const { failures: during } = await load.during(async () => {
      await waitFor(
        'the ramp to succeed',
        async () => ((await trafficStatus()).split?.ramp?.state === 'succeeded' ? true : undefined),
        30_000,
        250,
      );
    });
    assert.deepEqual(during, []);
    const kinds = (await plane.client.events({ app: 'shop' }))
      .map((e) => e.kind)
      .filter((k) => k.startsWith('traffic.ramp_'));
    assert.deepEqual(
      kinds.slice(kinds.lastIndexOf('traffic.ramp_started')),
      [
        'traffic.ramp_started',
        'traffic.ramp_step',
        'traffic.ramp_passed',
        'traffic.ramp_step',
        'traffic.ramp_succeeded',
      ],
      'one window opened before the restart and judged after it, then the last step',
    );
  });

  it('sends every request back to the origin by itself when the Berth side answers 500s', async () => {
    await setTraffic({ web: 0, heroku: 100 });
    const redeployed = await runCli(dataDir, ['deploy', appDir(originPort, caFile, { FAIL_EVERY: '3' })]);
    assert.equal(redeployed.code, 0, redeployed.stdout + redeployed.stderr);
    let abortedAt = 0;
    const { answers } = await load.during(async (sofar) => {
      await startRamp('web', [10, 50, 100], 1000);
      const status = await waitFor(
        'the ramp to end',
        async () => {
          const now = await trafficStatus();
          return now.split?.ramp?.state === 'running' ? undefined : now;
        },
        60_000,
        250,
      );
      assert.equal(status.split?.ramp?.state, 'aborted');
      assert.equal(status.split?.ramp?.last?.weight, 10, 'aborted at the first step');
      abortedAt = Date.now();
      // Counted here, not by answersAfter: the Berth side's 500s before the abort are failures it would count too.
      await waitFor('50 answers a second after the abort', () =>
        sofar.answers.filter((a) => a.sentAt > abortedAt + 1000).length >= 50 ? true : undefined,
      );
    });
    // Only the Berth side's own 500s failed, never the proxy; once the abort is served, only the origin answers.
    const failed = answers.filter((a) => a.status !== 200);
    assert.ok(failed.length > 0);
    assert.ok(failed.every((a) => a.status === 500 && JSON.parse(a.body).greeting === 'berth'));
    const later = answers.filter((a) => a.sentAt > abortedAt + 1000);
    assert.deepEqual(
      [...new Set(later.map((a) => `${a.status} ${JSON.parse(a.body).greeting}`))],
      ['200 heroku'],
    );
    const aborted = (await plane.client.events({ app: 'shop' })).find(
      (e) => e.kind === 'traffic.ramp_aborted',
    );
    assert.match(aborted?.message ?? '', /aborted at 10%, every request back to heroku: 5xx/);
  });
});
