// Integration: 100 MB bodies stream through with bounded memory; the admin API validates, persists and reports.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BerthError } from '../src/domain/errors.js';
import { proxyPaths } from '../src/domain/proxy-paths.js';
import {
  type Backend,
  eventually,
  FAST_HEALTH,
  type ProxyProcess,
  proxyUnavailable,
  removeDir,
  request,
  startBackend,
  startProxy,
  waitHealthy,
} from './proxy-harness.js';

const MB = 1024 * 1024;
const SIZE = 100 * MB;
const CHUNK = Buffer.alloc(256 * 1024, 'berth-');

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

describe('proxy streaming, persistence and admin API', { skip: proxyUnavailable }, () => {
  let proxy: ProxyProcess;
  let backend: Backend;
  const accessLog = join(process.env.TMPDIR ?? '/tmp', `berth-access-${process.pid}.log`);

  before(async () => {
    backend = await startBackend((req, res) => {
      if (req.url === '/health') return res.end('ok');
      if (req.url === '/upload') {
        const hash = createHash('sha256');
        let size = 0;
        req.on('data', (c: Buffer) => {
          size += c.length;
          hash.update(c);
        });
        req.on('end', () => res.end(JSON.stringify({ size, sha: hash.digest('hex') })));
        return;
      }
      if (req.url === '/download') {
        res.setHeader('content-length', SIZE);
        let sent = 0;
        const pump = () => {
          while (sent < SIZE) {
            sent += CHUNK.length;
            if (!res.write(CHUNK)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
        return;
      }
      if (req.url === '/slow') {
        setTimeout(() => res.end('slow'), 500);
        return;
      }
      res.end('hello');
    });
    proxy = await startProxy({ args: ['--access-log-file', accessLog] });
    await proxy.admin.putRouteTable({
      routes: [{ host: 'app.localhost', backends: [{ targetGroup: 'web' }] }],
      targetGroups: [
        { name: 'web', health: FAST_HEALTH, targets: [{ id: 't1', host: '127.0.0.1', port: backend.port }] },
      ],
    });
    await waitHealthy(proxy.admin, 'web', 1);
  });

  after(async () => {
    await proxy.stop();
    await backend.close();
    removeDir(proxy.dataDir);
    removeDir(accessLog);
  });

  it('streams a 100 MB upload and a 100 MB download through with bounded proxy memory', async () => {
    const baseline = peakRssMb(proxy.pid);
    const expected = createHash('sha256');
    const upload = await new Promise<{ size: number; sha: string }>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: proxy.http,
          path: '/upload',
          method: 'PUT',
          headers: { host: 'app.localhost' },
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString();
          });
          res.on('end', () => resolve(JSON.parse(text)));
        },
      );
      req.on('error', reject);
      let sent = 0;
      const pump = () => {
        while (sent < SIZE) {
          sent += CHUNK.length;
          expected.update(CHUNK);
          if (!req.write(CHUNK)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
    assert.equal(upload.size, SIZE);
    assert.equal(upload.sha, expected.digest('hex'));

    const downloaded = await new Promise<number>((resolve, reject) => {
      http
        .get(
          { host: '127.0.0.1', port: proxy.http, path: '/download', headers: { host: 'app.localhost' } },
          (res) => {
            let size = 0;
            res.on('data', (c: Buffer) => {
              size += c.length;
            });
            res.on('end', () => resolve(size));
            res.on('error', reject);
          },
        )
        .on('error', reject);
    });
    assert.equal(downloaded, SIZE);
    const peak = peakRssMb(proxy.pid);
    assert.ok(
      peak - baseline < 64,
      `proxy peak RSS grew by ${(peak - baseline).toFixed(1)} MB for 100 MB bodies`,
    );
  });

  it('rejects an invalid route table whole, with issues naming each field, and keeps serving the old one', async () => {
    const err = await proxy.admin
      .putRouteTable({
        routes: [{ host: 'Bad Host', backends: [{ targetGroup: 'missing' }] }],
        targetGroups: [{ name: 'web', health: { ...FAST_HEALTH, intervalMs: 10 } }],
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    assert.ok(err instanceof BerthError);
    assert.equal(err.code, 'invalid_route_table');
    const paths = err.issues.map((i) => i.path);
    assert.ok(paths.includes('routes.0.host'), JSON.stringify(err.issues));
    assert.ok(paths.includes('targetGroups.0.health.intervalMs'), JSON.stringify(err.issues));
    const crossRef = await proxy.admin
      .putRouteTable({ routes: [{ host: 'x.localhost', backends: [{ targetGroup: 'missing' }] }] })
      .catch((e: BerthError) => e);
    assert.ok(crossRef instanceof BerthError);
    assert.deepEqual(crossRef.issues, [
      { path: 'routes.0.backends.0.targetGroup', message: 'unknown target group "missing"' },
    ]);
    assert.equal((await request(proxy.http)).body, 'hello');
  });

  it('serves the admin API on an owner-only unix socket and reports per-target counters', async () => {
    assert.equal(statSync(proxyPaths(proxy.dataDir).adminSocket).mode & 0o777, 0o600);
    for (let i = 0; i < 20; i++) await request(proxy.http);
    await request(proxy.http, { host: 'unknown.localhost' });
    const metrics = await proxy.admin.metrics();
    const t1 = metrics.targets.find((t) => t.id === 't1')!;
    assert.ok(t1.counters.requests >= 22);
    assert.ok(t1.counters.status['2xx'] >= 22);
    assert.ok(t1.counters.bytesIn > SIZE && t1.counters.bytesOut > SIZE);
    assert.ok(t1.counters.latencyMs.p50 > 0 && t1.counters.latencyMs.p99 >= t1.counters.latencyMs.p50);
    assert.equal(metrics.unrouted.notFound, 1);
    assert.equal(metrics.targetGroups.web?.requests, t1.counters.requests);
  });

  it('writes a JSON-lines access log when asked to', async () => {
    await request(proxy.http, { path: '/logged', headers: { 'x-request-id': 'log-me' } });
    const line = await new Promise<string>((resolve, reject) => {
      const deadline = Date.now() + 5000;
      const poll = () => {
        const found = readFileSync(accessLog, 'utf8')
          .split('\n')
          .find((l) => l.includes('"log-me"'));
        if (found !== undefined) resolve(found);
        else if (Date.now() > deadline) reject(new Error('access log line not written'));
        else setTimeout(poll, 20);
      };
      poll();
    });
    const entry = JSON.parse(line);
    assert.equal(entry.path, '/logged');
    assert.equal(entry.status, 200);
    assert.equal(entry.target, 't1');
  });

  it('applies new route tables under load without failing a single request', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    let stop = false;
    const statuses: number[] = [];
    const load = Array.from({ length: 8 }, async () => {
      while (!stop) statuses.push((await request(proxy.http, { agent })).status);
    });
    const table = await proxy.admin.getRouteTable();
    for (let i = 0; i < 20; i++) {
      const weight = (i % 3) + 1;
      await proxy.admin.putRouteTable({
        ...table,
        routes: [
          { host: 'app.localhost', backends: [{ targetGroup: 'web', weight }] },
          { host: `extra${i}.localhost`, backends: [{ targetGroup: 'web' }] },
        ],
        targetGroups: table.targetGroups.map((g) => ({ ...g, responseTimeoutMs: 10_000 + i })),
      });
    }
    stop = true;
    await Promise.all(load);
    agent.destroy();
    assert.ok(statuses.length > 50, `only ${statuses.length} requests`);
    assert.deepEqual(new Set(statuses), new Set([200]));
  });

  it('restarts with the persisted route table, including targets registered through the API', async () => {
    await proxy.admin.registerTarget('web', { id: 't2', host: '127.0.0.1', port: backend.port, weight: 3 });
    const before = await proxy.admin.getRouteTable();
    assert.equal(await proxy.stop(), 0);
    proxy = await startProxy({ dataDir: proxy.dataDir });
    assert.deepEqual(await proxy.admin.getRouteTable(), before);
    await waitHealthy(proxy.admin, 'web', 2);
    assert.equal((await request(proxy.http)).body, 'hello');
  });

  it('on SIGTERM stops accepting, lets the in-flight request finish and exits 0', async () => {
    const slow = request(proxy.http, { path: '/slow' });
    await eventually(async () => ((await proxy.admin.metrics()).total.inFlight > 0 ? true : undefined));
    const exit = proxy.stop();
    const reply = await slow;
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'slow');
    assert.equal(await exit, 0);
  });
});
