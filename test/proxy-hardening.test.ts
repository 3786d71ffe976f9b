// Integration: the proxy against hostile and slow peers: no replayed writes, timeouts that match real traffic,
// certificates only for served names, forwarding headers only from trusted proxies, no smuggling to a lenient app.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import type { RouteTableInput } from '../src/domain/route-table.js';
import { findPythonWithH11, H11_MISSING } from './http-conformance-harness.js';
import {
  type Backend,
  eventually,
  FAST_HEALTH,
  type ProxyProcess,
  removeDir,
  request,
  startBackend,
  startProxy,
  waitHealthy,
} from './proxy-harness.js';

const SLOW_HEALTH = { ...FAST_HEALTH, intervalMs: 60_000, timeoutMs: 1000 };

/** Sends raw bytes on a new connection; resolves with everything received until the proxy closes (deadline). */
function raw(port: number, bytes: string, deadlineMs = 5000): Promise<{ text: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes, 'latin1'));
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${deadlineMs} ms; got ${JSON.stringify(text)}`));
    }, deadlineMs);
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, ms: Date.now() - started });
    });
  });
}

/** Resolves when `socket` closes; rejects after `deadlineMs`. */
function closed(socket: net.Socket, deadlineMs: number): Promise<number> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve(0);
    const timer = setTimeout(() => reject(new Error(`still open after ${deadlineMs} ms`)), deadlineMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('proxy hardening', () => {
  let proxy: ProxyProcess;
  const backends: Backend[] = [];
  const servers: net.Server[] = [];
  const children: ChildProcess[] = [];
  /** x-request-id of every POST/PUT the replay backend executed. */
  const executed: string[] = [];
  let uploadPort = 0;
  let replayPort = 0;
  let wsPort = 0;

  async function backend(handler: http.RequestListener): Promise<Backend> {
    const b = await startBackend(handler);
    backends.push(b);
    return b;
  }

  async function put(table: object): Promise<void> {
    await proxy.admin.putRouteTable(table as RouteTableInput);
  }

  before(async () => {
    proxy = await startProxy();
    // Answers the first request of every connection, then reads (and "executes") the second one and resets the
    // connection without answering: an app that crashes or restarts just after doing the work.
    const replay = net.createServer((socket) => {
      let served = 0;
      let buf = Buffer.alloc(0);
      socket.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
          const head = buf.subarray(0, end).toString('latin1');
          const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
          if (buf.length < end + 4 + length) return;
          buf = buf.subarray(end + 4 + length);
          if (head.startsWith('GET /health')) {
            socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok');
            return;
          }
          if (/^(POST|PUT|DELETE)/.test(head)) executed.push(/x-request-id: (\S+)/i.exec(head)?.[1] ?? '?');
          if (++served === 2) {
            socket.resetAndDestroy();
            return;
          }
          socket.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndone');
        }
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => replay.listen(0, '127.0.0.1', resolve));
    servers.push(replay);
    replayPort = (replay.address() as net.AddressInfo).port;

    const upload = await backend((req, res) => {
      if (req.url === '/health') return res.end('ok');
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
      });
      req.on('end', () => {
        if (req.url === '/never') return; // reads the body, never answers
        res.end(String(size));
      });
    });
    uploadPort = upload.port;

    const ws = await backend((req, res) => {
      if (req.url === '/health') return res.end('ok');
      if (req.url === '/big') {
        // 64 MiB, far more than socket buffers hold, for a client that stops reading.
        res.setHeader('content-length', 64 * 1024 * 1024);
        const chunk = Buffer.alloc(1024 * 1024, 'x');
        let sent = 0;
        const pump = () => {
          while (sent < 64) {
            sent++;
            if (!res.write(chunk)) return res.once('drain', pump);
          }
          res.end();
        };
        pump();
        return;
      }
      res.end('no upgrade');
    });
    ws.server.on('upgrade', (req, socket: net.Socket) => {
      const accept = createHash('sha1')
        .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
        .digest('base64');
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
      );
      socket.on('data', (frame: Buffer) => socket.write(frame)); // echo
      socket.on('end', () => socket.destroy());
      socket.on('error', () => {});
    });
    wsPort = ws.port;

    const target = (id: string, port: number) => [{ id, host: '127.0.0.1', port }];
    await put({
      routes: [
        { host: 'replay.localhost', backends: [{ targetGroup: 'replay' }] },
        { host: 'replay-put.localhost', backends: [{ targetGroup: 'replay-put' }] },
        { host: 'upload.localhost', backends: [{ targetGroup: 'upload' }] },
        { host: 'ws.localhost', tunnelIdleTimeoutMs: 500, backends: [{ targetGroup: 'ws' }] },
        { host: 'ws-default.localhost', backends: [{ targetGroup: 'ws' }] },
      ],
      targetGroups: [
        { name: 'replay', health: SLOW_HEALTH, targets: target('r', replayPort) },
        { name: 'replay-put', health: SLOW_HEALTH, retryPutDelete: true, targets: target('r', replayPort) },
        {
          name: 'upload',
          health: SLOW_HEALTH,
          responseTimeoutMs: 1000,
          bodyIdleTimeoutMs: 500,
          targets: target('u', uploadPort),
        },
        { name: 'ws', health: SLOW_HEALTH, bodyIdleTimeoutMs: 500, targets: target('w', wsPort) },
      ],
    });
    for (const group of ['replay', 'replay-put', 'upload', 'ws']) await waitHealthy(proxy.admin, group, 1);
  });

  after(async () => {
    assert.equal(await proxy.stop(), 0);
    removeDir(proxy.dataDir);
    for (const child of children) child.kill('SIGKILL');
    for (const server of servers) server.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  it('executes a POST exactly once when the backend resets a reused connection after reading it', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const before = executed.length;
    // The first request leaves a pooled upstream connection; the POST reuses it and the backend resets it.
    assert.equal((await request(proxy.http, { host: 'replay.localhost', agent })).status, 200);
    const post = await request(proxy.http, {
      host: 'replay.localhost',
      method: 'POST',
      body: 'charge=1',
      headers: { 'x-request-id': 'charge-once' },
      agent,
    });
    agent.destroy();
    assert.equal(post.status, 502);
    assert.deepEqual(executed.slice(before), ['charge-once']);
  });

  it('retries an idempotent GET after such a reset, and a PUT only where the target group allows it', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    await request(proxy.http, { host: 'replay.localhost', agent });
    const reply = await request(proxy.http, { host: 'replay.localhost', agent });
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'done');

    const put = async (host: string, id: string) => {
      await request(proxy.http, { host, agent });
      return request(proxy.http, {
        host,
        method: 'PUT',
        body: 'v=1',
        headers: { 'x-request-id': id },
        agent,
      });
    };
    const before = executed.length;
    assert.equal((await put('replay.localhost', 'put-no-retry')).status, 502);
    assert.equal((await put('replay-put.localhost', 'put-retry')).status, 200);
    agent.destroy();
    assert.deepEqual(executed.slice(before), ['put-no-retry', 'put-retry', 'put-retry']);
  });

  it('lets a healthy 2.5 s upload finish under a 1 s response timeout: the timer starts once the body is sent', async () => {
    const started = Date.now();
    const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: proxy.http,
          method: 'POST',
          path: '/upload',
          headers: { host: 'upload.localhost', 'content-length': 11 * 1000 },
          agent: false,
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => {
            body += c.toString();
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      void (async () => {
        // A slow but steady client: 1 KB every 250 ms, the last byte after 2.5 s.
        for (let i = 0; i <= 10; i++) {
          if (i > 0) await sleep(250);
          req.write(Buffer.alloc(1000, 'u'));
        }
        req.end();
      })();
    });
    assert.equal(reply.status, 200);
    assert.equal(reply.body, '11000');
    assert.ok(Date.now() - started >= 2450);
  });

  it('answers 504 when the response head is late after the body was sent', async () => {
    const body = 'x'.repeat(1000);
    const started = Date.now();
    const reply = await request(proxy.http, {
      host: 'upload.localhost',
      path: '/never',
      method: 'POST',
      body,
    });
    const ms = Date.now() - started;
    assert.equal(reply.status, 504);
    assert.ok(ms >= 950 && ms < 3000, `504 after ${ms} ms`);
  });

  it('answers 408 and closes when a client stops sending its body (body idle timeout)', async () => {
    const { text, ms } = await raw(
      proxy.http,
      'POST /stall HTTP/1.1\r\nHost: upload.localhost\r\nContent-Length: 100\r\n\r\nonly ten..',
    );
    assert.match(text, /^HTTP\/1\.1 408 /);
    assert.ok(ms >= 450 && ms < 3000, `closed after ${ms} ms`);
  });

  it('closes the connection when a client stops reading a response (body idle timeout)', async () => {
    const socket = net.connect(proxy.http, '127.0.0.1');
    socket.write('GET /big HTTP/1.1\r\nHost: ws-default.localhost\r\n\r\n');
    socket.pause(); // never reads: the proxy's writes back up, then its reads from the backend stop
    await eventually(async () => ((await proxy.admin.target('ws', 'w')).inFlight === 1 ? true : undefined));
    const status = await eventually(async () => {
      const t = await proxy.admin.target('ws', 'w');
      return t.inFlight === 0 ? t : undefined;
    }, 10_000);
    assert.equal(status.counters.proxyErrors['499'] >= 1, true);
    socket.destroy();
  });

  it('closes an idle upgraded tunnel at its route timeout, and keeps a busy one open', async () => {
    const open = async () => {
      const socket = net.connect(proxy.http, '127.0.0.1');
      socket.on('error', () => {});
      socket.write(
        `GET /chat HTTP/1.1\r\nHost: ws.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
      await new Promise<void>((resolve, reject) => {
        let text = '';
        const timer = setTimeout(() => reject(new Error(`no 101: ${text}`)), 5000);
        const onData = (c: Buffer) => {
          text += c.toString('latin1');
          if (text.includes('\r\n\r\n')) {
            clearTimeout(timer);
            socket.off('data', onData);
            assert.match(text, /^HTTP\/1\.1 101 /);
            resolve();
          }
        };
        socket.on('data', onData);
      });
      return socket;
    };
    const idle = await open();
    const idleMs = await closed(idle, 5000);
    assert.ok(idleMs >= 400 && idleMs < 2000, `idle tunnel closed after ${idleMs} ms`);

    const busy = await open();
    let echoed = 0;
    busy.on('data', () => {
      echoed++;
    });
    for (let i = 0; i < 8; i++) {
      busy.write('ping');
      await sleep(200);
    }
    assert.equal(busy.destroyed, false, 'a tunnel with traffic every 200 ms stays open past 1.5 s');
    assert.ok(echoed >= 4);
    assert.ok((await closed(busy, 5000)) < 2000);
  });

  it('serves a request whose head and body arrive one byte at a time', async () => {
    const text =
      'POST /bytes HTTP/1.1\r\nHost: upload.localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello';
    const socket = net.connect(proxy.http, '127.0.0.1');
    socket.setNoDelay(true);
    let answer = '';
    socket.on('data', (c: Buffer) => {
      answer += c.toString('latin1');
    });
    const done = new Promise((resolve) => socket.on('close', resolve));
    await new Promise((resolve) => socket.once('connect', resolve));
    for (const byte of text) {
      socket.write(byte);
      await sleep(1); // separate segments, as a slow client sends them
    }
    await done;
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.ok(answer.endsWith('\r\n\r\n5'), answer);
  });

  it('retries any method on another target when the first refused the connection (no byte reached it)', async () => {
    // A refused connection carried no byte: retrying it on another target is safe for any method.
    const refused = net.createServer();
    await new Promise<void>((resolve) => refused.listen(0, '127.0.0.1', resolve));
    const gone = (refused.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => refused.close(() => resolve()));
    const table = await proxy.admin.getRouteTable();
    await put({
      ...table,
      routes: [...table.routes, { host: 'failover.localhost', backends: [{ targetGroup: 'failover' }] }],
      targetGroups: [
        ...table.targetGroups,
        {
          name: 'failover',
          health: { ...SLOW_HEALTH, successCodes: '299' }, // never healthy: both stay in (fail open)
          targets: [
            { id: 'gone', host: '127.0.0.1', port: gone },
            { id: 'up', host: '127.0.0.1', port: uploadPort },
          ],
        },
      ],
    });
    for (let i = 0; i < 4; i++) {
      const reply = await request(proxy.http, { host: 'failover.localhost', method: 'POST', body: 'abc' });
      assert.equal(reply.status, 200);
      assert.equal(reply.body, '3');
    }
  });
});

