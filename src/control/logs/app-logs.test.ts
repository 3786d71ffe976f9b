// Unit tests: reading the shim's JSON-lines files (tail, since, grep, merge in time order, follow), syslog framing,
// bounded sink queues, and log retention.
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openTestState, seedInstance } from '../../../test/fakes/state.js';
import type { Instance } from '../../domain/instance.js';
import type { AppLogLine } from '../../domain/metrics-types.js';
import { silentLogger } from '../../lib/logger.js';
import type { Store } from '../store/store.js';
import { AppLogFollower, readAppLogs, tailMatching } from './app-logs.js';
import { LogRetention } from './log-retention.js';
import { formatSyslog, HttpsSink } from './log-sinks.js';

function record(t: number, l: string, s: 'out' | 'err' = 'out'): string {
  return `${JSON.stringify({ t, s, l })}\n`;
}

function instance(id: string, service: string, state: Instance['state'] = 'healthy'): Instance {
  return {
    id,
    app: 'shop',
    service,
    release: 1,
    configHash: 'h',
    state,
    pid: 1,
    processStart: 1,
    port: 1,
    createdAt: 0,
    healthyAt: 0,
    endedAt: null,
    exitCode: null,
    exitSignal: null,
    reason: null,
    logPath: '',
  } as Instance;
}

function setup(): { store: Store; logDir: string } {
  const root = mkdtempSync(join(tmpdir(), 'berth-logs-'));
  const { store } = openTestState();
  const logDir = join(root, 'logs');
  mkdirSync(join(logDir, 'shop'), { recursive: true });
  return { store, logDir };
}

describe('app logs', () => {
  it('merges instances and events in time order and filters by service, grep and since', () => {
    const { store, logDir } = setup();
    seedInstance(store, instance('web-1', 'web'));
    seedInstance(store, instance('worker-1', 'worker'));
    writeFileSync(join(logDir, 'shop', 'web-1.log'), record(1000, 'web a') + record(3000, 'web b', 'err'));
    writeFileSync(join(logDir, 'shop', 'worker-1.log'), record(2000, 'worker a') + record(4000, 'worker b'));
    store.events.record({
      at: 2500,
      actor: 'admin',
      kind: 'app.applied',
      app: 'shop',
      service: null,
      instance: null,
      message: 'v2',
      data: {},
    });
    const all = readAppLogs(store, logDir, 'shop', {}, 100);
    assert.deepEqual(
      all.map((l) => [l.t, l.source, l.line]),
      [
        [1000, 'out', 'web a'],
        [2000, 'out', 'worker a'],
        [2500, 'event', 'app.applied v2'],
        [3000, 'err', 'web b'],
        [4000, 'out', 'worker b'],
      ],
    );
    assert.deepEqual(
      readAppLogs(store, logDir, 'shop', { service: 'web', events: false }, 100).map((l) => l.line),
      ['web a', 'web b'],
    );
    assert.deepEqual(
      readAppLogs(store, logDir, 'shop', { grep: ' b' }, 100).map((l) => l.line),
      ['web b', 'worker b'],
    );
    assert.deepEqual(
      readAppLogs(store, logDir, 'shop', { since: 2600 }, 100).map((l) => l.line),
      ['web b', 'worker b'],
    );
    assert.deepEqual(
      readAppLogs(store, logDir, 'shop', {}, 2).map((l) => l.line),
      ['web b', 'worker b'],
    );
    // A line still being written is not shown half.
    appendFileSync(join(logDir, 'shop', 'web-1.log'), record(5000, 'web c').slice(0, 12));
    assert.deepEqual(
      readAppLogs(store, logDir, 'shop', {}, 1).map((l) => l.line),
      ['worker b'],
    );
  });

  it('reads the newest lines of a large file without reading all of it, across chunk boundaries', () => {
    const { logDir } = setup();
    const path = join(logDir, 'shop', 'big.log');
    let text = '';
    for (let i = 0; i < 50_000; i++) text += record(i, `line ${i} ${'x'.repeat(i % 50)}`);
    writeFileSync(path, text);
    const lines = tailMatching(path, { id: 'big', service: 'web' }, {}, 20_000);
    assert.equal(lines.length, 20_000);
    assert.equal(lines[0]!.line.split(' ')[1], '30000');
    assert.ok(lines.every((l, i) => l.t === 30_000 + i));
  });

  it('follows new lines, holding back a partial last line until it is complete', () => {
    const { store, logDir } = setup();
    seedInstance(store, instance('web-1', 'web'));
    const path = join(logDir, 'shop', 'web-1.log');
    writeFileSync(path, record(1, 'old'));
    const follower = new AppLogFollower(store, logDir, 'shop', {});
    assert.deepEqual(follower.poll(), []);
    const next = record(2, 'new one');
    appendFileSync(path, next.slice(0, 10));
    assert.deepEqual(follower.poll(), []);
    appendFileSync(path, next.slice(10) + record(3, 'new two'));
    assert.deepEqual(
      follower.poll().map((l) => l.line),
      ['new one', 'new two'],
    );
  });

  it('deletes ended instances’ files past their age or the app’s size cap, never a live one', () => {
    const { store, logDir } = setup();
    seedInstance(store, instance('live', 'web'));
    seedInstance(store, instance('old', 'web', 'stopped'));
    seedInstance(store, instance('big', 'web', 'crashed'));
    seedInstance(store, instance('recent', 'web', 'stopped'));
    const now = Date.now();
    const file = (id: string, bytes: number, ageMs: number): string => {
      const path = join(logDir, 'shop', `${id}.log`);
      writeFileSync(path, 'x'.repeat(bytes));
      utimesSync(path, (now - ageMs) / 1000, (now - ageMs) / 1000);
      return path;
    };
    const live = file('live', 600, 10 * 86_400_000);
    const old = file('old', 10, 8 * 86_400_000);
    const big = file('big', 500, 3_600_000);
    const recent = file('recent', 10, 60_000);
    const retention = new LogRetention({
      store,
      logDir,
      log: silentLogger,
      policy: { maxAgeMs: 7 * 86_400_000, maxBytesPerApp: 1000 },
      now: () => now,
    });
    assert.deepEqual(retention.enforce().sort(), [big, old].sort());
    assert.ok(existsSync(live) && existsSync(recent));
  });
});

