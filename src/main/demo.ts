// `npm start [example]`: runs Berth on the default data directory (the CLI's), deploys examples/hello (or another
// example, e.g. `npm start -- notes`), tidies up on Ctrl-C.
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../cli/client.js';
import { proxyPidFile } from '../control/traffic/proxy-supervisor.js';
import { controlPaths, resolveDataDir } from '../domain/data-dir.js';
import { formatIssues } from '../domain/errors.js';
import { proxyPaths } from '../domain/proxy-paths.js';
import { signalRecorded } from '../lib/process-identity.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const EXAMPLES = join(REPO, 'examples');

/** What each example shows beyond `/`: the paths worth a curl. */
const TRY_PATHS: Record<string, string[]> = {
  notes: ['/visits', '/notes', "-d 'buy milk' …/notes"],
};
const CONTROL_PLANE = fileURLToPath(new URL('./control-plane.js', import.meta.url));

interface Started {
  child: ChildProcess;
  url: string;
  ports: { http: number; https: number };
}

/**
 * Starts the control plane as `berth up` would (same data directory, same BERTH_* ports and address) and
 * resolves once it listens. A refusal (the data directory has an owner, a port is taken) is printed as it is.
 */
async function startControlPlane(dataDir: string): Promise<Started> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const log = controlPaths(dataDir).log;
  const child = spawn(process.execPath, [CONTROL_PLANE, '--data-dir', dataDir], {
    // Its own process group: Ctrl-C reaches only this script, which then stops things in order.
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  // Kept in memory until it listens: a refused start is shown here and leaves the running one's log alone.
  let stderr = '';
  let started = false;
  child.stderr!.on('data', (chunk: Buffer) => {
    if (started) appendFileSync(log, chunk, { mode: 0o600 });
    else stderr += String(chunk);
  });
  return new Promise<Started>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the control plane did not start within 30s; see ${log}`)),
      30_000,
    );
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.includes('"listening"')) return;
      clearTimeout(timer);
      started = true;
      if (stderr !== '') appendFileSync(log, stderr, { mode: 0o600 });
      const ready = JSON.parse(line) as { url: string; proxy: { http: number; https: number } };
      resolve({ child, url: ready.url, ports: ready.proxy });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(stderr.trim() || `the control plane exited with code ${code}; see ${log}`));
    });
  });
}

async function main(): Promise<void> {
  const example = process.argv[2] ?? 'hello';
  const exampleDir = join(EXAMPLES, example);
  if (!/^[a-z][a-z0-9-]*$/.test(example) || !existsSync(join(exampleDir, 'berth.yaml'))) {
    const known = readdirSync(EXAMPLES).filter((name) => existsSync(join(EXAMPLES, name, 'berth.yaml')));
    throw new Error(`no example ${JSON.stringify(example)}; the examples: ${known.join(', ')}`);
  }
  const dataDir = resolveDataDir();
  const { child, url, ports } = await startControlPlane(dataDir);
  const client = ApiClient.fromDataDir(dataDir);
  const started = Date.now();
  let result: Awaited<ReturnType<ApiClient['deploy']>>;
  try {
    result = await client.deploy(exampleDir);
  } catch (error) {
    // Nothing of the example runs: the control plane this script started goes again.
    child.kill('SIGTERM');
    throw error;
  }
  // A deploy keeps a service's count, and the last Ctrl-C stopped the example: start it at its spec's count.
  const status = await client.app(result.app);
  const stopped = status.services.filter((s) => s.desired === 0);
  if (stopped.length > 0) {
    const current = (await client.releases(result.app)).find((r) => r.version === status.release);
    await client.scale(
      result.app,
      Object.fromEntries(stopped.map((s) => [s.name, current?.spec.services[s.name]?.instances ?? 1])),
    );
  }
  const deadline = Date.now() + 60_000;
  while (!(await client.app(result.app)).converged) {
    if (Date.now() > deadline)
      throw new Error('the example did not become healthy within 60s; see `berth events`');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const ca = proxyPaths(dataDir).caCert;
  const berth = 'node bin/berth.js';
  const release = (await client.releases(result.app)).find((r) => r.version === status.release);
  const host = release?.spec.routes[0]?.host ?? `${result.app}.localhost`;
  const base = `https://${host}:${ports.https}`;
  const addons = Object.keys(release?.spec.addons ?? {});
  process.stdout.write(
    [
      '',
      `Berth is running (data directory ${dataDir}, API ${url}); ${result.app} v${result.release} is healthy (${Date.now() - started} ms from apply).`,
      '',
      `  ${base}/    (HTTP on :${ports.http} redirects to it)`,
      `  curl --cacert ${ca} ${base}/`,
      ...(TRY_PATHS[example] ?? []).map((path) =>
        path.includes('…')
          ? `  curl --cacert ${ca} ${path.replace('…', base)}`
          : `  curl --cacert ${ca} ${base}${path}`,
      ),
      '',
      'Try:',
      `  ${berth} ps`,
      ...(addons.length > 0
        ? [
            `  ${berth} addons ${result.app}              (its ${addons.join(' and ')} servers; their URLs are secrets)`,
            `  ${berth} addons backup ${result.app} ${addons[0]}`,
            `  ${berth} addons rotate ${result.app} ${addons[0]}       (new password; the app rolls onto it)`,
          ]
        : []),
      `  ${berth} scale ${result.app} web=3`,
      `  ${berth} events ${result.app}`,
      `  ${berth} logs ${result.app} -f`,
      `  kill -9 <a pid from ps>, then ps again: it is replaced`,
      '',
      `Ctrl-C stops the example${addons.length > 0 ? ' and its add-on servers (their data stays)' : ''}, the control plane and (unless other apps still run) the proxy.`,
      '',
    ].join('\n'),
  );

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`\nstopping: ${result.app}, the control plane, the proxy\n`);
    await client.down(result.app).catch(() => undefined);
    const until = Date.now() + 45_000;
    while (Date.now() < until && (await client.instances({ app: result.app }).catch(() => [])).length > 0) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // Add-on servers outlive the control plane like instances; the example's are stopped (their data stays, and
    // the next `npm start` starts them again).
    for (const name of addons) {
      await client.request('POST', `/v1/apps/${result.app}/addons/${name}/stop`, {}).catch(() => undefined);
    }
    // Other apps on this data directory keep their proxy.
    const others = await client.instances().catch(() => []);
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    if (others.length > 0) {
      process.stdout.write(`the proxy keeps serving ${others.length} instances of other apps\n`);
    } else {
      // Only the very proxy this data directory recorded (pid, start time and command line), never a reused pid.
      signalRecorded(proxyPidFile(dataDir), 'SIGTERM');
    }
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((error: unknown) => {
  const issues = (error as { issues?: { path: string; message: string }[] }).issues;
  process.stderr.write(`berth demo: ${error instanceof Error ? error.message : String(error)}\n`);
  if (issues?.length) process.stderr.write(`${formatIssues(issues)}\n`);
  process.exit(1);
});