describe('proxy hardening: certificates on demand', () => {
  let proxy: ProxyProcess;

  before(async () => {
    proxy = await startProxy();
    await proxy.admin.putRouteTable({
      routes: [
        { host: 'app.localhost', backends: [{ targetGroup: 'web' }] },
        { host: '*.wild.localhost', backends: [{ targetGroup: 'web' }] },
      ],
      targetGroups: [{ name: 'web', health: SLOW_HEALTH }],
    });
  });

  after(async () => {
    assert.equal(await proxy.stop(), 0);
    removeDir(proxy.dataDir);
  });

  const autoFiles = () => readdirSync(join(proxy.dataDir, 'proxy', 'certs', 'auto')).length;

  function handshake(servername: string, ca?: Buffer): Promise<tls.PeerCertificate> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect(
        {
          host: '127.0.0.1',
          port: proxy.https,
          servername,
          rejectUnauthorized: ca !== undefined,
          ...(ca ? { ca } : {}),
        },
        () => {
          const cert = socket.getPeerCertificate();
          socket.destroy();
          resolve(cert);
        },
      );
      socket.setTimeout(10_000, () => socket.destroy(new Error(`handshake for ${servername} timed out`)));
      socket.on('error', reject);
    });
  }

  it('issues no certificate for 1000 TLS handshakes with names no route serves, and answers with the default one', async () => {
    const before = autoFiles();
    let next = 0;
    const names = Array.from({ length: 1000 }, (_, i) => `probe-${i}.localhost`);
    const worker = async () => {
      while (next < names.length) {
        const cert = await handshake(names[next++]!);
        assert.match(cert.subjectaltname ?? '', /DNS:\*\.localhost/);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    assert.equal(autoFiles(), before);
  });

  it('issues a certificate on demand for a host a route serves, exact or wildcard', async () => {
    const ca = await import('node:fs').then((fs) => fs.readFileSync(proxy.caCert));
    const exact = await handshake('app.localhost', ca);
    assert.match(exact.subjectaltname ?? '', /DNS:app\.localhost/);
    const wild = await handshake('shop.wild.localhost', ca);
    assert.match(wild.subjectaltname ?? '', /shop\.wild\.localhost|\*\.wild\.localhost/);
  });
});

