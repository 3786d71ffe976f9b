// Recovery timings. Instances: `deploy` of examples/hello until every instance answers, and `kill -9` of an instance
// until its replacement answers (Berth's own reconcile loop; no peer runs it). The proxy, under HTTPS keep-alive
// load, side by side with nginx (master + 1 worker) proxying to the same instances with a certificate from the
// same CA: kill -9 of the worker (refused, failed, time to serving again), a graceful restart (`berth proxy restart`
// vs `nginx -s reload`), and, Berth only, kill -9 of the proxy keeper and of the control plane.
// Run: npm run build && node dist/bench/recovery/run.js [--runs 5] [--proxy-runs 3]
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ProxyAdminClient } from '../../src/domain/proxy-admin-client.js';
import { proxyPaths } from '../../src/domain/proxy-paths.js';
import {
  type ControlPlaneProcess,
  shutDown,
  startControlPlane,
  waitFor,
} from '../../test/control-harness.js';
import { median, scratchDir, start, stop } from '../processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const EXAMPLE = join(ROOT, 'examples/hello');
const HOST = 'hello.localhost';
/** A worker that lived this long is replaced at once when it dies (the keeper's crash backoff resets). */
const BACKOFF_RESET_MS = 30_000;

async function answers(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

/**
 * A copy of examples/hello deployed as a new app (`name`): a deploy from nothing. (Re-deploying an app that was
 * taken down keeps its count at 0, as a manual scale is kept across deploys.)
 */
function exampleAs(name: string): string {
  const dir = scratchDir(`berth-bench-${name}-`);
  cpSync(EXAMPLE, dir, { recursive: true });
  const spec = readFileSync(join(dir, 'berth.yaml'), 'utf8');
  writeFileSync(join(dir, 'berth.yaml'), spec.replaceAll('hello', name));
  return dir;
}

async function instanceRecovery(plane: ControlPlaneProcess, runs: number) {
  const client = plane.client;
  const deployMs: number[] = [];
  const replaceMs: number[] = [];
  for (let run = 0; run < runs; run++) {
    const app = `recovery${run}`;
    const dir = exampleAs(app);
    const started = Date.now();
    await client.deploy(dir);
    await everyInstanceAnswers(plane, app);
    deployMs.push(Date.now() - started);
    // Each kill is a single crash of a settled app (a second crash of a service within 30 s of the first would
    // wait 1 s, then 2 s, ...: that is the crash-loop backoff, not recovery).
    const [victim] = await client.instances({ app });
    const killedAt = Date.now();
    process.kill(victim!.pid!, 'SIGKILL');
    await waitFor(
      'a replacement to answer',
      async () => {
        const live = await client.instances({ app });
        const fresh = live.find((i) => i.id !== victim!.id && i.createdAt >= killedAt && i.port !== null);
        return fresh && (await answers(fresh.port!)) ? true : undefined;
      },
      60_000,
      10,
    );
    replaceMs.push(Date.now() - killedAt);
    await client.down(app);
    await waitFor('no instances', async () =>
      (await client.instances({ app })).length === 0 ? true : undefined,
    );
  }
  return { deployMs, replaceMs };
}

/** The ports of every instance of `app`, once each answers. */
async function everyInstanceAnswers(plane: ControlPlaneProcess, app: string): Promise<number[]> {
  return waitFor(
    'every instance to answer',
    async () => {
      const live = await plane.client.instances({ app });
      const desired = (await plane.client.app(app)).services[0]?.desired ?? 0;
      if (live.length !== desired || desired === 0) return undefined;
      const ok = await Promise.all(live.map((i) => (i.port === null ? false : answers(i.port))));
      return ok.every(Boolean) ? live.map((i) => i.port!) : undefined;
    },
    60_000,
    10,
  );
}

/** What one disruption under load cost. */
interface Outcome {
  requests: number;
  refused: number;
  /** Failed otherwise: reset or closed with no answer (requests in flight on a killed process). */
  failed: number;
  /**
   * From the disruption until answers come again: until the first request sent after the last failed one is
   * answered (or, with no failure, the first request sent after the disruption).
   */
  servingMs: number;
  /** The longest any request sent after the disruption took: how long connections waited in the backlog. */
  maxWaitMs: number;
}

interface Sample {
  sentAt: number;
  doneAt: number;
  error?: string;
}

/** One GET on the agent's keep-alive connections; never rejects. */
function sample(agent: https.Agent, port: number): Promise<Sample> {
  const sentAt = Date.now();
  return new Promise((resolve) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: '/',
        servername: HOST,
        headers: { host: HOST },
        agent,
        timeout: 10_000,
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve({
            sentAt,
            doneAt: Date.now(),
            ...(res.statusCode === 200 ? {} : { error: `${res.statusCode}` }),
          }),
        );
        res.on('error', (error) => resolve({ sentAt, doneAt: Date.now(), error: error.message }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error: NodeJS.ErrnoException) =>
      resolve({ sentAt, doneAt: Date.now(), error: error.code ?? error.message }),
    );
    req.end();
  });
}

