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
});
