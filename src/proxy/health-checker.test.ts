// The separable checker with scripted probers, and the real keep-alive probe against real HTTP servers.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import { DEFAULT_HEALTH } from '../domain/route-table.js';
import {
  HealthCheck,
  HealthChecker,
  httpProbe,
  type ProbeResult,
  type TargetHealthTransition,
} from './health-check.js';

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)),
  );
}

function until<T>(what: string, check: () => T | undefined, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const look = (): void => {
      const value = check();
      if (value !== undefined) resolve(value);
      else if (Date.now() > deadline) reject(new Error(`no ${what} within ${ms}ms`));
      else setTimeout(look, 5);
    };
    look();
  });
}

describe('HealthChecker', () => {
  it('checks each target on its own cadence and reports transitions, closing its prober when unwatched', async () => {
    const results: ProbeResult[] = [{ error: 'connection refused' }, { status: 200 }];
    let closed = 0;
    const changes: TargetHealthTransition[] = [];
    const config = { ...DEFAULT_HEALTH, intervalMs: 60, timeoutMs: 50, graceMs: 1000 };
    const target = {
      host: '127.0.0.1',
      port: 1,
      health: new HealthCheck(config, { registeredAt: Date.now() }),
    };
    const checker = new HealthChecker<typeof target>({
      probe: () => ({ check: async () => results.shift() ?? { status: 200 }, close: () => void closed++ }),
      configOf: () => config,
      onChange: (_, change) => changes.push(change),
    });
    checker.watch(target);
    await until('a transition', () => changes[0]);
    assert.deepEqual(changes, [{ from: 'initial', to: 'healthy', reason: 'status 200' }]);
    checker.unwatch(target);
    assert.equal(closed, 1);
    checker.close();
  });
});

describe('httpProbe', () => {
  it('keeps one connection across checks', async () => {
    let connections = 0;
    const server = http.createServer((_, res) => res.end('ok'));
    server.on('connection', () => connections++);
    const port = await listen(server);
    const prober = httpProbe({ host: '127.0.0.1', port });
    for (let i = 0; i < 5; i++) assert.deepEqual(await prober.check('/health', 1000), { status: 200 });
    assert.equal(connections, 1);
    prober.close();
    server.close();
  });

  it('retries once on a new connection when the kept one turns out closed, so the target is not failed', async () => {
    // Answers the first request of each connection, then drops the connection on its next request: what an app
    // does when its keep-alive timeout fires just as the probe reuses the connection.
    const server = net.createServer((socket) => {
      let requests = 0;
      socket.on('data', () => {
        requests++;
        if (requests === 1) socket.write('HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n');
        else socket.destroy();
      });
    });
    const port = await listen(server);
    const prober = httpProbe({ host: '127.0.0.1', port });
    assert.deepEqual(await prober.check('/', 1000), { status: 204 });
    assert.deepEqual(await prober.check('/', 1000), { status: 204 });
    prober.close();
    server.close();
  });

  it('reports a refused connection and a timeout as such', async () => {
    const closed = net.createServer();
    const port = await listen(closed);
    closed.close();
    assert.deepEqual(await httpProbe({ host: '127.0.0.1', port }).check('/', 500), {
      error: 'connection refused',
    });
    const silent = net.createServer(() => {});
    const silentPort = await listen(silent);
    const prober = httpProbe({ host: '127.0.0.1', port: silentPort });
    assert.deepEqual(await prober.check('/', 100), { error: 'timeout' });
    prober.close();
    silent.close();
  });

  /** A server that answers each request (one per `data` burst ending a head) with the next scripted bytes. */
  async function scripted(
    answers: (string | string[])[],
  ): Promise<{ port: number; connections: () => number; requests: string[]; close(): void }> {
    let connections = 0;
    const requests: string[] = [];
    const server = net.createServer((socket) => {
      connections++;
      let pending = '';
      socket.on('data', async (chunk) => {
        pending += chunk.toString('latin1');
        while (pending.includes('\r\n\r\n')) {
          const end = pending.indexOf('\r\n\r\n') + 4;
          requests.push(pending.slice(0, end));
          pending = pending.slice(end);
          const answer = answers.shift();
          if (answer === undefined) return socket.destroy();
          // Pieces are written one at a time: a response split anywhere, even byte by byte.
          for (const piece of Array.isArray(answer) ? answer : [answer]) {
            if (piece === 'END') socket.end();
            else socket.write(piece);
            await new Promise((resolve) => setImmediate(resolve));
          }
        }
      });
    });
    const port = await listen(server);
    return { port, connections: () => connections, requests, close: () => server.close() };
  }

  it('frames each kind of response body and keeps the connection when it may', async () => {
    const cases: { answer: string | string[]; status: number; reused: boolean }[] = [
      { answer: 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n', status: 200, reused: true },
      {
        answer: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\nok\r\n0\r\nX-T: 1\r\n\r\n',
        status: 200,
        reused: true,
      },
      { answer: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n', status: 204, reused: true },
      { answer: [...'HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy'], status: 503, reused: true },
      {
        answer: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
        status: 200,
        reused: false,
      },
      { answer: 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok', status: 200, reused: false },
      // No length: the body ends with the connection.
      { answer: ['HTTP/1.1 200 OK\r\n\r\nsome body', 'END'], status: 200, reused: false },
    ];
    for (const { answer, status, reused } of cases) {
      const server = await scripted([answer, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n']);
      const prober = httpProbe({ host: '127.0.0.1', port: server.port });
      const label = JSON.stringify(answer).slice(0, 60);
      assert.deepEqual(await prober.check('/health', 2000), { status }, label);
      assert.deepEqual(await prober.check('/health', 2000), { status: 200 }, label);
      assert.equal(server.connections(), reused ? 1 : 2, `${label}: connections`);
      assert.match(server.requests[0]!, /^GET \/health HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+\r\n/);
      prober.close();
      server.close();
    }
  });

  it('fails a malformed response, then checks again on a new connection', async () => {
    const server = await scripted([
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
    ]);
    const prober = httpProbe({ host: '127.0.0.1', port: server.port });
    assert.match(((await prober.check('/', 2000)) as { error: string }).error, /^bad response: /);
    assert.match(((await prober.check('/', 2000)) as { error: string }).error, /^bad response: /);
    assert.deepEqual(await prober.check('/', 2000), { status: 200 });
    assert.equal(server.connections(), 3);
    prober.close();
    server.close();
  });

  it('never sends a path that could split the request', async () => {
    const prober = httpProbe({ host: '127.0.0.1', port: 1 });
    for (const path of ['/a b', '/x\r\nHost: evil', 'health'])
      assert.deepEqual(await prober.check(path, 100), { error: 'invalid health-check path' });
    prober.close();
  });
});
