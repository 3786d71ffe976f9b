// Integration: a known request mix counted exactly (percentiles within tolerance), Prometheus scraping it, a killed
// instance in events and the healthy count, logs merged in time order, and drains getting every line once.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer as createHttpsServer, request } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { controlPaths } from '../src/domain/data-dir.js';
import type { BerthEvent } from '../src/domain/event.js';
import type { AppLogLine, MetricsQueryResult } from '../src/domain/metrics-types.js';
import { proxyPaths } from '../src/domain/proxy-paths.js';
import {
  type ControlPlaneProcess,
  followCli,
  proxyUnavailable,
  runCli,
  shutDown,
  startControlPlane,
  tempDir,
  waitFor,
  withDeadline,
  writeApp,
} from './control-harness.js';
import { requireTool } from './require-tool.js';

// Collect often so the test waits little; the control plane reads this when no flag is given.
process.env.BERTH_METRICS_INTERVAL = '250ms';
// The proxy this test's control plane starts writes access logs, split into each app's log.
process.env.BERTH_ACCESS_LOG = '1';

const APP = fileURLToPath(new URL('../../test/fixtures/metrics-app', import.meta.url));
const run = promisify(execFile);

function spec(instances: number): string {
  return [
    'app: obs',
    'routes:',
    '  - host: obs.localhost',
    '    service: web',
    'services:',
    '  web:',
    `    run: node ${APP}/server.js`,
    `    instances: ${instances}`,
    '    health: { path: /health, interval: 200ms, timeout: 150ms, healthy: 1, unhealthy: 2, grace: 1s }',
    '    deploy: { drain: 2s, stopTimeout: 2s }',
  ].join('\n');
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  server.close();
  await once(server, 'close');
  return port;
}

