// Integration: error classes, retry, health checks with thresholds and fail-open, and draining, on the real process.
import assert from 'node:assert/strict';
import type http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { ProxyEvent, RouteTableInput } from '../src/domain/route-table.js';
import {
  type Backend,
  closedPort,
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

describe('proxy failures, health and draining', { skip: proxyUnavailable }, () => {
  let proxy: ProxyProcess;
  const backends: Backend[] = [];
  const parked: http.ServerResponse[] = [];
  let aborted = 0;
  let healthStatus = 200;
  let healthHits = 0;

  const ok =
    (name: string): http.RequestListener =>
    (req, res) => {
      if (req.url === '/health') {
        res.end('ok');
        return;
      }
      res.setHeader('x-backend', name);
      res.end(name);
    };

  async function backend(handler: http.RequestListener): Promise<Backend> {
    const b = await startBackend(handler);
    backends.push(b);
    return b;
  }

  /**
   * A raw TCP backend on loopback: `connection()` makes each new connection's handler, called with every request
   * head that arrives on it (these requests have no body) until the handler destroys the socket.
   */
  async function rawBackend(
    connection: () => (head: string, socket: net.Socket) => void,
  ): Promise<{ port: number; close: () => void }> {
    const server = net.createServer((socket) => {
      const onHead = connection();
      let buf = '';
      socket.on('data', (c: Buffer) => {
        buf += c.toString('latin1');
        while (!socket.destroyed && buf.includes('\r\n\r\n')) {
          const head = buf.slice(0, buf.indexOf('\r\n\r\n'));
          buf = buf.slice(head.length + 4);
          onHead(head, socket);
        }
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
  }

  /** Adds a route `<group>.localhost` to a new target group of the proxy's table. */
  async function addGroup(group: NonNullable<RouteTableInput['targetGroups']>[number]): Promise<void> {
    const table = await proxy.admin.getRouteTable();
    await proxy.admin.putRouteTable({
      ...table,
      routes: [...table.routes, { host: `${group.name}.localhost`, backends: [{ targetGroup: group.name }] }],
      targetGroups: [...table.targetGroups, group],
    });
  }

  /** Events of the proxy after `after`, waiting until `match` finds one. */
  async function waitEvent(after: number, match: (e: ProxyEvent) => boolean): Promise<ProxyEvent> {
    let cursor = after;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const { events, lastSeq } = await proxy.admin.events(cursor, 2000);
      const found = events.find(match);
      if (found !== undefined) return found;
      cursor = lastSeq;
    }
    throw new Error('event not seen before the deadline');
  }

  before(async () => {
    proxy = await startProxy();
    const refused = await closedPort();
    const slowNever = await backend((req, res) => {
      if (req.url === '/health') return res.end('ok');
      req.on('close', () => {
        if (!res.writableEnded) aborted++;
      });
      parked.push(res);
    });
    const reset = await backend((req, res) => {
      if (req.url === '/health') return res.end('ok');
      req.socket.destroy();
    });
    const live = await backend(ok('live'));
    const flappy = await backend((req, res) => {
      if (req.url === '/health') {
        healthHits++;
        res.statusCode = healthStatus;
        return res.end();
      }
      res.setHeader('x-backend', 'flappy');
      res.end('flappy');
    });
    const t = (id: string, port: number) => ({ id, host: '127.0.0.1', port });
    await proxy.admin.putRouteTable({
      routes: [
        { host: 'empty.localhost', backends: [{ targetGroup: 'empty' }] },
        { host: 'refused.localhost', backends: [{ targetGroup: 'refused' }] },
        { host: 'reset.localhost', backends: [{ targetGroup: 'reset' }] },
        { host: 'slow.localhost', backends: [{ targetGroup: 'slow' }] },
        { host: 'retry.localhost', backends: [{ targetGroup: 'retry' }] },
        { host: 'health.localhost', backends: [{ targetGroup: 'health' }] },
      ],
      targetGroups: [
        { name: 'empty', health: FAST_HEALTH },
        { name: 'refused', health: FAST_HEALTH, targets: [t('gone', refused)] },
        { name: 'reset', health: FAST_HEALTH, targets: [t('reset', reset.port)] },
        { name: 'slow', health: FAST_HEALTH, responseTimeoutMs: 300, targets: [t('slow', slowNever.port)] },
        {
          name: 'retry',
          // No check ever passes here (success code 299), so both targets stay in traffic (fail open) until
          // the refused one is taken out passively.
          health: { ...FAST_HEALTH, intervalMs: 60_000, timeoutMs: 1000, successCodes: '299' },
          targets: [t('gone', refused), t('live', live.port)],
        },
        {
          name: 'health',
          health: { ...FAST_HEALTH, healthyThreshold: 3, unhealthyThreshold: 2 },
          targets: [],
        },
      ],
    });
    void flappy;
  });

  after(async () => {
    for (const res of parked) res.destroy();
    assert.equal(await proxy.stop(), 0);
    await Promise.all(backends.map((b) => b.close()));
    removeDir(proxy.dataDir);
  });

  it('answers 503 when a target group has no targets', async () => {
    const reply = await request(proxy.http, { host: 'empty.localhost' });
    assert.equal(reply.status, 503);
    assert.ok(reply.body.includes(String(reply.headers['x-request-id'])));
  });

  it('answers 502 when the only target refuses connections, and marks it unhealthy', async () => {
    const reply = await request(proxy.http, { host: 'refused.localhost' });
    assert.equal(reply.status, 502);
    const status = await proxy.admin.target('refused', 'gone');
    assert.equal(status.health, 'unhealthy');
    assert.equal(status.counters.proxyErrors['502'], 1);
  });

  it('answers 502 when the target resets the connection before responding', async () => {
    await waitHealthy(proxy.admin, 'reset', 1);
    const reply = await request(proxy.http, { host: 'reset.localhost' });
    assert.equal(reply.status, 502);
  });

  it('answers 504 when the response head does not arrive within the group response timeout', async () => {
    const started = Date.now();
    const reply = await request(proxy.http, { host: 'slow.localhost' });
    assert.equal(reply.status, 504);
    assert.ok(Date.now() - started >= 250);
    assert.match(reply.body, /Request id/);
  });

  it('records 499 and aborts the upstream request when the client goes away', async () => {
    const before = (await proxy.admin.target('slow', 'slow')).counters.proxyErrors['499'];
    const abortedBefore = aborted;
    await assert.rejects(request(proxy.http, { host: 'slow.localhost', timeoutMs: 100 }));
    const counted = await eventually(async () => {
      const status = await proxy.admin.target('slow', 'slow');
      return status.counters.proxyErrors['499'] > before && aborted > abortedBefore ? status : undefined;
    });
    assert.equal(counted.inFlight, 0);
  });

  it('retries a refused connection once on another target, so every request succeeds', async () => {
    const after = proxy.admin.events(0).then((e) => e.lastSeq);
    const seq = await after;
    for (let i = 0; i < 10; i++) {
      const reply = await request(proxy.http, { host: 'retry.localhost' });
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'live');
    }
    const gone = await proxy.admin.target('retry', 'gone');
    assert.equal(gone.health, 'unhealthy');
    assert.ok(gone.counters.retries >= 1);
    const event = await waitEvent(seq, (e) => e.type === 'target_health' && e.targetGroup === 'retry');
    assert.deepEqual(event.type === 'target_health' ? [event.target, event.to, event.reason] : [], [
      'gone',
      'unhealthy',
      'connection refused',
    ]);
  });

  it('follows ALB health semantics: one pass to join, `unhealthy` failures to leave, `healthy` passes to return', async () => {
    const flappy = backends[3]!;
    const start = (await proxy.admin.events(0)).lastSeq;
    await proxy.admin.registerTarget('health', { id: 'f', host: '127.0.0.1', port: flappy.port });
    const joined = await waitEvent(start, (e) => e.type === 'target_health' && e.target === 'f');
    assert.ok(joined.type === 'target_health' && joined.from === 'initial' && joined.to === 'healthy');
    assert.equal(joined.type === 'target_health' && joined.reason, 'status 200');

    healthStatus = 500;
    const hitsAtFailure = healthHits;
    const left = await waitEvent(joined.seq, (e) => e.type === 'target_health' && e.target === 'f');
    assert.ok(left.type === 'target_health' && left.to === 'unhealthy' && left.reason === 'status 500');
    assert.ok(healthHits - hitsAtFailure >= 2, 'needs two consecutive failures');

    // Fail open: the only target is unhealthy, yet it still gets traffic.
    assert.equal((await request(proxy.http, { host: 'health.localhost' })).body, 'flappy');

    // With a healthy peer, the unhealthy target gets nothing.
    const peer = await backend(ok('peer'));
    await proxy.admin.registerTarget('health', { id: 'peer', host: '127.0.0.1', port: peer.port });
    await eventually(async () =>
      (await proxy.admin.target('health', 'peer')).health === 'healthy' ? true : undefined,
    );
    for (let i = 0; i < 6; i++)
      assert.equal((await request(proxy.http, { host: 'health.localhost' })).body, 'peer');

    healthStatus = 200;
    const hitsAtRecovery = healthHits;
    const back = await waitEvent(left.seq, (e) => e.type === 'target_health' && e.target === 'f');
    assert.ok(back.type === 'target_health' && back.from === 'unhealthy' && back.to === 'healthy');
    assert.ok(healthHits - hitsAtRecovery >= 3, 'needs three consecutive passes');
  });

  it('retries on a fresh connection when a reused keep-alive connection turns out closed', async () => {
    // A raw backend that drops every connection on its second request, as an app does when its keep-alive
    // timeout fires just as the proxy reuses the connection.
    const server = await rawBackend(() => {
      let requests = 0;
      return (_head, socket) => {
        if (++requests === 2) socket.destroy();
        else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh');
      };
    });
    try {
      await addGroup({
        name: 'stale',
        health: { ...FAST_HEALTH, intervalMs: 60_000, timeoutMs: 1000 },
        targets: [{ id: 's', host: '127.0.0.1', port: server.port }],
      });
      for (let i = 0; i < 3; i++) {
        const reply = await request(proxy.http, { host: 'stale.localhost' });
        assert.equal(reply.status, 200);
        assert.equal(reply.body, 'fresh');
      }
      const status = await proxy.admin.target('stale', 's');
      assert.ok(status.counters.retries >= 1);
      assert.equal(status.counters.proxyErrors['502'], 0);
    } finally {
      server.close();
    }
  });

  it('sends a request to another target when its target dies: the reused connection and then a fresh one break', async () => {
    // A target being killed closes its open connections before its listener, so a fresh connection made in between
    // is accepted, then reset: this backend, once it served a request ("dying" from then on), drops that kept-alive
    // connection at its next request and every newer connection at its first (health checks pass throughout).
    let dying = false;
    const server = await rawBackend(() => {
      let requests = 0;
      const bornDying = dying;
      return (head, socket) => {
        if (head.startsWith('GET /health ')) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        else if (bornDying || ++requests === 2) socket.destroy();
        else {
          socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\ndying');
          dying = true;
        }
      };
    });
    const live = await backend(ok('live'));
    try {
      await addGroup({
        name: 'dying',
        // One check each to join; none after it, so the dying target stays in traffic as a killed app's does
        // until its exit is seen.
        health: { ...FAST_HEALTH, intervalMs: 60_000, timeoutMs: 1000 },
        targets: [
          { id: 'dying', host: '127.0.0.1', port: server.port },
          { id: 'live', host: '127.0.0.1', port: live.port },
        ],
      });
      await eventually(async () =>
        (await proxy.admin.target('dying', 'dying')).health === 'healthy' &&
        (await proxy.admin.target('dying', 'live')).health === 'healthy'
          ? true
          : undefined,
      );
      const bodies: string[] = [];
      for (let i = 0; i < 6; i++) {
        const reply = await request(proxy.http, { host: 'dying.localhost' });
        assert.equal(reply.status, 200, reply.body);
        bodies.push(reply.body);
      }
      assert.equal(bodies.filter((b) => b === 'dying').length, 1, bodies.join(' '));
      const status = await proxy.admin.target('dying', 'dying');
      assert.ok(status.counters.retries >= 2, `retries ${status.counters.retries}`);
      assert.equal(status.counters.proxyErrors['502'], 0);
    } finally {
      server.close();
    }
  });

  it('drains: a long request completes on a deregistered target while new requests go elsewhere', async () => {
    let slowDone = false;
    let release = (): void => undefined;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const old = await backend((req, res) => {
      if (req.url === '/health') return res.end('ok');
      res.setHeader('x-backend', 'old');
      if (req.url === '/slow') {
        // Answered when the test has seen the target draining with it in flight.
        void released.then(() => {
          slowDone = true;
          res.end('slow done');
        });
        return;
      }
      res.end('old');
    });
    const fresh = await backend(ok('new'));
    await proxy.admin.putRouteTable({
      ...(await proxy.admin.getRouteTable()),
      routes: [
        ...(await proxy.admin.getRouteTable()).routes,
        { host: 'drain.localhost', backends: [{ targetGroup: 'drain' }] },
      ],
      targetGroups: [
        ...(await proxy.admin.getRouteTable()).targetGroups,
        {
          name: 'drain',
          health: FAST_HEALTH,
          drainMs: 20_000,
          targets: [{ id: 'old', host: '127.0.0.1', port: old.port }],
        },
      ],
    });
    await waitHealthy(proxy.admin, 'drain', 1);
    const slow = request(proxy.http, { host: 'drain.localhost', path: '/slow', timeoutMs: 15_000 });
    await eventually(async () =>
      (await proxy.admin.target('drain', 'old')).inFlight === 1 ? true : undefined,
    );
    await proxy.admin.registerTarget('drain', { id: 'new', host: '127.0.0.1', port: fresh.port });
    const draining = await proxy.admin.deregisterTarget('drain', 'old');
    assert.equal(draining.state, 'draining');
    for (let i = 0; i < 5; i++)
      assert.equal((await request(proxy.http, { host: 'drain.localhost' })).body, 'new');
    const stillDraining = await proxy.admin.target('drain', 'old');
    assert.deepEqual([stillDraining.state, stillDraining.inFlight], ['draining', 1]);
    release();
    const drained = await proxy.admin.waitDrained('drain', 'old', 15_000);
    assert.equal(drained.state, 'drained');
    assert.ok(slowDone);
    const reply = await slow;
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'slow done');
    const table = await proxy.admin.getRouteTable();
    assert.deepEqual(
      table.targetGroups.find((g) => g.name === 'drain')?.targets.map((t) => t.id),
      ['new'],
    );
  });
});
