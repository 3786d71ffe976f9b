// Integration: the dashboard over real HTTP against a real control plane with a real app: its files and security
// headers, sign-in (cookie flags, wrong token), CSRF and cross-origin refusals, no token leak, each page's API data
// through the session (the CLI's routes), the live feed, sign-out and session expiry.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import type { AppStatus, InstanceView, ReleaseView } from '../src/domain/api-types.js';
import type { BerthEvent } from '../src/domain/event.js';
import type { MetricsQueryResult } from '../src/domain/metrics-types.js';
import type { PipelineRun } from '../src/domain/pipeline.js';
import {
  type ControlPlaneProcess,
  proxyUnavailable,
  runCli,
  shutDown,
  startControlPlane,
  tempDir,
  waitFor,
  withDeadline,
  writeApp,
} from './control-harness.js';
import { DashboardClient, trafficTo } from './dashboard-harness.js';

const APP = fileURLToPath(new URL('../../test/fixtures/metrics-app', import.meta.url));
const SECRET_VALUE = 'postgres://shop:dash-s3cr3t@db.internal/shop';
const SESSION_TTL_S = 8;

function spec(extra: string[] = []): string {
  return [
    'app: dash',
    'routes:',
    '  - host: dash.localhost',
    '    service: web',
    'services:',
    '  web:',
    `    run: node ${APP}/server.js`,
    '    instances: 2',
    '    health: { path: /health, interval: 200ms, timeout: 150ms, healthy: 1, unhealthy: 2, grace: 1s }',
    '    deploy: { drain: 1s, stopTimeout: 2s }',
    ...extra,
  ].join('\n');
}