describe('observability', { skip: proxyUnavailable }, () => {
  const dataDir = tempDir('berth-obs-');
  let plane: ControlPlaneProcess;
  let agent: Agent;

  /** Client-side duration (ms) of every request sent, by path, as the ground truth the proxy's view must not exceed. */
  const durations: number[] = [];

  function get(path: string): Promise<number> {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: plane.proxyPorts.https,
          path,
          servername: 'obs.localhost',
          headers: { host: 'obs.localhost' },
          agent,
          timeout: 5000,
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            durations.push(performance.now() - started);
            resolve(res.statusCode ?? 0);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    });
  }

  async function metrics(query: string): Promise<MetricsQueryResult> {
    return plane.client.request<MetricsQueryResult>('GET', `/v1/apps/obs/metrics?${query}`);
  }

  before(async () => {
    plane = await startControlPlane(dataDir);
    agent = new Agent({ keepAlive: true, maxSockets: 10, ca: readFileSync(proxyPaths(dataDir).caCert) });
    const applied = await runCli(dataDir, ['apply'], writeApp({ 'berth.yaml': spec(2) }));
    assert.equal(applied.code, 0, applied.stderr);
    await waitFor('2 healthy instances', async () => {
      const live = await plane.client.instances({ app: 'obs' });
      return live.filter((i) => i.state === 'healthy').length === 2 ? true : undefined;
    });
  });

  after(async () => {
    agent?.destroy();
    await shutDown(plane, dataDir);
  });

  it('counts 300 × 200, 20 × 404 and 10 × 500 exactly, with p50/p95/p99 between the delays and the client’s view', async () => {
    const mix = [
      ...Array.from({ length: 300 }, () => '/status/200?delay=10'),
      ...Array.from({ length: 20 }, () => '/status/404?delay=60'),
      ...Array.from({ length: 10 }, () => '/status/500?delay=150'),
    ];
    // Shuffled (deterministically) so every bucket holds a bit of each kind; 10 at a time.
    let seed = 42;
    for (let i = mix.length - 1; i > 0; i--) {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      const j = seed % (i + 1);
      [mix[i], mix[j]] = [mix[j]!, mix[i]!];
    }
    const statuses: number[] = [];
    durations.length = 0;
    let next = 0;
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        while (next < mix.length) statuses.push(await get(mix[next++]!));
      }),
    );
    assert.equal(statuses.filter((s) => s === 200).length, 300);

    const totals = await waitFor(
      'the collector to store all 330 requests',
      async () => {
        const point = (await metrics('since=5m&collapse=1')).series[0]?.points[0];
        return point && point.requests >= 330 ? point : undefined;
      },
      10_000,
      100,
    );
    assert.equal(totals.requests, 330);
    assert.deepEqual(
      [totals.s2xx, totals.s3xx, totals.s4xx, totals.s5xx, totals.e502, totals.e503, totals.e504],
      [300, 0, 20, 10, 0, 0, 0],
    );
    // Tolerance: each request's latency at the proxy is at least the app's delay and at most what the client saw,
    // so the q-quantile lies between the delay of the group holding rank q and the client's own q-quantile (+5 %,
    // the width of a histogram bucket). That holds however busy the machine is; on a quiet one the client's
    // quantiles are within a few ms of the delays.
    const sorted = [...durations].sort((a, b) => a - b);
    const clientQuantile = (q: number): number => sorted[Math.ceil(q * sorted.length) - 1]!;
    for (const [name, q, delay, value] of [
      ['p50', 0.5, 10, totals.p50],
      ['p95', 0.95, 60, totals.p95],
      ['p99', 0.99, 150, totals.p99],
    ] as const) {
      const ceiling = clientQuantile(q) * 1.05 + 0.5;
      assert.ok(
        value !== null && value >= delay && value <= ceiling,
        `${name} ${value}: expected ${delay}..${ceiling}`,
      );
    }

    // Per instance the counts add up to the same, and the proxy's own figures agree.
    const byInstance = await metrics('since=5m&collapse=1&by=instance');
    assert.equal(byInstance.series.length, 2);
    assert.equal(
      byInstance.series.reduce((sum, s) => sum + (s.points[0]?.requests ?? 0), 0),
      330,
    );

    const cli = await runCli(dataDir, ['metrics', 'obs', '--since', '5m']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /^web\s+330\s/m);
  });

  it('serves /metrics that promtool accepts and a real Prometheus scrapes with the token', {
    skip: requireTool('promtool', 'prometheus') || requireTool('prometheus', 'prometheus'),
  }, async () => {
    const token = readFileSync(controlPaths(dataDir).token, 'utf8').trim();
    const response = await fetch(`${plane.client.url}/metrics`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    const unauthorized = await fetch(`${plane.client.url}/metrics`);
    assert.equal(unauthorized.status, 401);

    const check = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let report = '';
    check.stdout.on('data', (c) => {
      report += String(c);
    });
    check.stderr.on('data', (c) => {
      report += String(c);
    });
    check.stdin.end(text);
    const [code] = (await withDeadline(once(check, 'exit'), 10_000, 'promtool')) as [number];
    assert.equal(code, 0, report);
    const twoxx = [...text.matchAll(/^berth_requests_total\{app="obs",[^}]*code_class="2xx"\} (\d+)$/gm)];
    assert.equal(
      twoxx.reduce((sum, m) => sum + Number(m[1]), 0),
      300,
    );

    const dir = tempDir('berth-prom-');
    const port = await freePort();
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'scrape_configs:',
        '  - job_name: berth',
        '    scrape_interval: 1s',
        '    authorization:',
        `      credentials_file: ${controlPaths(dataDir).token}`,
        '    static_configs:',
        `      - targets: ['${new URL(plane.client.url).host}']`,
      ].join('\n'),
    );
    const prometheus = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: 'ignore' },
    );
    await once(prometheus, 'spawn');
    try {
      const value = await waitFor(
        'Prometheus to scrape the 2xx count',
        async () => {
          const query = encodeURIComponent('sum(berth_requests_total{app="obs",code_class="2xx"})');
          const body = (await (
            await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${query}`, {
              signal: AbortSignal.timeout(1000),
            })
          ).json()) as { data: { result: { value: [number, string] }[] } };
          return body.data.result[0]?.value[1];
        },
        20_000,
        250,
      );
      assert.equal(Number(value), 300);
    } finally {
      prometheus.kill('SIGTERM');
      await withDeadline(once(prometheus, 'exit'), 10_000, 'prometheus to exit');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('shows a killed instance in the events and as a dip in the healthy count', async () => {
    const live = await plane.client.instances({ app: 'obs' });
    const victim = live.find((i) => i.state === 'healthy')!;
    const lastEvent = (await plane.client.events({ limit: 1 }))[0]?.id ?? 0;
    // A long-poll started before the kill answers with the crash (or an event just before it).
    const waiting = plane.client.request<BerthEvent[]>(
      'GET',
      `/v1/events?app=obs&after=${lastEvent}&wait=10000`,
    );
    const killedAt = Date.now();
    process.kill(victim.pid!, 'SIGKILL');
    const first = await withDeadline(waiting, 12_000, 'the long-poll to answer');
    assert.ok(first.length > 0);
    await waitFor('the crash event', async () => {
      const events = await plane.client.events({ app: 'obs', after: lastEvent });
      return events.some((e) => e.kind === 'instance.crashed' && e.instance === victim.id) ? true : undefined;
    });
    const dip = await waitFor(
      'a bucket with fewer than 2 healthy instances',
      async () => {
        const points = (await metrics('since=2m')).series[0]?.points ?? [];
        return points.find((p) => p.at + 10_000 > killedAt && p.healthy < 2);
      },
      10_000,
      100,
    );
    assert.ok(dip.healthy <= 1);
    await waitFor('2 healthy instances again', async () => {
      const now = await plane.client.instances({ app: 'obs' });
      return now.filter((i) => i.state === 'healthy').length === 2 ? true : undefined;
    });
  });

  it('merges instance output and events in time order, filtered by --grep', async () => {
    for (let i = 0; i < 4; i++) assert.equal(await get(`/burst?n=50&tag=merge${i}`), 200);
    const lines = await waitFor('200 burst lines in the log', async () => {
      const all = await plane.client.request<AppLogLine[]>(
        'GET',
        '/v1/apps/obs/logs?grep=merge&lines=1000&access=0',
      );
      return all.length >= 200 ? all : undefined;
    });
    assert.equal(lines.length, 200);
    assert.ok(
      lines.every((l, i) => i === 0 || l.t >= lines[i - 1]!.t),
      'in time order',
    );
    assert.ok(new Set(lines.map((l) => l.instance)).size === 2, 'from both instances');
    for (let i = 0; i < 4; i++) {
      const mine = lines.filter((l) => l.line.startsWith(`merge${i} `)).map((l) => l.line);
      assert.deepEqual(
        mine,
        Array.from({ length: 50 }, (_, j) => `merge${i} ${j}`),
      );
    }
    const cli = await runCli(dataDir, ['logs', 'obs', '--grep', 'merge3 4', '--since', '5m', '--no-access']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /\[out\] merge3 4\n/);
    assert.match(cli.stdout, /merge3 49\n/);
  });

  it('follows with `berth logs -f` and `berth events -f` as lines and events happen', async () => {
    const follow = (args: string[]) => followCli(dataDir, args);
    // A line before the follower starts: once it is printed (the backlog), the follower holds the file ends.
    assert.equal(await get('/burst?n=1&tag=followed-before'), 200);
    await waitFor('the line before', async () => {
      const lines = await plane.client.request<AppLogLine[]>(
        'GET',
        '/v1/apps/obs/logs?grep=followed-before&access=0',
      );
      return lines.length > 0 ? true : undefined;
    });
    const logs = follow(['logs', 'obs', '-f', '-n', '1', '--grep', 'followed', '--no-access']);
    const events = follow(['events', 'obs', '-f', '-n', '1']);
    try {
      // Both print their backlog first, then what happens from then on (events resume from the last id shown).
      await waitFor('the followers to start', () =>
        events.output() !== '' && logs.output().includes('followed-before 0') ? true : undefined,
      );
      assert.equal(await get('/burst?n=3&tag=followed'), 200);
      assert.equal((await runCli(dataDir, ['scale', 'obs', 'web=3'])).code, 0);
      await waitFor('the burst in logs -f', () =>
        /\[out\] followed 2\n/.test(logs.output()) ? true : undefined,
      );
      assert.match(logs.output(), /\[out\] followed 0\n.*\[out\] followed 1\n.*\[out\] followed 2\n/s);
      await waitFor('the scale in events -f', () => (/scale/.test(events.output()) ? true : undefined));
    } finally {
      logs.child.kill('SIGINT');
      events.child.kill('SIGINT');
      await runCli(dataDir, ['scale', 'obs', 'web=2']);
    }
    await waitFor('2 healthy instances', async () => {
      const live = await plane.client.instances({ app: 'obs' });
      return live.filter((i) => i.state === 'healthy').length === 2 && live.length === 2 ? true : undefined;
    });
  });

  it("puts the proxy's access lines in the app's log, with the instance that served each request", async () => {
    const instances = new Set((await plane.client.instances({ app: 'obs' })).map((i) => i.id));
    assert.equal(await get('/status/404?delay=1&mark=access-test'), 404);
    const line = await waitFor('the access line', async () => {
      const lines = await plane.client.request<AppLogLine[]>(
        'GET',
        '/v1/apps/obs/logs?grep=mark%3Daccess-test&lines=10',
      );
      return lines.find((l) => l.source === 'access');
    });
    assert.match(line.line, /^GET \/status\/404\?delay=1&mark=access-test 404 [\d.]+ms \d+B req=\S+$/);
    assert.ok(instances.has(line.instance), `served by ${line.instance}`);
    assert.equal(line.service, 'web');
  });

  it('sets, lists and removes alarms from the CLI, refusing a bad rule with a usage error', async () => {
    const set = await runCli(dataDir, [
      'alarms',
      'set',
      'obs',
      'errors',
      '--metric',
      'errorRate5xx',
      '--above',
      '1',
      '--period',
      '10s',
      '--datapoints',
      '2/3',
    ]);
    assert.equal(set.code, 0, set.stderr);
    const list = await runCli(dataDir, ['alarms', 'obs', '--json']);
    const alarms = JSON.parse(list.stdout) as {
      name: string;
      state: string;
      metric: string;
      threshold: number;
    }[];
    assert.deepEqual(
      alarms.map((a) => [a.name, a.metric, a.threshold]),
      [['errors', 'errorRate5xx', 1]],
    );
    assert.ok(['INSUFFICIENT_DATA', 'OK', 'ALARM'].includes(alarms[0]!.state));
    assert.equal(
      (await runCli(dataDir, ['alarms', 'set', 'obs', 'x', '--metric', 'nonsense', '--above', '1'])).code,
      2,
    );
    const badPeriod = await runCli(dataDir, [
      'alarms',
      'set',
      'obs',
      'x',
      '--metric',
      'p95',
      '--above',
      '1',
      '--period',
      '30s',
    ]);
    assert.equal(badPeriod.code, 1);
    assert.match(badPeriod.stderr, /period must be one of/);
    assert.equal((await runCli(dataDir, ['alarms', 'remove', 'obs', 'errors'])).code, 0);
    assert.equal(JSON.parse((await runCli(dataDir, ['alarms', 'obs', '--json'])).stdout).length, 0);
    const events = await plane.client.events({ app: 'obs', limit: 20 });
    assert.ok(
      events.some((e) => e.kind === 'alarm.configured') && events.some((e) => e.kind === 'alarm.removed'),
    );
  });

  it('keeps every line of a 100k-line burst, in order', async () => {
    assert.equal(await get('/burst?n=100000&tag=big'), 200);
    const lines = await waitFor(
      '100000 lines in the log',
      async () => {
        const all = await plane.client.request<AppLogLine[]>(
          'GET',
          '/v1/apps/obs/logs?grep=big%20&lines=100000&events=0&access=0',
        );
        return all.length >= 100_000 ? all : undefined;
      },
      20_000,
      250,
    );
    assert.equal(lines.length, 100_000);
    assert.ok(lines.every((l, i) => l.line === `big ${i}`));
  });

  it('drains a burst to an HTTPS receiver and to rsyslog: every line, in order, once', {
    skip: requireTool('rsyslogd', 'rsyslog'),
  }, async () => {
    // HTTPS receiver with a certificate from the proxy's local CA.
    const caDir = join(dataDir, 'proxy', 'ca');
    const certDir = tempDir('berth-drain-cert-');
    await run('openssl', [
      'ecparam',
      '-name',
      'prime256v1',
      '-genkey',
      '-noout',
      '-out',
      join(certDir, 'key.pem'),
    ]);
    await run('openssl', [
      'req',
      '-new',
      '-key',
      join(certDir, 'key.pem'),
      '-subj',
      '/CN=127.0.0.1',
      '-out',
      join(certDir, 'csr.pem'),
    ]);
    writeFileSync(join(certDir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      join(certDir, 'csr.pem'),
      '-CA',
      join(caDir, 'ca.crt'),
      '-CAkey',
      join(caDir, 'ca.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      join(certDir, 'ext.cnf'),
      '-out',
      join(certDir, 'cert.pem'),
    ]);
    const received: string[] = [];
    let failFirst = true;
    const receiver = createHttpsServer(
      { key: readFileSync(join(certDir, 'key.pem')), cert: readFileSync(join(certDir, 'cert.pem')) },
      (req, res) => {
        let body = '';
        req.on('data', (c) => {
          body += String(c);
        });
        req.on('end', () => {
          // The first batch is refused once: the drain must retry it, not lose or repeat it.
          if (failFirst) {
            failFirst = false;
            res.writeHead(503).end();
            return;
          }
          for (const line of body.split('\n'))
            if (line !== '') received.push((JSON.parse(line) as { line: string }).line);
          res.writeHead(204).end();
        });
      },
    );
    receiver.listen(0, '127.0.0.1');
    await once(receiver, 'listening');
    const httpsPort = (receiver.address() as { port: number }).port;

    // rsyslog with its own config: TCP input on a free port, messages to a file.
    const syslogDir = tempDir('berth-rsyslog-');
    const syslogPort = await freePort();
    const outFile = join(syslogDir, 'out.log');
    writeFileSync(
      join(syslogDir, 'rsyslog.conf'),
      [
        `global(workDirectory="${syslogDir}")`,
        'module(load="imtcp")',
        `input(type="imtcp" port="${syslogPort}" address="127.0.0.1" ruleset="drain")`,
        'template(name="msgonly" type="string" string="%APP-NAME% %msg%\\n")',
        `ruleset(name="drain") { action(type="omfile" file="${outFile}" template="msgonly") }`,
      ].join('\n'),
    );
    const rsyslog = spawn(
      'rsyslogd',
      ['-n', '-f', join(syslogDir, 'rsyslog.conf'), '-i', join(syslogDir, 'pid')],
      {
        stdio: 'ignore',
      },
    );
    await once(rsyslog, 'spawn');
    try {
      await waitFor('rsyslog to listen', async () => {
        const socket = (await import('node:net')).connect(syslogPort, '127.0.0.1');
        try {
          await withDeadline(once(socket, 'connect'), 500, 'connect');
          return true;
        } finally {
          socket.destroy();
        }
      });
      const https = await runCli(dataDir, [
        'drains',
        'add',
        'obs',
        `https://127.0.0.1:${httpsPort}/logs`,
        '--ca',
        join(caDir, 'ca.crt'),
      ]);
      assert.equal(https.code, 0, https.stderr);
      const syslog = await runCli(dataDir, ['drains', 'add', 'obs', `syslog://127.0.0.1:${syslogPort}`]);
      assert.equal(syslog.code, 0, syslog.stderr);

      const expected = Array.from({ length: 3000 }, (_, j) => `drain ${j}`);
      assert.equal(await get('/burst?n=3000&tag=drain'), 200);
      const isBurst = (line: string): boolean => /^drain \d+$/.test(line);
      await waitFor(
        'the HTTPS receiver to get the burst',
        () => (received.filter(isBurst).length >= 3000 ? true : undefined),
        15_000,
      );
      assert.deepEqual(received.filter(isBurst), expected);
      const syslogLines = await waitFor(
        'rsyslog to write the burst',
        () => {
          let text = '';
          try {
            text = readFileSync(outFile, 'utf8');
          } catch {
            return undefined;
          }
          const lines = text
            .split('\n')
            .filter((l) => l.startsWith('obs '))
            .map((l) => l.slice(4).trim())
            .filter(isBurst);
          return lines.length >= 3000 ? lines : undefined;
        },
        15_000,
      );
      assert.deepEqual(syslogLines, expected);
      const list = await runCli(dataDir, ['drains', 'list', 'obs', '--json']);
      const drains = JSON.parse(list.stdout) as { dropped: number; sent: number }[];
      assert.equal(drains.length, 2);
      assert.ok(drains.every((d) => d.dropped === 0 && d.sent >= 3000));
    } finally {
      rsyslog.kill('SIGTERM');
      await withDeadline(once(rsyslog, 'exit'), 10_000, 'rsyslog to exit');
      receiver.close();
      rmSync(syslogDir, { recursive: true, force: true });
      rmSync(certDir, { recursive: true, force: true });
    }
  });
});
