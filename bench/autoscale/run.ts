// Autoscale benchmark: a paced HTTPS load step through the proxy on an app at min 1 / max 4 with a requests-per-minute
// target. Measures the reaction time (load step → decision → a new instance serving) and the scale-in time (load
// stop → back at min, surplus stopped), per profile (collection / evaluation interval and window), against the
// floor of Application Auto Scaling target tracking (AlarmHigh 3 of 3 one-minute points, AlarmLow 15 of 15).
// Run: npm run build && node dist/bench/autoscale/run.js [--profile default|fast|both]
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ApiClient } from '../../src/cli/client.js';
import { readProxyPid } from '../../src/control/traffic/proxy-supervisor.js';
import type { BerthEvent } from '../../src/domain/event.js';
import { proxyPaths } from '../../src/domain/proxy-paths.js';
import { parseDuration } from '../../src/lib/duration.js';
import { LoadClient } from '../../test/load-client.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CONTROL_PLANE = join(ROOT, 'dist/src/main/control-plane.js');
const FIXTURE = join(ROOT, 'test/fixtures/app/server.js');

/** AWS target tracking's floor, from the reference: 3 one-minute points above target, 15 below (observed, not documented). */
const AWS_SCALE_OUT_FLOOR_MS = 3 * 60_000;
const AWS_SCALE_IN_FLOOR_MS = 15 * 60_000;

interface Profile {
  name: string;
  metricsInterval: string;
  autoscaleInterval: string;
  window: string;
  scaleInCooldown: string;
}

const PROFILES: Record<string, Profile> = {
  default: {
    name: 'default',
    metricsInterval: '5s',
    autoscaleInterval: '5s',
    window: '60s',
    scaleInCooldown: '60s',
  },
  fast: {
    name: 'fast',
    metricsInterval: '1s',
    autoscaleInterval: '1s',
    window: '10s',
    scaleInCooldown: '5s',
  },
};

const TARGET_RPM = 600;

function appDir(profile: Profile): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-autoscale-'));
  writeFileSync(
    join(dir, 'berth.yaml'),
    [
      'app: bench',
      'routes:',
      '  - host: bench.localhost',
      '    service: web',
      'services:',
      '  web:',
      '    run: node server.js',
      '    health: { path: /health, interval: 500ms, timeout: 400ms, healthy: 1, unhealthy: 3, grace: 1s }',
      '    deploy: { drain: 5s, stopTimeout: 5s }',
      `    autoscale: { min: 1, max: 4, requestsPerMinute: ${TARGET_RPM}, scaleOutCooldown: 10s, scaleInCooldown: ${profile.scaleInCooldown} }`,
    ].join('\n'),
  );
  copyFileSync(FIXTURE, join(dir, 'server.js'));
  return dir;
}

async function startControlPlane(
  dataDir: string,
  profile: Profile,
): Promise<{ child: ChildProcess; httpsPort: number }> {
  const child = spawn(
    process.execPath,
    [
      CONTROL_PLANE,
      ...['--data-dir', dataDir, '--port', '0', '--http-port', '0', '--https-port', '0'],
      ...['--metrics-interval', profile.metricsInterval, '--autoscale-interval', profile.autoscaleInterval],
      ...['--autoscale-window', profile.window],
    ],
    { stdio: ['ignore', 'pipe', 'ignore'], detached: true },
  );
  const httpsPort = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('control plane did not start in 20s')), 20_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.includes('"listening"')) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { proxy: { https: number } }).proxy.https);
      }
    });
  });
  return { child, httpsPort };
}