describe('log sinks', () => {
  const line: AppLogLine = {
    t: Date.UTC(2026, 0, 2, 3, 4, 5, 6),
    source: 'err',
    instance: 'web-1',
    service: 'web',
    line: 'boom',
  };

  it('formats RFC 5424 with priority by stream and header fields without spaces', () => {
    assert.equal(
      formatSyslog('shop', line, 'host one'),
      '<11>1 2026-01-02T03:04:05.006Z host_one shop web-1 web - boom',
    );
    assert.match(formatSyslog('shop', { ...line, source: 'out' }, 'h'), /^<14>1 /);
  });

  it('keeps a bounded queue while the endpoint is down, counts the drops, then delivers the rest in order', async () => {
    let up = false;
    const got: string[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += String(c);
      });
      req.on('end', () => {
        if (!up) return void res.writeHead(503).end();
        for (const l of body.trim().split('\n')) got.push((JSON.parse(l) as AppLogLine).line);
        res.writeHead(200).end();
      });
    });
    server.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const port = (server.address() as { port: number }).port;
    const sink = new HttpsSink(`http://127.0.0.1:${port}/`, {
      app: 'shop',
      maxQueued: 100,
      initialRetryMs: 20,
      maxRetryMs: 50,
    });
    sink.enqueue(Array.from({ length: 150 }, (_, i) => ({ ...line, line: `l${i}` })));
    assert.equal(sink.stats().dropped, 50);
    up = true;
    await sink.flush(5000);
    assert.deepEqual(
      got,
      Array.from({ length: 100 }, (_, i) => `l${i + 50}`),
    );
    assert.equal(sink.stats().sent, 100);
    await sink.close();
    server.close();
  });
});