/**
 * Keep-alive HTTPS load (4 connections, back to back) for 500 ms, then `disrupt` (which calls `now()` at the
 * instant it disrupts), then until answers come again + 1 s.
 */
async function underLoad(
  what: string,
  port: number,
  ca: string,
  disrupt: (now: () => void) => Promise<unknown>,
): Promise<Outcome> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 4, ca: readFileSync(ca) });
  const samples: Sample[] = [];
  let running = true;
  const loops = Array.from({ length: 4 }, async () => {
    while (running) samples.push(await sample(agent, port));
  });
  await new Promise((resolve) => setTimeout(resolve, 500));
  let at = Date.now();
  await disrupt(() => {
    at = Date.now();
  });
  const deadline = Date.now() + 15_000;
  const answeredAfter = (t: number) => samples.some((x) => x.sentAt >= t && x.error === undefined);
  while (Date.now() < deadline) {
    const lastFailure = Math.max(at, ...samples.filter((x) => x.error !== undefined).map((x) => x.sentAt));
    if (answeredAfter(lastFailure + 1)) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
  running = false;
  await Promise.all(loops);
  agent.destroy();
  const failures = samples.filter((x) => x.error !== undefined);
  const refused = failures.filter((x) => x.error === 'ECONNREFUSED').length;
  const lastFailure = Math.max(at - 1, ...failures.map((x) => x.sentAt));
  const back = samples
    .filter((x) => x.sentAt > lastFailure && x.error === undefined)
    .sort((a, b) => a.doneAt - b.doneAt)[0];
  const kinds = [...new Set(failures.map((x) => x.error))];
  if (kinds.length > 0) process.stderr.write(`${what}: ${failures.length} failed: ${kinds.join(' | ')}\n`);
  return {
    requests: samples.length,
    refused,
    failed: failures.length - refused,
    servingMs: back === undefined ? Number.NaN : back.doneAt - at,
    maxWaitMs: Math.max(0, ...samples.filter((x) => x.sentAt >= at).map((x) => x.doneAt - x.sentAt)),
  };
}

