// Integration: the proxy process routes, balances, forwards headers, speaks HTTP/1.1 correctly, TLS and WebSocket.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { BerthError } from '../src/domain/errors.js';
import { SPLIT_SAMPLE } from './load-client.js';
import {
  type Backend,
  FAST_HEALTH,
  type ProxyProcess,
  proxyUnavailable,
  removeDir,
  request,
  startBackend,
  startProxy,
  waitHealthy,
} from './proxy-harness.js';

function named(name: string): http.RequestListener {
  return (req, res) => {
    if (req.url === '/health') {
      res.end('ok');
      return;
    }
    res.setHeader('x-backend', name);
    const status = /^\/status\/(\d+)$/.exec(req.url ?? '');
    if (status !== null) {
      res.statusCode = Number(status[1]);
      res.end();
      return;
    }
    if (req.url === '/api/echo') {
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
      });
      req.on('end', () => {
        res.write('received ');
        res.end(String(size));
      });
      return;
    }
    res.end(
      JSON.stringify({
        name,
        url: req.url,
        xff: req.headers['x-forwarded-for'],
        proto: req.headers['x-forwarded-proto'],
        fhost: req.headers['x-forwarded-host'],
        fport: req.headers['x-forwarded-port'],
        rid: req.headers['x-request-id'],
        connection: req.headers.connection,
      }),
    );
  };
}

