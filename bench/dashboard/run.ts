// Dashboard benchmark: page weight (bytes of each file, raw and gzipped as served) and, in headless chromium,
// the apps page with 20 real apps: time to first contentful paint, to the 20 rows (first meaningful paint) and to
// the first chart (a sparkline with data). Peer in the same run: a static page with the same 20-row table served
// by a plain node:http server, loaded the same way (what the browser costs before any of our code runs).
// Run: npm run build && node dist/bench/dashboard/run.js [--apps 20] [--rounds 5]
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Browser } from 'playwright-core';
import { StaticAssets } from '../../src/control/dashboard/static-assets.js';
import { shutDown, startControlPlane, tempDir, waitFor, writeApp } from '../../test/control-harness.js';
import { DashboardClient, trafficTo } from '../../test/dashboard-harness.js';
import { median } from '../processes.js';

const APP = fileURLToPath(new URL('../../../test/fixtures/metrics-app', import.meta.url));
const { values } = parseArgs({ options: { apps: { type: 'string' }, rounds: { type: 'string' } } });
const APPS = Number(values.apps ?? 20);
const ROUNDS = Number(values.rounds ?? 5);

// Records, in the page, when the apps table has all its rows and when the first sparkline is drawn.
const MARKS = `
  window.__marks = {};
  new MutationObserver(() => {
    const m = window.__marks;
    if (m.rows === undefined && document.querySelectorAll('table.apps tbody tr').length >= ${APPS}) m.rows = performance.now();
    if (m.chart === undefined && document.querySelector('table.apps .spark canvas')) m.chart = performance.now();
  }).observe(document, { childList: true, subtree: true });
`;

function spec(name: string): string {
  return [
    `app: ${name}`,
    'routes:',
    `  - host: ${name}.localhost`,
    '    service: web',
    'services:',
    '  web:',
    `    run: node ${APP}/server.js`,
    '    instances: 1',
    '    health: { path: /health, interval: 500ms, timeout: 300ms, healthy: 1, unhealthy: 2, grace: 1s }',
  ].join('\n');
}

interface Timing {
  fcp: number;
  rows: number;
  chart: number | null;
}

async function measure(
  browser: Browser,
  url: string,
  cookie?: { name: string; value: string; url: string },
): Promise<Timing> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  if (cookie) await context.addCookies([cookie]);
  const page = await context.newPage();
  await page.addInitScript(MARKS);
  await page.goto(url);
  // Function predicates (a string one would need 'unsafe-eval', which the dashboard's CSP refuses).
  // (The predicates are sent as source: no closure, so each names the global itself.)
  await page.waitForFunction(
    () => (globalThis as unknown as { __marks: Partial<Timing> }).__marks.rows !== undefined,
    undefined,
    { timeout: 30_000 },
  );
  if (cookie) {
    await page.waitForFunction(
      () => (globalThis as unknown as { __marks: Partial<Timing> }).__marks.chart !== undefined,
      undefined,
      { timeout: 30_000 },
    );
  }
  const timing = (await page.evaluate(`({
    fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1,
    rows: window.__marks.rows,
    chart: window.__marks.chart ?? null,
  })`)) as Timing;
  await context.close();
  return timing;
}

async function main(): Promise<void> {
  const dataDir = tempDir('berth-bench-dash-');
  const plane = await startControlPlane(dataDir, 30_000, { env: { BERTH_METRICS_INTERVAL: '1s' } });
  const server = createServer();
  let browser: Browser | undefined;
  try {
    const base = JSON.parse(readFileSync(join(dataDir, 'control.json'), 'utf8')).url as string;
    const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    const names = Array.from({ length: APPS }, (_, i) => `app${String(i + 1).padStart(2, '0')}`);
    const started = Date.now();
    for (const name of names) await plane.client.deploy(writeApp({ 'berth.yaml': spec(name) }));
    await waitFor(
      'every app healthy',
      async () => ((await plane.client.apps()).every((a) => a.converged) ? true : undefined),
      120_000,
      250,
    );
    console.log(`deployed ${APPS} apps in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    for (const name of names) await trafficTo(plane.proxyPorts.https, `${name}.localhost`, 5);

    // Page weight: every file as served (gzip), and what the apps page loads.
    const assets = new StaticAssets().list();
    let raw = 0;
    let gz = 0;
    let js = 0;
    for (const asset of assets) {
      const response = await fetch(`${base}${asset.path}`, { headers: { 'accept-encoding': 'gzip' } });
      await response.arrayBuffer();
      raw += asset.bytes;
      gz += asset.gzipped;
      if (asset.path.endsWith('.js')) js += asset.gzipped;
      console.log(
        `  ${asset.path.padEnd(32)} ${String(asset.bytes).padStart(7)} B  ${String(asset.gzipped).padStart(6)} B gzipped`,
      );
    }
    console.log(
      `page weight: ${assets.length} files, ${raw} B raw, ${gz} B gzipped (JavaScript ${js} B gzipped; budget 153600)`,
    );

    // The peer: the same table as static HTML, no script.
    const rows = names.map((n) => `<tr><th>${n}</th><td>web 1/1 healthy</td><td>v1</td></tr>`).join('');
    const staticPage = `<!doctype html><html><head><meta charset="utf-8"><title>static</title></head><body><table class="apps"><tbody>${rows}</tbody></table></body></html>`;
    server.on('request', (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(staticPage));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const peerUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;

    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
    const session = await DashboardClient.signIn(base, token);
    const cookie = {
      name: 'berth_session',
      value: session.setCookie.split(';')[0]!.split('=')[1]!,
      url: base,
    };
    const ours: Timing[] = [];
    const peer: Timing[] = [];
    await measure(browser, `${base}/#/`, cookie); // warm-up: chromium's first page
    for (let round = 0; round < ROUNDS; round++) {
      ours.push(await measure(browser, `${base}/#/`, cookie));
      peer.push(await measure(browser, peerUrl));
    }
    const m = (list: Timing[], key: keyof Timing) => median(list.map((t) => t[key] ?? 0));
    const fmt = (n: number) => `${n.toFixed(0)} ms`;
    console.log(`apps page, ${APPS} apps, median of ${ROUNDS} cold loads (new browser context each):`);
    console.log(
      `  first contentful paint: ours ${fmt(m(ours, 'fcp'))}, static peer ${fmt(m(peer, 'fcp'))}, ratio ${(m(ours, 'fcp') / m(peer, 'fcp')).toFixed(2)}`,
    );
    console.log(
      `  ${APPS} rows shown:          ours ${fmt(m(ours, 'rows'))}, static peer ${fmt(m(peer, 'rows'))}, ratio ${(m(ours, 'rows') / m(peer, 'rows')).toFixed(2)}`,
    );
    console.log(`  first chart drawn:      ours ${fmt(m(ours, 'chart'))}`);
  } finally {
    await browser?.close();
    server.close();
    await shutDown(plane, dataDir);
  }
}

await main();