const python = findPythonWithH11();

describe('proxy hardening: a lenient backend behind the proxy (Python http.server)', {
  skip: python === undefined ? H11_MISSING : false,
}, () => {
  let proxy: ProxyProcess;
  let child: ChildProcess | undefined;

  before(async () => {
    // Python's http.server with HTTP/1.1 keep-alive: it reads header lines the lenient way (a bare CR splits them).
    const script = [
      'import http.server, sys',
      'class H(http.server.BaseHTTPRequestHandler):',
      "    protocol_version = 'HTTP/1.1'",
      '    def answer(self):',
      '        body = self.path.encode()',
      '        self.send_response(200)',
      "        self.send_header('Content-Length', str(len(body)))",
      '        self.end_headers()',
      '        self.wfile.write(body)',
      '    def do_GET(self): self.answer()',
      '    def do_POST(self):',
      "        self.rfile.read(int(self.headers.get('Content-Length', 0)))",
      '        self.answer()',
      '    def log_message(self, *args): pass',
      // A thread per connection: the health checker keeps its probe's connection open for 4 s, which a
      // single-threaded server would serve alone meanwhile (the victim's request waited it out).
      "s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)",
      'print(s.server_address[1], flush=True)',
      's.serve_forever()',
    ].join('\n');
    child = spawn(python!, ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise<number>((resolve, reject) => {
      child!.stdout!.once('data', (c: Buffer) => resolve(Number(c.toString().trim())));
      child!.once('error', reject);
    });
    proxy = await startProxy();
    await proxy.admin.putRouteTable({
      routes: [{ host: 'py.localhost', backends: [{ targetGroup: 'py' }] }],
      targetGroups: [
        {
          name: 'py',
          health: { ...SLOW_HEALTH, path: '/' },
          targets: [{ id: 'py', host: '127.0.0.1', port }],
        },
      ],
    });
    await waitHealthy(proxy.admin, 'py', 1);
  });

  after(async () => {
    child?.kill('SIGKILL');
    assert.equal(await proxy.stop(), 0);
    removeDir(proxy.dataDir);
  });

  it('does not let a bare CR in a header smuggle a request onto a pooled connection', async () => {
    const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: py.localhost\r\nX-Pad: 0123456789ab\r\n\r\n';
    const attack = await raw(
      proxy.http,
      `POST /a HTTP/1.1\r\nHost: py.localhost\r\nX-A: \rContent-Length: 0\r\nContent-Length: ${smuggled.length}\r\n` +
        `Connection: close\r\n\r\n${smuggled}`,
    );
    assert.match(attack.text, /^HTTP\/1\.1 400 /);
    // The next user, on its own connection, gets its own response.
    const victim = await request(proxy.http, { host: 'py.localhost', path: '/victim' });
    assert.equal(victim.body, '/victim');
  });
});

describe('proxy hardening: redirects, trusted proxies and the head limit', () => {
  let redirecting: ProxyProcess;
  let trusting: ProxyProcess;
  let backend: Backend;
  let big: http.Server;

  before(async () => {
    backend = await startBackend((req, res) => {
      if (req.url === '/health') return res.end('ok');
      res.end(
        JSON.stringify({
          xff: req.headers['x-forwarded-for'],
          proto: req.headers['x-forwarded-proto'],
          fhost: req.headers['x-forwarded-host'],
          real: req.headers['x-real-ip'],
          underscore: req.headers.x_forwarded_for,
        }),
      );
    });
    // A backend that accepts heads up to 64 KiB, for the configurable limit.
    big = http.createServer({ maxHeaderSize: 64 * 1024 }, (_req, res) => res.end('big ok'));
    await new Promise<void>((resolve) => big.listen(0, '127.0.0.1', resolve));
    redirecting = await startProxy({ redirect: true });
    trusting = await startProxy({
      args: ['--trusted-proxies', '127.0.0.1/32,::1', '--max-head-bytes', '32768'],
    });
    for (const p of [redirecting, trusting]) {
      await p.admin.putRouteTable({
        routes: [
          { host: 'app.localhost', backends: [{ targetGroup: 'web' }] },
          { host: 'big.localhost', backends: [{ targetGroup: 'big' }] },
        ],
        targetGroups: [
          { name: 'web', health: FAST_HEALTH, targets: [{ id: 't', host: '127.0.0.1', port: backend.port }] },
          {
            name: 'big',
            health: { ...SLOW_HEALTH, path: '/' },
            targets: [{ id: 'b', host: '127.0.0.1', port: (big.address() as net.AddressInfo).port }],
          },
        ],
      });
      await waitHealthy(p.admin, 'web', 1);
    }
  });

  after(async () => {
    assert.equal(await redirecting.stop(), 0);
    assert.equal(await trusting.stop(), 0);
    removeDir(redirecting.dataDir);
    removeDir(trusting.dataDir);
    await backend.close();
    big.close();
  });

  it('refuses a Host that is not a valid authority instead of copying it into the redirect', async () => {
    const good = await raw(
      redirecting.http,
      'GET /a?b=c HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n',
    );
    assert.match(
      good.text,
      new RegExp(`\r\nlocation: https://app\\.localhost:${redirecting.https}/a\\?b=c\r\n`),
    );
    for (const host of ['evil.com#', 'evil.com/x', 'a@evil.com', 'evil.com\\x', 'evil.com?']) {
      const bad = await raw(redirecting.http, `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      assert.match(bad.text, /^HTTP\/1\.1 400 /, host);
      assert.doesNotMatch(bad.text, /location:/i, host);
    }
  });

  it("keeps a trusted proxy's forwarding headers and appends the client address", async () => {
    const reply = await request(trusting.http, {
      headers: {
        'x-forwarded-for': '203.0.113.9',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'shop.example',
        'x-real-ip': '203.0.113.9',
        x_forwarded_for: '6.6.6.6',
      },
    });
    assert.deepEqual(JSON.parse(reply.body), {
      xff: '203.0.113.9, 127.0.0.1',
      proto: 'https',
      fhost: 'shop.example',
      real: '203.0.113.9',
    });
  });

  it('answers 431 above --max-head-bytes and forwards heads below it', async () => {
    const under = await request(trusting.http, {
      host: 'big.localhost',
      headers: { 'x-big': 'a'.repeat(20 * 1024) },
    });
    assert.equal(under.status, 200);
    assert.equal(under.body, 'big ok');
    const over = await request(trusting.http, {
      host: 'big.localhost',
      headers: { 'x-big': 'a'.repeat(40 * 1024) },
    });
    assert.equal(over.status, 431);
    // The default proxy stops at 16 KiB, what Node backends accept.
    const dflt = await request(redirecting.http, {
      host: 'big.localhost',
      path: '/.well-known/acme-challenge/x',
      headers: { 'x-big': 'a'.repeat(17 * 1024) },
    });
    assert.equal(dflt.status, 431);
  });
});