async function countBackends(
  port: number,
  host: string,
  n: number,
  concurrency = 16,
): Promise<Map<string, number>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const counts = new Map<string, number>();
  let sent = 0;
  const worker = async () => {
    while (sent < n) {
      sent++;
      const reply = await request(port, { host, agent });
      const name = String(reply.headers['x-backend']);
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return counts;
}

describe('proxy routing and balancing', { skip: proxyUnavailable }, () => {
  let proxy: ProxyProcess;
  const backends: Backend[] = [];
  let a: Backend;
  let b: Backend;
  let c: Backend;
  let api: Backend;
  let lorA: Backend;
  const held: http.ServerResponse[] = [];
  let onHeld: (() => void) | undefined;

  before(async () => {
    a = await startBackend(named('a'));
    b = await startBackend(named('b'));
    c = await startBackend(named('c'));
    api = await startBackend(named('api'));
    const lorAHandler = named('a');
    lorA = await startBackend((req, res) => {
      if (req.url !== '/hold') return lorAHandler(req, res);
      held.push(res);
      onHeld?.();
    });
    backends.push(a, b, c, api, lorA);
    proxy = await startProxy();
    const target = (id: string, backend: Backend, weight = 1) => ({
      id,
      host: '127.0.0.1',
      port: backend.port,
      weight,
    });
    await proxy.admin.putRouteTable({
      routes: [
        { host: 'app.localhost', backends: [{ targetGroup: 'web' }] },
        { host: 'app.localhost', pathPrefix: '/api', backends: [{ targetGroup: 'api' }] },
        { host: '*.wild.localhost', backends: [{ targetGroup: 'c' }] },
        { host: 'weighted.localhost', backends: [{ targetGroup: 'w' }] },
        {
          host: 'canary.localhost',
          backends: [
            { targetGroup: 'stable', weight: 9 },
            { targetGroup: 'canary', weight: 1 },
          ],
        },
        { host: 'lor.localhost', backends: [{ targetGroup: 'lor' }] },
      ],
      targetGroups: [
        { name: 'web', health: FAST_HEALTH, targets: [target('a', a), target('b', b)] },
        { name: 'api', health: FAST_HEALTH, targets: [target('api', api)] },
        { name: 'c', health: FAST_HEALTH, targets: [target('c', c)] },
        { name: 'w', health: FAST_HEALTH, targets: [target('a', a, 1), target('b', b, 3)] },
        { name: 'stable', health: FAST_HEALTH, targets: [target('a', a)] },
        { name: 'canary', health: FAST_HEALTH, targets: [target('c', c)] },
        {
          name: 'lor',
          balancing: 'least_outstanding',
          health: FAST_HEALTH,
          targets: [target('a', lorA), target('b', b)],
        },
      ],
    });
    for (const group of ['web', 'w', 'lor']) await waitHealthy(proxy.admin, group, 2);
    for (const group of ['api', 'c', 'stable', 'canary']) await waitHealthy(proxy.admin, group, 1);
  });

  after(async () => {
    assert.equal(await proxy.stop(), 0);
    await Promise.all(backends.map((x) => x.close()));
    removeDir(proxy.dataDir);
  });

  it('routes by exact host, by the longest path prefix on a segment boundary, and by wildcard host', async () => {
    assert.equal(JSON.parse((await request(proxy.http, { path: '/api/users' })).body).name, 'api');
    assert.equal(JSON.parse((await request(proxy.http, { path: '/api?x=1' })).body).name, 'api');
    assert.notEqual(JSON.parse((await request(proxy.http, { path: '/apix' })).body).name, 'api');
    const wild = await request(proxy.http, { host: 'shop.wild.localhost:8080', path: '/p?q=1' });
    assert.equal(JSON.parse(wild.body).name, 'c');
    assert.equal(JSON.parse(wild.body).url, '/p?q=1');
  });

  it('answers an unknown host with a small 404 page naming the request id', async () => {
    const reply = await request(proxy.http, { host: 'nobody.localhost' });
    assert.equal(reply.status, 404);
    assert.match(reply.body, /No application is configured for host nobody\.localhost/);
    assert.ok(reply.body.includes(String(reply.headers['x-request-id'])));
    assert.ok(reply.body.length < 1024);
  });

  it("sets its own X-Forwarded-* (replacing an untrusted client's) and keeps a valid client X-Request-Id", async () => {
    const reply = await request(proxy.http, {
      path: '/',
      headers: { 'x-request-id': 'client-id-123', 'x-forwarded-for': '203.0.113.9' },
    });
    const seen = JSON.parse(reply.body);
    assert.equal(seen.rid, 'client-id-123');
    assert.equal(reply.headers['x-request-id'], 'client-id-123');
    assert.equal(seen.xff, '127.0.0.1');
    assert.equal(seen.proto, 'http');
    assert.equal(seen.fhost, 'app.localhost');
    assert.equal(seen.fport, String(proxy.http));
    const generated = await request(proxy.http, { headers: { 'x-request-id': 'bad id with spaces' } });
    assert.match(String(generated.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    assert.equal(JSON.parse(generated.body).rid, generated.headers['x-request-id']);
  });

  it('alternates targets with round robin', async () => {
    const names: string[] = [];
    for (let i = 0; i < 6; i++) names.push(String((await request(proxy.http)).headers['x-backend']));
    assert.deepEqual(new Set(names.slice(0, 2)), new Set(['a', 'b']));
    for (let i = 2; i < 6; i++) assert.notEqual(names[i], names[i - 1]);
  });

  it('keeps a drained target final counters in the metrics for the control plane to read', async () => {
    await proxy.admin.registerTarget('api', { id: 'api-gone', host: '127.0.0.1', port: api.port });
    const served = async () =>
      (await proxy.admin.metrics()).targets.find((t) => t.id === 'api-gone')?.counters.requests ?? 0;
    for (let i = 0; i < 20 && (await served()) < 3; i++) await request(proxy.http, { path: '/api/x' });
    const before = await served();
    assert.ok(before >= 3, `api-gone served ${before}`);
    await proxy.admin.deregisterTarget('api', 'api-gone');
    assert.equal((await proxy.admin.waitDrained('api', 'api-gone', 5000)).state, 'drained');
    const listed = (await proxy.admin.metrics()).targets.filter((t) => t.id === 'api-gone');
    assert.deepEqual(
      listed.map((t) => [t.state, t.counters.requests]),
      [['drained', before]],
    );
  });

  it(`splits ${SPLIT_SAMPLE} requests by target weight (1:3) and by target-group weight (9:1) within ±3 %`, async () => {
    // SPLIT_SAMPLE requests are enough for ±3 % (the arithmetic is at its definition).
    const n = SPLIT_SAMPLE;
    const byTarget = await countBackends(proxy.http, 'weighted.localhost', n);
    assert.ok(Math.abs((byTarget.get('b') ?? 0) / n - 0.75) <= 0.03, JSON.stringify([...byTarget]));
    const byGroup = await countBackends(proxy.http, 'canary.localhost', n);
    assert.ok(Math.abs((byGroup.get('c') ?? 0) / n - 0.1) <= 0.03, JSON.stringify([...byGroup]));
  });

  it('sends new requests to the target with the fewest outstanding ones (least outstanding)', async () => {
    // lorA holds /hold requests open; b answers everything at once. Once lorA holds one request, least
    // outstanding sends every following request to b.
    const pending: Promise<unknown>[] = [];
    let landed = '';
    for (let i = 0; i < 4 && landed !== 'a'; i++) {
      landed = await new Promise<string>((resolve) => {
        onHeld = () => resolve('a');
        const reply = request(proxy.http, { host: 'lor.localhost', path: '/hold' });
        pending.push(reply);
        reply.then((r) => resolve(String(r.headers['x-backend'])));
      });
    }
    assert.equal(landed, 'a');
    const names: string[] = [];
    for (let i = 0; i < 10; i++) {
      names.push(
        String((await request(proxy.http, { host: 'lor.localhost', path: '/x' })).headers['x-backend']),
      );
    }
    assert.deepEqual(names, Array(10).fill('b'));
    for (const res of held.splice(0)) res.end('released');
    await Promise.all(pending);
  });

  it('streams chunked request and response bodies and serves HEAD, 204 and 304 without a body', async () => {
    const reply = await request(proxy.http, {
      method: 'POST',
      path: '/api/echo',
      headers: { 'transfer-encoding': 'chunked' },
      body: 'x'.repeat(100),
    });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['transfer-encoding'], 'chunked');
    assert.equal(reply.body, 'received 100');
    // One keep-alive connection: a body-less response must not swallow or delay the next one.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const head = await request(proxy.http, { method: 'HEAD', agent });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal((await request(proxy.http, { path: '/status/204', agent })).status, 204);
    assert.equal((await request(proxy.http, { path: '/status/304', agent })).status, 304);
    const last = await request(proxy.http, { path: '/api/echo', method: 'POST', body: 'abc', agent });
    assert.equal(last.body, 'received 3');
    agent.destroy();
  });

  it('answers pipelined requests in order on one connection and reuses upstream connections', async () => {
    const socket = net.connect(proxy.http, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const req = (path: string) => `GET ${path} HTTP/1.1\r\nHost: app.localhost\r\n\r\n`;
    socket.write(req('/one') + req('/api/two') + req('/three'));
    let text = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timeout: ${text}`)), 5000);
      socket.on('data', (c: Buffer) => {
        text += c.toString();
        if ((text.match(/HTTP\/1\.1 200/g) ?? []).length === 3 && text.includes('"/three"')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    socket.destroy();
    const order = ['"/one"', '"/api/two"', '"/three"'].map((s) => text.indexOf(s));
    assert.ok(order[0]! < order[1]! && order[1]! < order[2]!, text);
  });

  it('refuses malformed and smuggling-prone request heads with 400 and closes', async () => {
    for (const raw of [
      'GET / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: app.localhost\r\n folded: yes\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
      'GET / HTTP/1.1\r\n\r\n',
    ]) {
      const socket = net.connect(proxy.http, '127.0.0.1');
      socket.write(raw);
      const text = await new Promise<string>((resolve) => {
        let out = '';
        socket.on('data', (c: Buffer) => {
          out += c.toString();
        });
        socket.on('close', () => resolve(out));
      });
      assert.match(text, /^HTTP\/1\.1 (400|501) /, raw);
    }
  });

  it('passes a WebSocket upgrade through and echoes frames both ways', async () => {
    const ws = await startBackend((_req, res) => res.end('no'));
    backends.push(ws);
    ws.server.on('upgrade', (req, socket: net.Socket) => {
      const accept = createHash('sha1')
        .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
        .digest('base64');
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
      );
      socket.on('end', () => socket.destroy());
      socket.on('data', (frame: Buffer) => {
        // Unmask a short client frame and send it back unmasked.
        const len = frame[1]! & 0x7f;
        const mask = frame.subarray(2, 6);
        const payload = Buffer.from(frame.subarray(6, 6 + len).map((byte, i) => byte ^ mask[i % 4]!));
        socket.write(Buffer.concat([Buffer.from([0x81, len]), payload]));
      });
    });
    await proxy.admin.registerTarget('c', { id: 'ws', host: '127.0.0.1', port: ws.port });
    await proxy.admin.deregisterTarget('c', 'c');
    const socket = net.connect(proxy.http, '127.0.0.1');
    const key = randomBytes(16).toString('base64');
    socket.write(
      `GET /chat HTTP/1.1\r\nHost: ws.wild.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    const received = await new Promise<Buffer>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      let upgraded = false;
      const timer = setTimeout(() => reject(new Error(`timeout: ${buf.toString()}`)), 5000);
      socket.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        if (!upgraded) {
          const end = buf.indexOf('\r\n\r\n');
          if (end === -1) return;
          assert.match(buf.subarray(0, end).toString(), /^HTTP\/1\.1 101 /);
          upgraded = true;
          buf = buf.subarray(end + 4);
          const payload = Buffer.from('hello through berth');
          const mask = randomBytes(4);
          socket.write(
            Buffer.concat([
              Buffer.from([0x81, 0x80 | payload.length]),
              mask,
              payload.map((x, i) => x ^ mask[i % 4]!),
            ]),
          );
        }
        if (upgraded && buf.length >= 2 && buf.length >= 2 + (buf[1]! & 0x7f)) {
          clearTimeout(timer);
          resolve(buf.subarray(2, 2 + (buf[1]! & 0x7f)));
        }
      });
    });
    assert.equal(received.toString(), 'hello through berth');
    const status = await proxy.admin.target('c', 'ws');
    assert.equal(status.upgraded, 1);
    socket.destroy();
  });
});

