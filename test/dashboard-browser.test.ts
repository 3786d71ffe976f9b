// Integration in a real browser (Debian's chromium, headless, driven by playwright-core over its debugging pipe)
// against a real control plane with a real app: sign-in, the apps page, a chart with real points, an instance, a
// CLI deploy followed live, a rollback from the page, the log tail, a CSRF-less POST refused, session expiry.
// BERTH_SCREENSHOTS=<dir> saves the main pages there (scripts/dashboard-screenshots.sh regenerates docs/dashboard/).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { AppStatus, InstanceView, ReleaseView } from '../src/domain/api-types.js';
import {
  type ControlPlaneProcess,
  proxyUnavailable,
  runCli,
  shutDown,
  startControlPlane,
  tempDir,
  waitFor,
  writeApp,
} from './control-harness.js';
import { closeTraffic, DashboardClient, trafficTo } from './dashboard-harness.js';

const CHROMIUM = '/usr/bin/chromium';
const APP = fileURLToPath(new URL('../../test/fixtures/metrics-app', import.meta.url));
/** The expiry test's own control plane: sessions that end before the test has waited long. */
const SHORT_SESSION_TTL_S = 5;
const SCREENSHOTS = process.env.BERTH_SCREENSHOTS;

const skip = existsSync(CHROMIUM) ? proxyUnavailable : `${CHROMIUM} not found (Debian package chromium)`;

function spec(greeting: string): string {
  return [
    'app: shop',
    'routes:',
    '  - host: shop.localhost',
    '    service: web',
    'services:',
    '  web:',
    `    run: node ${APP}/server.js`,
    '    instances: 2',
    `    env: { GREETING: ${greeting} }`,
    '    health: { path: /health, interval: 200ms, timeout: 150ms, healthy: 1, unhealthy: 2, grace: 1s }',
    '    deploy: { drain: 1s, stopTimeout: 2s }',
  ].join('\n');
}