describe('dashboard over HTTP', { skip: proxyUnavailable }, () => {
  const dataDir = tempDir('berth-dash-');
  let plane: ControlPlaneProcess;
  let base: string;
  let token: string;

  before(async () => {
    plane = await startControlPlane(dataDir, undefined, {
      env: { BERTH_METRICS_INTERVAL: '250ms', BERTH_SESSION_TTL: `${SESSION_TTL_S}s` },
    });
    base = JSON.parse(readFileSync(join(dataDir, 'control.json'), 'utf8')).url;
    token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    const deployed = await runCli(dataDir, ['deploy', writeApp({ 'berth.yaml': spec() })]);
    assert.equal(deployed.code, 0, deployed.stderr);
  });

  after(async () => {
    await shutDown(plane, dataDir);
  });

  it('serves the page and its files to anyone, gzipped, with the security headers', async () => {
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
    const html = await page.text();
    const scripts = [...html.matchAll(/(?:src|href)="(\/ui\/[^"]+)"/g)].map((m) => m[1]!);
    assert.ok(scripts.includes('/ui/main.js') && scripts.includes('/ui/vendor/uPlot.iife.min.js'), html);
    for (const path of scripts) {
      const raw = await rawGet(`${base}${path}`, { 'accept-encoding': 'gzip' });
      assert.equal(raw.status, 200, path);
      assert.equal(raw.headers['content-encoding'], 'gzip', path);
      assert.ok(gunzipSync(raw.body).length > raw.body.length, path);
      const again = await fetch(`${base}${path}`, {
        headers: { 'if-none-match': raw.headers.etag as string },
      });
      assert.equal(again.status, 304, path);
    }
    assert.equal((await fetch(`${base}/ui/nope.js`)).status, 404);
  });

  it('keeps every API route closed without the token or a session', async () => {
    for (const path of ['/v1/apps', '/v1/instances', '/v1/live', '/v1/apps/dash/secrets', '/metrics']) {
      const response = await fetch(`${base}${path}`);
      assert.equal(response.status, 401, path);
    }
  });

  it('refuses a wrong token and sets no cookie', async () => {
    for (const body of [{ token: 'wrong' }, { token: `${token}x` }, { token: ` ${token.slice(1)}` }]) {
      const response = await fetch(`${base}/v1/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      assert.equal(response.status, 401);
      assert.equal(response.headers.get('set-cookie'), null);
    }
    // A form post (what a cross-site page can send without a preflight) is not even parsed.
    const form = await fetch(`${base}/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${token}`,
    });
    assert.ok(form.status >= 400 && form.status < 500, String(form.status));
    assert.equal(form.headers.get('set-cookie'), null);
  });

  it('exchanges the token for an HttpOnly, SameSite=Strict, expiring cookie and never sends the token back', async () => {
    const client = await DashboardClient.signIn(base, token);
    const cookie = client.setCookie;
    assert.match(cookie, /^berth_session=[A-Za-z0-9_-]{43}; /);
    assert.match(cookie, /; HttpOnly/);
    assert.match(cookie, /; SameSite=Strict/);
    assert.match(cookie, /; Path=\//);
    const maxAge = Number(/Max-Age=(\d+)/.exec(cookie)?.[1]);
    assert.ok(maxAge > 0 && maxAge <= SESSION_TTL_S, cookie);
    assert.doesNotMatch(cookie, /Secure/);
    assert.ok(!cookie.includes(token));
    assert.ok(client.csrf.length >= 32 && client.csrf !== token);
    // Behind a TLS-terminating proxy the cookie is Secure.
    const tls = await fetch(`${base}/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-proto': 'https' },
      body: JSON.stringify({ token }),
    });
    assert.match(tls.headers.get('set-cookie') ?? '', /; Secure$/);
    // Nothing the browser receives carries the token: the page, its files, the session answers.
    const seen = [await (await fetch(`${base}/`)).text(), JSON.stringify(await client.get('/v1/session'))];
    for (const path of ['/ui/main.js', '/ui/api.js', '/ui/live.js'])
      seen.push(await (await fetch(`${base}${path}`)).text());
    for (const text of seen) assert.ok(!text.includes(token));
  });

  it('refuses an action without the CSRF token, with a wrong one, or from another origin, and changes nothing', async () => {
    const client = await DashboardClient.signIn(base, token);
    const lastId = (await client.get<BerthEvent[]>('/v1/events?app=dash&limit=1'))[0]?.id ?? 0;
    const attempts: Record<string, string>[] = [
      {},
      { 'x-csrf-token': 'not-the-token' },
      { 'x-csrf-token': client.csrf, origin: 'http://evil.example' },
      { 'x-csrf-token': client.csrf, 'sec-fetch-site': 'cross-site' },
    ];
    for (const headers of attempts) {
      const response = await client.raw('POST', '/v1/apps/dash/scale', { counts: { web: 5 } }, headers);
      assert.equal(response.status, 403, JSON.stringify(headers));
      const body = (await response.json()) as { error: { code: string } };
      assert.equal(body.error.code, 'forbidden');
    }
    const status = await client.get<AppStatus>('/v1/apps/dash');
    assert.equal(status.services[0]!.desired, 2);
    const events = await client.get<BerthEvent[]>(`/v1/events?app=dash&after=${lastId}`);
    assert.deepEqual(
      events.filter((e) => e.kind === 'service.scaled'),
      [],
    );
    // The token path (the CLI) needs no CSRF token: only cookie sessions do.
    const cli = await runCli(dataDir, ['ps', 'dash', '--json']);
    assert.equal(cli.code, 0, cli.stderr);
  });

  it('scales through the session with its CSRF token, the event it produced following on the live feed', async () => {
    const client = await DashboardClient.signIn(base, token);
    const feed = client.live('/v1/live?app=dash');
    try {
      await feed.next((m) => m.event === 'hello');
      const scaled = await client.post('/v1/apps/dash/scale', { counts: { web: 3 } });
      assert.ok(Array.isArray(scaled));
      const event = await feed.next(
        (m) => m.event === 'berth' && JSON.parse(m.data).kind === 'service.scaled',
      );
      assert.match(JSON.parse(event.data).message, /web/);
      assert.ok(event.id !== undefined);
      await feed.next((m) => m.event === 'tick');
    } finally {
      feed.close();
    }
    await waitFor('3 healthy instances', async () => {
      const status = await client.get<AppStatus>('/v1/apps/dash');
      return status.services[0]!.healthy === 3 && status.converged ? true : undefined;
    });
    await client.post('/v1/apps/dash/scale', { counts: { web: 2 } });
  });

  it('restarts a service through the session: every instance replaced, rolling, in the same release', async () => {
    const client = await DashboardClient.signIn(base, token);
    await waitFor('the app converged', async () =>
      (await client.get<AppStatus>('/v1/apps/dash')).converged ? true : undefined,
    );
    const before = (await client.get<InstanceView[]>('/v1/instances?app=dash')).map((i) => i.id);
    const refused = await client.raw('POST', '/v1/apps/dash/services/web/restart', {});
    assert.equal(refused.status, 403);
    const restarting = await client.post<{ outdated: number }>('/v1/apps/dash/services/web/restart');
    assert.equal(restarting.outdated, before.length);
    const load = trafficTo(plane.proxyPorts.https, 'dash.localhost', 200);
    await waitFor(
      'only fresh instances',
      async () => {
        const status = await client.get<AppStatus>('/v1/apps/dash');
        const live = await client.get<InstanceView[]>('/v1/instances?app=dash');
        return status.converged && live.length === before.length && live.every((i) => !before.includes(i.id))
          ? live
          : undefined;
      },
      30_000,
    );
    await load; // every one of the requests sent during the restart answered 200
    const events = await client.get<BerthEvent[]>('/v1/events?app=dash&limit=100');
    assert.ok(events.some((e) => e.kind === 'service.restarting'));
    assert.equal((await client.get<AppStatus>('/v1/apps/dash')).release, 1);
    const cli = await runCli(dataDir, ['restart', 'dash', 'nope']);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /dash has no service nope/);
  });

  it('gives each page its data through the session: apps, instances, metrics, releases, events, alarms, autoscaling', async () => {
    const client = await DashboardClient.signIn(base, token);
    await trafficTo(plane.proxyPorts.https, 'dash.localhost', 40);
    const apps = await client.get<AppStatus[]>('/v1/apps');
    assert.deepEqual(
      apps.map((a) => a.app),
      ['dash'],
    );
    const instances = await client.get<InstanceView[]>('/v1/instances?app=dash');
    assert.ok(instances.length >= 2);
    assert.ok(instances.every((i) => i.pid !== null && i.app === 'dash'));
    const metrics = await waitFor('the traffic in the metrics', async () => {
      const result = await client.get<MetricsQueryResult>(
        '/v1/apps/dash/metrics?since=5m&service=web&by=release',
      );
      const requests = result.series.flatMap((s) => s.points).reduce((n, p) => n + p.s2xx, 0);
      return requests >= 40 ? result : undefined;
    });
    assert.equal(metrics.series[0]!.release, 1);
    const releases = await client.get<ReleaseView[]>('/v1/apps/dash/releases');
    assert.equal(releases[0]!.deployment?.state, 'succeeded');
    const events = await client.get<BerthEvent[]>('/v1/events?app=dash&limit=500');
    assert.ok(events.some((e) => e.kind === 'deployment.succeeded'));
    assert.deepEqual(await client.get('/v1/alarms?app=dash'), []);
    assert.deepEqual(await client.get('/v1/apps/dash/autoscale'), []);
  });

  it('lists secrets by name, version and user, never their value, and follows a log line the app prints', async () => {
    const client = await DashboardClient.signIn(base, token);
    await client.post('/v1/apps/dash/secrets', { values: { DB_URL: SECRET_VALUE } });
    const deployed = await runCli(dataDir, [
      'deploy',
      writeApp({ 'berth.yaml': spec(['    secrets: [DB_URL]']) }),
    ]);
    assert.equal(deployed.code, 0, deployed.stderr);
    const response = await client.raw('GET', '/v1/apps/dash/secrets');
    const text = await response.text();
    assert.ok(!text.includes(SECRET_VALUE) && !text.includes('dash-s3cr3t'));
    const [secret] = JSON.parse(text) as { name: string; version: number; usedBy: string[] }[];
    assert.deepEqual(
      { ...secret, updatedAt: 0 },
      { ...secret, updatedAt: 0, name: 'DB_URL', version: 1, usedBy: ['web'] },
    );

    const stop = new AbortController();
    const lines: string[] = [];
    const follow = client.stream('/v1/apps/dash/logs?follow=1&lines=1&service=web', stop.signal, (line) =>
      lines.push(line),
    );
    try {
      await waitFor('the log follow to start', () => (lines.length > 0 ? true : undefined));
      await fetchVia(plane.proxyPorts.https, 'dash.localhost', '/burst?n=1&tag=dashboard-log-line');
      await waitFor('the printed line in the log tail', () =>
        lines.some((l) => l.includes('dashboard-log-line 0')) ? true : undefined,
      );
    } finally {
      stop.abort();
      await follow.catch(() => undefined);
    }
  });

  it('promotes a waiting pipeline run through the session and shows its jobs with their output', async () => {
    const client = await DashboardClient.signIn(base, token);
    const dir = writeApp({
      'berth.yaml': spec([
        '    secrets: [DB_URL]',
        'pipeline:',
        '  check: [echo checking-from-pipeline]',
        '  test: []',
        '  deploy: manual',
      ]),
    });
    const started = await client.post<PipelineRun>('/v1/pipeline/runs', { directory: dir, app: 'dash' });
    const waiting = await waitFor(
      'the run to wait for promotion',
      async () => {
        const run = await client.get<PipelineRun>(`/v1/apps/dash/pipeline/runs/${started.number}`);
        return run.status === 'waiting' ? run : undefined;
      },
      60_000,
    );
    assert.match(waiting.jobs.find((j) => j.stage === 'check')?.output ?? '', /checking-from-pipeline/);
    const refused = await client.raw(
      'POST',
      `/v1/apps/dash/pipeline/runs/${started.number}/promote`,
      {},
      { 'x-csrf-token': '' },
    );
    assert.equal(refused.status, 403);
    await client.post(`/v1/apps/dash/pipeline/runs/${started.number}/promote`, {});
    const done = await waitFor(
      'the promoted run to deploy',
      async () => {
        const run = await client.get<PipelineRun>(`/v1/apps/dash/pipeline/runs/${started.number}`);
        return run.status === 'succeeded' || run.status === 'failed' ? run : undefined;
      },
      60_000,
    );
    assert.equal(done.status, 'succeeded', done.reason ?? '');
  });

  it('ends a session on sign-out and when it expires; the live feed says so', async () => {
    const out = await DashboardClient.signIn(base, token);
    await out.delete('/v1/session');
    assert.equal((await out.raw('GET', '/v1/apps')).status, 401);

    const client = await DashboardClient.signIn(base, token);
    const feed = client.live('/v1/live');
    try {
      await feed.next((m) => m.event === 'hello');
      await withDeadline(
        feed.next((m) => m.event === 'expired', (SESSION_TTL_S + 5) * 1000),
        (SESSION_TTL_S + 6) * 1000,
        'the live feed to say the session expired',
      );
    } finally {
      feed.close();
    }
    assert.ok(Date.now() >= client.expiresAt);
    assert.equal((await client.raw('GET', '/v1/apps')).status, 401);
    assert.deepEqual(await (await client.raw('GET', '/v1/session')).json(), { csrf: null, expiresAt: null });
  });
});

async function rawGet(url: string, headers: Record<string, string>) {
  const { request } = await import('node:http');
  return new Promise<{
    status: number;
    headers: Record<string, string | string[] | undefined>;
    body: Buffer;
  }>((resolve, reject) => {
    request(url, { headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }),
      );
    })
      .on('error', reject)
      .end();
  });
}

async function fetchVia(port: number, host: string, path: string): Promise<void> {
  await trafficTo(port, host, 1, path);
}
