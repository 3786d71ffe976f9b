// `npm start`: runs Berth with a data directory inside the repo, deploys examples/hello, and tidies up on Ctrl-C.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../cli/client.js';
import { readProxyPid } from '../control/traffic/proxy-supervisor.js';
import { formatIssues } from '../domain/errors.js';
import { proxyPaths } from '../domain/proxy-paths.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const DATA_DIR = join(REPO, '.berth');
const EXAMPLE = join(REPO, 'examples', 'hello');
const CONTROL_PLANE = fileURLToPath(new URL('./control-plane.js', import.meta.url));

async function startControlPlane(
  httpPort: string,
  httpsPort: string,
): Promise<{ child: ChildProcess; ports: { http: number; https: number } }> {
  mkdirSync(DATA_DIR, { recursive: true, mode: 0o700 });
  const log = openSync(join(DATA_DIR, 'control.log'), 'a');
  const child = spawn(
    process.execPath,
    [
      CONTROL_PLANE,
      '--data-dir',
      DATA_DIR,
      '--port',
      '0',
      '--http-port',
      httpPort,
      '--https-port',
      httpsPort,
    ],
    // Its own process group: Ctrl-C reaches only this script, which then stops things in order.
    { stdio: ['ignore', 'pipe', log], detached: true },
  );
  const ports = await new Promise<{ http: number; https: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the control plane did not start within 20s')), 20_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.includes('"listening"')) return;
      clearTimeout(timer);
      resolve((JSON.parse(line) as { proxy: { http: number; https: number } }).proxy);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the control plane exited with code ${code}; see ${join(DATA_DIR, 'control.log')}`));
    });
  });
  return { child, ports };
}

async function main(): Promise<void> {
  const { child, ports } = await startControlPlane(
    process.env.BERTH_HTTP_PORT ?? '8080',
    process.env.BERTH_HTTPS_PORT ?? '8443',
  );
  const client = ApiClient.fromDataDir(DATA_DIR);
  const started = Date.now();
  const result = await client.deploy(EXAMPLE);
  const deadline = Date.now() + 60_000;
  while (!(await client.app(result.app)).converged) {
    if (Date.now() > deadline)
      throw new Error('the example did not become healthy within 60s; see `berth events`');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const ca = proxyPaths(DATA_DIR).caCert;
  const berth = `node bin/berth.js --data-dir .berth`;
  process.stdout.write(
    [
      '',
      `Berth is running; ${result.app} v${result.release} is healthy (${Date.now() - started} ms from apply).`,
      '',
      `  https://hello.localhost:${ports.https}/    (HTTP on :${ports.http} redirects to it)`,
      `  curl --cacert ${ca} https://hello.localhost:${ports.https}/`,
      '',
      'Try:',
      `  ${berth} ps`,
      `  ${berth} scale hello web=3`,
      `  ${berth} events hello`,
      `  ${berth} logs hello -f`,
      `  kill -9 <a pid from ps>, then ps again: it is replaced`,
      '',
      'Ctrl-C stops the app, the control plane and the proxy.',
      '',
    ].join('\n'),
  );

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nstopping: instances, control plane, proxy\n');
    await client.downAll().catch(() => undefined);
    const until = Date.now() + 45_000;
    while (Date.now() < until && (await client.instances().catch(() => [])).length > 0) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    const proxyPid = readProxyPid(DATA_DIR);
    if (proxyPid !== null) {
      try {
        process.kill(proxyPid, 'SIGTERM');
      } catch {
        // already gone
      }
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