describe('dashboard in a browser', { skip }, () => {
  const dataDir = tempDir('berth-dash-browser-');
  let plane: ControlPlaneProcess;
  let base: string;
  let token: string;
  let browser: Browser;

  const newPage = async (): Promise<{ context: BrowserContext; page: Page }> => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    page.on('pageerror', (error) => assert.fail(`page error: ${error.message}`));
    return { context, page };
  };

  const signIn = async (page: Page): Promise<void> => {
    await page.goto(`${base}/`);
    await page.getByLabel('Admin token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('table.apps').waitFor();
  };

  /**
   * The signed-in page the tests after the first share, navigating it as a user would: each page is a renderer
   * process of its own (~0.5 CPU-s to start), and these tests change nothing a later one reads from the page.
   */
  let shared: Page | undefined;
  const signedInPage = async (): Promise<Page> => {
    if (!shared) {
      const { page } = await newPage();
      await signIn(page);
      shared = page;
    }
    return shared;
  };

  const shot = async (page: Page, name: string): Promise<void> => {
    if (!SCREENSHOTS) return;
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  };

  before(async () => {
    plane = await startControlPlane(dataDir, undefined, { env: { BERTH_METRICS_INTERVAL: '1s' } });
    base = JSON.parse(readFileSync(join(dataDir, 'control.json'), 'utf8')).url;
    token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    const deployed = await runCli(dataDir, ['deploy', writeApp({ 'berth.yaml': spec('one') })]);
    assert.equal(deployed.code, 0, deployed.stderr);
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], timeout: 30_000 });
  });

  after(async () => {
    await browser?.close();
    closeTraffic();
    await shutDown(plane, dataDir);
  });

  it('refuses a wrong token, then signs in and lists the real app; the token is kept nowhere', async () => {
    const { context, page } = await newPage();
    await page.goto(`${base}/`);
    await shot(page, 'sign-in');
    await page.getByLabel('Admin token').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Wrong token.' }).waitFor();
    await page.getByLabel('Admin token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const row = page.locator('table.apps tr[data-app="shop"]');
    await row.waitFor();
    assert.match((await row.textContent()) ?? '', /web 2\/2 healthy/);
    assert.match((await row.textContent()) ?? '', /v1/);
    const stored = await page.evaluate(
      'JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie })',
    );
    assert.equal(stored, JSON.stringify({ local: {}, session: {}, cookie: '' }));
    const cookies = await context.cookies();
    assert.equal(cookies.length, 1);
    assert.equal(cookies[0]!.httpOnly, true);
    assert.equal(cookies[0]!.sameSite, 'Strict');
    assert.ok(cookies[0]!.expires > Date.now() / 1000);
    assert.ok(!(await page.content()).includes(token));
    shared = page; // signed in, on the apps page: the next tests go on from here
  });

  it('draws the request chart with real points after traffic, and shows the instances', async () => {
    await trafficTo(plane.proxyPorts.https, 'shop.localhost', 60);
    const page = await signedInPage();
    await page.goto(`${base}/#/`);
    await page.locator('table.apps tr[data-app="shop"] .spark canvas').first().waitFor();
    await shot(page, 'apps');
    await page.getByRole('link', { name: 'shop' }).click();
    const api = await DashboardClient.signIn(base, token);
    const instances = await api.get<InstanceView[]>('/v1/instances?app=shop');
    for (const instance of instances) await page.getByText(instance.id, { exact: true }).waitFor();
    await shot(page, 'instances');
    await page.getByRole('button', { name: 'Restart web' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm' }).click();
    await page.getByRole('status').filter({ hasText: 'service.restarting' }).waitFor();
    await waitFor(
      'the restart to finish',
      async () => {
        const status = await api.get<AppStatus>('/v1/apps/shop');
        const live = await api.get<InstanceView[]>('/v1/instances?app=shop');
        return status.converged && live.every((i) => !instances.some((old) => old.id === i.id))
          ? true
          : undefined;
      },
      30_000,
    );
    await page.getByRole('link', { name: 'Metrics' }).click();
    await page.getByRole('link', { name: '5m' }).click();
    const chart = page.locator('figure.chart', { hasText: 'Requests per minute' });
    await waitFor(
      'requests in the chart',
      async () => {
        const points = Number(await chart.getAttribute('data-points'));
        return points > 0 && (await chart.locator('canvas').count()) === 1 ? true : undefined;
      },
      30_000,
      250,
    );
    await page
      .locator('figure.chart', { hasText: 'Responses by status, per release' })
      .getByText('v1 2xx')
      .waitFor();
    await shot(page, 'metrics');
  });

  it('shows a deploy started from the CLI live, then rolls back from the page to the old release', async () => {
    const page = await signedInPage();
    await page.goto(`${base}/#/apps/shop/releases`);
    await page.locator('article.release[data-version="1"]').waitFor();
    const deploy = runCli(dataDir, ['deploy', writeApp({ 'berth.yaml': spec('two') })]);
    const progress = page.getByLabel('Deploy progress');
    await progress.filter({ hasText: 'deploying shop v2 over v1' }).waitFor();
    await progress.filter({ hasText: /web: \d\/2 new healthy/ }).waitFor();
    await progress.filter({ hasText: 'shop v2 is live' }).waitFor();
    const cli = await deploy;
    assert.equal(cli.code, 0, cli.stderr);
    const v2 = page.locator('article.release[data-version="2"]');
    await v2.getByText('succeeded').waitFor();
    await v2.getByText('Diff from v1').click();
    await v2.getByText('~ services.web.env.GREETING: "one" → "two"').waitFor();
    await shot(page, 'releases');

    await page.getByRole('button', { name: 'Roll back to v1' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('Deploy v1 of shop again').waitFor();
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await page.getByRole('status').filter({ hasText: 'release.created' }).waitFor();
    await progress.filter({ hasText: 'shop v3 is live' }).waitFor();
    const api = await DashboardClient.signIn(base, token);
    const releases = await api.get<ReleaseView[]>('/v1/apps/shop/releases');
    const v3 = releases.find((r) => r.version === 3)!;
    assert.match(v3.description, /rollback to v1/);
    assert.equal(v3.spec.services.web!.env.GREETING, 'one');
    await waitFor('only v3 instances serving', async () => {
      const status = await api.get<AppStatus>('/v1/apps/shop');
      const instances = await api.get<InstanceView[]>('/v1/instances?app=shop');
      return status.converged && instances.every((i) => i.release === 3) ? true : undefined;
    });
    await trafficTo(plane.proxyPorts.https, 'shop.localhost', 5);
  });

  it('tails the log: a line the app prints appears', async () => {
    const page = await signedInPage();
    await page.goto(`${base}/#/apps/shop/logs`);
    await page.getByRole('status').filter({ hasText: 'following' }).waitFor();
    await page.getByLabel('Log lines').locator('li').first().waitFor();
    await trafficTo(plane.proxyPorts.https, 'shop.localhost', 1, '/burst?n=1&tag=from-the-browser-test');
    await page.getByLabel('Log lines').getByText('from-the-browser-test 0').waitFor();
    await shot(page, 'logs');
    for (const section of ['events', 'scaling', 'secrets', 'pipeline']) {
      await page.goto(`${base}/#/apps/shop/${section}`);
      await page.locator('#section-title').waitFor();
      await page.locator('section.section > *').first().waitFor();
    }
  });

  it('refuses a POST without the CSRF token from the signed-in page', async () => {
    const page = await signedInPage();
    const status = await page.evaluate(async () => {
      const response = await fetch('/v1/apps/shop/scale', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ counts: { web: 5 } }),
      });
      return response.status;
    });
    assert.equal(status, 403);
    const api = await DashboardClient.signIn(base, token);
    assert.equal((await api.get<AppStatus>('/v1/apps/shop')).services[0]!.desired, 2);
  });

  it('sends the page back to sign-in when its session expires', async () => {
    // A control plane of its own whose sessions last seconds (the one above keeps the default 8 h): a page left
    // open after signing in is sent back to sign-in once its session ends.
    const shortDir = tempDir('berth-dash-expiry-');
    const short = await startControlPlane(shortDir, undefined, {
      env: { BERTH_SESSION_TTL: `${SHORT_SESSION_TTL_S}s` },
    });
    try {
      const { context, page } = await newPage();
      await page.goto(`${JSON.parse(readFileSync(join(shortDir, 'control.json'), 'utf8')).url}/`);
      await page.getByLabel('Admin token').fill(readFileSync(join(shortDir, 'admin-token'), 'utf8').trim());
      await page.getByRole('button', { name: 'Sign in' }).click();
      const signedInAt = Date.now();
      await page.getByText('No apps yet').waitFor();
      await page
        .getByRole('alert')
        .filter({ hasText: /Your session (expired|ended)/ })
        .waitFor({ timeout: Math.max(1000, signedInAt + (SHORT_SESSION_TTL_S + 10) * 1000 - Date.now()) });
      await page.getByLabel('Admin token').waitFor();
      await context.close();
    } finally {
      await shutDown(short, shortDir);
    }
  });
});