describe('proxy listeners: redirect and TLS with the generated CA', { skip: proxyUnavailable }, () => {
  let proxy: ProxyProcess;
  let backend: Backend;

  before(async () => {
    backend = await startBackend(named('tls'));
    proxy = await startProxy({ redirect: true });
    await proxy.admin.putRouteTable({
      routes: [{ host: 'app.localhost', backends: [{ targetGroup: 'web' }] }],
      targetGroups: [
        { name: 'web', health: FAST_HEALTH, targets: [{ id: 't', host: '127.0.0.1', port: backend.port }] },
      ],
    });
    await waitHealthy(proxy.admin, 'web', 1);
  });

  after(async () => {
    assert.equal(await proxy.stop(), 0);
    await backend.close();
    removeDir(proxy.dataDir);
  });

  it('redirects plain HTTP to HTTPS with 301 for GET and 308 for POST, keeping host, path and query', async () => {
    const get = await request(proxy.http, { path: '/a/b?c=d' });
    assert.equal(get.status, 301);
    assert.equal(get.headers.location, `https://app.localhost:${proxy.https}/a/b?c=d`);
    const post = await request(proxy.http, { method: 'POST', path: '/form', body: 'x=1' });
    assert.equal(post.status, 308);
    assert.equal(post.headers.location, `https://app.localhost:${proxy.https}/form`);
  });

  it('does not redirect reserved paths (ACME challenges)', async () => {
    const reply = await request(proxy.http, { path: '/.well-known/acme-challenge/token' });
    assert.equal(reply.status, 200);
    assert.equal(JSON.parse(reply.body).proto, 'http');
  });

  it('serves HTTPS with a certificate that Node verifies against the generated CA, for localhost and *.localhost', async () => {
    const ca = readFileSync(proxy.caCert);
    for (const servername of ['app.localhost', 'localhost']) {
      const body = await new Promise<string>((resolve, reject) => {
        const req = http.request(
          {
            host: '127.0.0.1',
            port: proxy.https,
            path: '/secure',
            headers: { host: 'app.localhost' },
            createConnection: () => tls.connect({ host: '127.0.0.1', port: proxy.https, servername, ca }),
          },
          (res) => {
            let text = '';
            res.on('data', (c: Buffer) => {
              text += c.toString();
            });
            res.on('end', () => resolve(text));
          },
        );
        req.on('error', reject);
        req.end();
      });
      const seen = JSON.parse(body);
      assert.equal(seen.proto, 'https');
      assert.equal(seen.url, '/secure');
    }
  });

  it('serves user certificates by SNI and swaps them on a route-table PUT without dropping connections', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-cert-'));
    try {
      const makeCert = (name: string) => {
        execFileSync(
          'openssl',
          [
            'req',
            '-x509',
            '-newkey',
            'ec',
            '-pkeyopt',
            'ec_paramgen_curve:prime256v1',
            '-nodes',
            '-days',
            '2',
            '-subj',
            '/CN=custom.test',
            '-addext',
            'subjectAltName=DNS:custom.test',
            '-keyout',
            join(dir, `${name}.key`),
            '-out',
            join(dir, `${name}.crt`),
          ],
          { stdio: 'ignore' },
        );
        return { host: 'custom.test', certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`) };
      };
      const first = makeCert('first');
      const second = makeCert('second');
      const table = await proxy.admin.getRouteTable();
      await proxy.admin.putRouteTable({ ...table, certificates: [first] });
      const connect = (ca: Buffer) =>
        new Promise<tls.TLSSocket>((resolve, reject) => {
          const socket = tls.connect(
            { host: '127.0.0.1', port: proxy.https, servername: 'custom.test', ca },
            () => resolve(socket),
          );
          socket.on('error', reject);
        });
      const old = await connect(readFileSync(first.certFile));
      await proxy.admin.putRouteTable({ ...table, certificates: [second] });
      const fresh = await connect(readFileSync(second.certFile));
      fresh.destroy();
      await assert.rejects(connect(readFileSync(first.certFile)));
      // The connection made before the swap still carries requests.
      old.write('GET /still HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n');
      const text = await new Promise<string>((resolve) => {
        let out = '';
        old.on('data', (c: Buffer) => {
          out += c.toString();
        });
        old.on('close', () => resolve(out));
      });
      assert.match(text, /^HTTP\/1\.1 200 /);
      assert.match(text, /"\/still"/);
      const unreadable = await proxy.admin
        .putRouteTable({ ...table, certificates: [{ ...second, certFile: join(dir, 'missing.crt') }] })
        .catch((e: BerthError) => e);
      assert.ok(unreadable instanceof BerthError);
      assert.equal(unreadable.issues[0]?.path, 'certificates.0');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails verification for a client that does not trust the CA', async () => {
    await assert.rejects(
      new Promise((resolve, reject) => {
        const socket = tls.connect(
          { host: '127.0.0.1', port: proxy.https, servername: 'app.localhost' },
          () => resolve(socket.destroy()),
        );
        socket.on('error', reject);
      }),
    );
  });
});

describe('proxy sticky sessions and release override', { skip: proxyUnavailable }, () => {
  let proxy: ProxyProcess;
  let stable: Backend;
  let canary: Backend;
  const target = (id: string, backend: Backend) => ({ id, host: '127.0.0.1', port: backend.port });
  const canaryRoute = (host: string, canaryWeight: number, extra: object) => ({
    host,
    ...extra,
    backends: [
      { targetGroup: 'stable', weight: 100 - canaryWeight, release: 'v1' },
      { targetGroup: 'canary', weight: canaryWeight, release: 'v2' },
    ],
  });
  const table = (stickyCanaryWeight: number) => ({
    routes: [
      canaryRoute('sticky.localhost', stickyCanaryWeight, { stickiness: { durationS: 3600 } }),
      canaryRoute('testers.localhost', 0, { releaseOverride: true }),
    ],
    targetGroups: [
      { name: 'stable', health: FAST_HEALTH, targets: [target('a', stable)] },
      { name: 'canary', health: FAST_HEALTH, targets: [target('c', canary)] },
    ],
  });
  const backendOf = (reply: { headers: http.IncomingHttpHeaders }) => String(reply.headers['x-backend']);
  /** The cookie a reply sets, as a browser sends it back. */
  const cookieOf = (reply: { headers: http.IncomingHttpHeaders }) => {
    const set = reply.headers['set-cookie'];
    assert.equal(set?.length, 1, JSON.stringify(set));
    return set[0]!.slice(0, set[0]!.indexOf(';'));
  };

  before(async () => {
    stable = await startBackend(named('a'));
    canary = await startBackend(named('c'));
    proxy = await startProxy();
    await proxy.admin.putRouteTable(table(10));
    await waitHealthy(proxy.admin, 'stable', 1);
    await waitHealthy(proxy.admin, 'canary', 1);
  });

  after(async () => {
    assert.equal(await proxy.stop(), 0);
    await Promise.all([stable.close(), canary.close()]);
    removeDir(proxy.dataDir);
  });

  it('keeps each client on the release it first got, and splits the others by weight within ±3 %', async () => {
    // The first requests of new clients: some land on the canary (10 %), the others on the stable release.
    const pins = new Map<string, string>();
    for (let i = 0; pins.size < 2 && i < 100; i++) {
      const reply = await request(proxy.http, { host: 'sticky.localhost' });
      assert.match(
        String(reply.headers['set-cookie']),
        /^berth-tg=[\w-]{22}; Path=\/; Max-Age=3600; HttpOnly; SameSite=Lax$/,
      );
      pins.set(backendOf(reply), cookieOf(reply));
    }
    assert.deepEqual([...pins.keys()].sort(), ['a', 'c']);
    for (const [name, cookie] of pins) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
      const seen = await Promise.all(
        Array.from({ length: 200 }, () =>
          request(proxy.http, {
            host: 'sticky.localhost',
            agent,
            headers: { cookie: `theme=dark; ${cookie}` },
          }),
        ),
      );
      agent.destroy();
      assert.deepEqual(new Set(seen.map(backendOf)), new Set([name]), `a client pinned to ${name}`);
      assert.equal(cookieOf(seen[0]!), cookie, 'each response renews the same pin');
    }
    const byGroup = await countBackends(proxy.http, 'sticky.localhost', SPLIT_SAMPLE);
    assert.ok(Math.abs((byGroup.get('c') ?? 0) / SPLIT_SAMPLE - 0.1) <= 0.03, JSON.stringify([...byGroup]));
  });

  it('ignores a cookie naming a group or made up, and re-chooses once the pinned group leaves the route', async () => {
    for (const cookie of ['berth-tg=canary', 'berth-tg=AAAAAAAAAAAAAAAAAAAAAA']) {
      const names = new Set<string>();
      for (let i = 0; i < 30; i++)
        names.add(backendOf(await request(proxy.http, { host: 'sticky.localhost', headers: { cookie } })));
      assert.deepEqual([...names].sort(), ['a', 'c'], `${cookie} picks nothing`);
    }
    let pin = '';
    while (pin === '') {
      const reply = await request(proxy.http, { host: 'sticky.localhost' });
      if (backendOf(reply) === 'c') pin = cookieOf(reply);
    }
    try {
      // The canary aborted: its weight is 0. The client goes to the stable release and gets a cookie for it.
      await proxy.admin.putRouteTable(table(0));
      const reply = await request(proxy.http, { host: 'sticky.localhost', headers: { cookie: pin } });
      assert.equal(backendOf(reply), 'a');
      assert.equal(reply.headers['set-cookie'], undefined, 'one group with a weight: no pin to keep');
    } finally {
      await proxy.admin.putRouteTable(table(10));
    }
  });

  it('sends testers to the release X-Berth-Release or the berth-release cookie names, even at weight 0', async () => {
    for (let i = 0; i < 10; i++) {
      const plain = await request(proxy.http, { host: 'testers.localhost' });
      assert.equal(backendOf(plain), 'a');
      const header = await request(proxy.http, {
        host: 'testers.localhost',
        headers: { 'x-berth-release': 'v2' },
      });
      assert.equal(backendOf(header), 'c');
      const cookie = await request(proxy.http, {
        host: 'testers.localhost',
        headers: { cookie: 'berth-release=v2' },
      });
      assert.equal(backendOf(cookie), 'c');
      assert.equal(cookie.headers['set-cookie'], undefined);
      const unknown = await request(proxy.http, {
        host: 'testers.localhost',
        headers: { 'x-berth-release': 'v9' },
      });
      assert.equal(backendOf(unknown), 'a');
    }
    // A route that does not allow it ignores both.
    const names = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const reply = await request(proxy.http, {
        host: 'sticky.localhost',
        headers: { 'x-berth-release': 'v1', cookie: 'berth-release=v1' },
      });
      names.add(backendOf(reply));
    }
    assert.deepEqual([...names].sort(), ['a', 'c']);
  });

  it('refuses a route table whose backends repeat a release label', async () => {
    const bad = table(10);
    bad.routes[0]!.backends[1]!.release = 'v1';
    await assert.rejects(proxy.admin.putRouteTable(bad), (err: unknown) => {
      assert.ok(err instanceof BerthError);
      assert.deepEqual(err.issues, [{ path: 'routes.0.backends.1.release', message: 'duplicate "v1"' }]);
      return true;
    });
  });
});