async function until<T>(what: string, check: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Requests at a fixed rate, not waiting for answers; remembers which instance answered when. */
class PacedLoad {
  failed = 0;
  sent = 0;
  readonly firstSeen = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  readonly #pending = new Set<Promise<void>>();

  constructor(
    readonly client: LoadClient,
    readonly rps: number,
  ) {
    this.#tick();
  }

  #tick(): void {
    this.#timer = setTimeout(() => {
      this.sent++;
      const request = this.client
        .get('/')
        .then((answer) => {
          if (answer.status !== 200) this.failed++;
          else {
            const instance = (JSON.parse(answer.body) as { instance: string }).instance;
            if (!this.firstSeen.has(instance)) this.firstSeen.set(instance, answer.doneAt);
          }
        })
        .catch(() => {
          this.failed++;
        })
        .finally(() => this.#pending.delete(request));
      this.#pending.add(request);
      this.#tick();
    }, 1000 / this.rps);
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    await Promise.all([...this.#pending]);
  }
}

interface Result {
  profile: string;
  decisionMs: number;
  servingMs: number;
  scaleInMs: number;
  stoppedMs: number;
  peak: number;
  requests: number;
  failed: number;
}

const s = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;

async function runProfile(profile: Profile): Promise<Result> {
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-bench-autoscale-data-'));
  const { child: plane, httpsPort } = await startControlPlane(dataDir, profile);
  const client = ApiClient.fromDataDir(dataDir);
  const load = new LoadClient(httpsPort, 'bench.localhost', proxyPaths(dataDir).caCert);
  try {
    await client.deploy(appDir(profile));
    await until(
      'one healthy instance',
      async () => ((await client.app('bench')).services[0]?.healthy === 1 ? true : undefined),
      30_000,
    );
    // Let the window fill with the idle baseline (plus a bucket), as in production before a spike: otherwise a
    // young service's short history makes the first move look faster than it is.
    await new Promise((resolve) => setTimeout(resolve, parseDuration(profile.window) + 10_000));
    const [first] = (await client.instances({ app: 'bench' })).map((i) => i.id);
    const stepAt = Date.now();
    // 3 × the target of one instance: one step to 3 instances.
    const paced = new PacedLoad(load, (3 * TARGET_RPM) / 60);
    const events = async (): Promise<BerthEvent[]> => client.events({ app: 'bench', limit: 1000 });
    const out = await until(
      'a scale-out',
      async () => (await events()).find((e) => e.kind === 'autoscale.scaled_out'),
      180_000,
    );
    const servedAt = await until(
      'a new instance serving',
      async () => [...paced.firstSeen.entries()].find(([id]) => id !== first)?.[1],
      60_000,
    );
    await until(
      '3 healthy',
      async () => (((await client.app('bench')).services[0]?.healthy ?? 0) >= 3 ? true : undefined),
      120_000,
    );
    const peak = (await client.app('bench')).services[0]?.desired ?? 0;
    await paced.stop();
    const stopAt = Date.now();
    const back = await until(
      'a scale-in to 1',
      async () =>
        (await events())
          .filter((e) => e.kind === 'autoscale.scaled_in')
          .find((e) => (e.data as { to: number }).to === 1),
      600_000,
    );
    const stoppedAt = await until(
      'one live instance',
      async () => ((await client.instances({ app: 'bench' })).length === 1 ? Date.now() : undefined),
      60_000,
    );
    for (const e of await events()) {
      if (e.kind.startsWith('autoscale.')) process.stderr.write(`  +${s(e.at - stepAt)} ${e.message}\n`);
    }
    return {
      profile: profile.name,
      decisionMs: out.at - stepAt,
      servingMs: servedAt - stepAt,
      scaleInMs: back.at - stopAt,
      stoppedMs: stoppedAt - stopAt,
      peak,
      requests: paced.sent,
      failed: paced.failed,
    };
  } finally {
    load.close();
    await client.downAll().catch(() => undefined);
    await until(
      'instances to stop',
      async () => ((await client.instances()).length === 0 ? true : undefined),
      30_000,
    ).catch(() => undefined);
    plane.kill('SIGTERM');
    const proxyPid = readProxyPid(dataDir);
    if (proxyPid !== null) process.kill(proxyPid, 'SIGTERM');
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { profile: { type: 'string', default: 'both' } } });
  const names = values.profile === 'both' ? ['fast', 'default'] : [values.profile!];
  const results: Result[] = [];
  for (const name of names) {
    const profile = PROFILES[name];
    if (!profile) throw new Error(`unknown profile ${name}; expected default, fast or both`);
    process.stderr.write(`profile ${name}: ${JSON.stringify(profile)}\n`);
    results.push(await runProfile(profile));
  }
  process.stdout.write(
    '| profile | step → decision | step → new instance serving | ours / AWS floor (3 min) | stop → scale-in to min | stop → surplus stopped | ours / AWS floor (15 min) | peak | requests | failed |\n',
  );
  process.stdout.write('|---|---|---|---|---|---|---|---|---|---|\n');
  for (const r of results) {
    process.stdout.write(
      `| ${r.profile} | ${s(r.decisionMs)} | ${s(r.servingMs)} | ${(r.servingMs / AWS_SCALE_OUT_FLOOR_MS).toFixed(2)} | ${s(r.scaleInMs)} | ${s(r.stoppedMs)} | ${(r.stoppedMs / AWS_SCALE_IN_FLOOR_MS).toFixed(2)} | ${r.peak} | ${r.requests} | ${r.failed} |\n`,
    );
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