async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** nginx (master + 1 worker) terminating TLS with a certificate from Berth's CA, to the same instances. */
async function startNginx(dataDir: string, backends: number[]) {
  const dir = scratchDir('berth-bench-nginx-');
  const ca = proxyPaths(dataDir);
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  execFileSync('openssl', ['req', '-new', '-key', key, '-subj', `/CN=${HOST}`, '-out', join(dir, 'csr.pem')]);
  writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=DNS:${HOST}\n`);
  execFileSync('openssl', [
    'x509',
    '-req',
    '-in',
    join(dir, 'csr.pem'),
    '-CA',
    ca.caCert,
    '-CAkey',
    ca.caKey,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    join(dir, 'ext.cnf'),
    '-out',
    cert,
  ]);
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}; proxy_temp_path ${dir};
  fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  keepalive_timeout 65s;
  upstream backend {
    ${backends.map((p) => `server 127.0.0.1:${p};`).join(' ')}
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
  );
  const master = start('nginx', ['-c', conf, '-p', dir]);
  const probe = new https.Agent({ ca: readFileSync(ca.caCert) });
  await waitFor('nginx to answer', async () =>
    (await sample(probe, port)).error === undefined ? true : undefined,
  );
  const worker = () => childPids(master.pid!)[0];
  return {
    port,
    worker,
    master: master.pid!,
    async reload(): Promise<void> {
      const old = worker();
      process.kill(master.pid!, 'SIGHUP');
      await waitFor('a new nginx worker', () =>
        worker() !== undefined && worker() !== old ? true : undefined,
      );
    },
    async stop(): Promise<void> {
      await stop(master);
    },
  };
}

async function workerAge(admin: ProxyAdminClient): Promise<number> {
  const health = await admin.health();
  const worker = health.keeper?.workers.find((w) => w.pid === health.pid);
  return worker === undefined ? 0 : Date.now() - worker.since;
}

function row(name: string, setup: string, outcomes: Outcome[], peer?: Outcome[]): string {
  const serving = outcomes.map((o) => o.servingMs);
  const ratio = peer === undefined ? '' : (median(serving) / median(peer.map((o) => o.servingMs))).toFixed(2);
  const sum = (f: (o: Outcome) => number) => outcomes.reduce((n, o) => n + f(o), 0);
  return `| ${name} | ${setup} | ${sum((o) => o.requests)} | ${sum((o) => o.refused)} | ${sum((o) => o.failed)} | ${Math.round(median(serving))} | ${serving.map(Math.round).join(', ')} | ${Math.round(median(outcomes.map((o) => o.maxWaitMs)))} | ${ratio} |`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { runs: { type: 'string', default: '5' }, 'proxy-runs': { type: 'string', default: '3' } },
  });
  const runs = Number(values.runs);
  const proxyRuns = Number(values['proxy-runs']);
  const dataDir = scratchDir('berth-bench-recovery-');
  let plane = await startControlPlane(dataDir);
  const admin = new ProxyAdminClient(proxyPaths(dataDir).adminSocket);
  const berthPort = plane.proxyPorts.https;
  const caPath = proxyPaths(dataDir).caCert;
  let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
  const out: string[] = [];
  try {
    const { deployMs, replaceMs } = await instanceRecovery(plane, runs);
    out.push(`examples/hello (2 instances), ${runs} runs each`);
    out.push('| measurement | median ms | all runs (ms) |', '| --- | ---: | --- |');
    out.push(`| deploy → every instance answers | ${median(deployMs)} | ${deployMs.join(', ')} |`);
    out.push(`| kill -9 → replacement answers | ${median(replaceMs)} | ${replaceMs.join(', ')} |`);

    await plane.client.deploy(EXAMPLE);
    const backends = await everyInstanceAnswers(plane, 'hello');
    await waitFor('hello to be healthy behind the proxy', async () =>
      (await plane.client.app('hello')).services[0]?.healthy === 2 ? true : undefined,
    );
    nginx = await startNginx(dataDir, backends);
    const results = {
      berthKill: [] as Outcome[],
      nginxKill: [] as Outcome[],
      berthRestart: [] as Outcome[],
      nginxReload: [] as Outcome[],
      keeperKill: [] as Outcome[],
      planeKill: [] as Outcome[],
      planeBackMs: [] as number[],
    };
    for (let round = 0; round < proxyRuns; round++) {
      process.stderr.write(`proxy round ${round + 1}/${proxyRuns}\n`);
      // A one-off crash, as in production: the worker has been up long enough for the crash backoff to reset.
      await waitFor(
        'the worker to be old enough',
        async () => ((await workerAge(admin)) > BACKOFF_RESET_MS ? true : undefined),
        60_000,
        250,
      );
      results.berthKill.push(
        await underLoad('Berth worker kill', berthPort, caPath, async (now) => {
          const { pid } = await admin.health();
          now();
          process.kill(pid, 'SIGKILL');
        }),
      );
      const n = nginx;
      results.nginxKill.push(
        await underLoad('nginx worker kill', n.port, caPath, async (now) => {
          const pid = n.worker()!;
          now();
          process.kill(pid, 'SIGKILL');
        }),
      );
      results.berthRestart.push(
        await underLoad('berth proxy restart', berthPort, caPath, async () => {
          await plane.client.restartProxy();
        }),
      );
      results.nginxReload.push(await underLoad('nginx -s reload', n.port, caPath, () => n.reload()));
      const current = plane;
      results.planeKill.push(
        await underLoad('control plane kill', berthPort, caPath, async () => {
          current.child.kill('SIGKILL');
          await new Promise((resolve) => setTimeout(resolve, 500));
          const startedAt = Date.now();
          plane = await startControlPlane(dataDir);
          await plane.client.ping();
          results.planeBackMs.push(Date.now() - startedAt);
        }),
      );
      const keeper = (await admin.health()).keeper!.pid;
      results.keeperKill.push(
        await underLoad('keeper kill', berthPort, caPath, async (now) => {
          now();
          process.kill(keeper, 'SIGKILL');
        }),
      );
      await waitFor('the keeper to be back', async () =>
        (await admin.health().catch(() => undefined))?.keeper ? true : undefined,
      );
    }
    out.push('');
    out.push(
      `proxy under HTTPS keep-alive load (4 connections, back to back), ${proxyRuns} runs each; refused and failed summed`,
    );
    out.push(
      '| disruption | setup | requests | refused | failed | answering again after (median ms) | all runs (ms) | longest wait (median ms) | ÷ nginx |',
    );
    out.push('| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |');
    out.push(row('kill -9 of the worker', 'Berth (keeper)', results.berthKill, results.nginxKill));
    out.push(row('kill -9 of the worker', 'nginx (master)', results.nginxKill));
    // No ratio: neither stops answering; what differs is what fails.
    out.push(row('graceful restart', 'Berth: `berth proxy restart`', results.berthRestart));
    out.push(row('graceful restart', 'nginx: `nginx -s reload`', results.nginxReload));
    out.push(row('kill -9 of the control plane', 'Berth', results.planeKill));
    out.push(row('kill -9 of the proxy keeper', 'Berth', results.keeperKill));
    out.push(
      `control plane answering again after a new start: median ${Math.round(median(results.planeBackMs))} ms (${results.planeBackMs.join(', ')})`,
    );
  } finally {
    await nginx?.stop();
    await shutDown(plane, dataDir);
  }
  console.log(out.join('\n'));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
