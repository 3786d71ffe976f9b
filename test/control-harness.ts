// Test harness: a real control plane process on a temp data dir, the real CLI, and helpers to wait with deadlines.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../src/cli/client.js';
import { readProxyPid } from '../src/control/traffic/proxy-supervisor.js';
import { waitFor, withDeadline } from './wait.js';

export { proxyUnavailable } from './proxy-harness.js';
export { waitFor, withDeadline } from './wait.js';

const DIST = fileURLToPath(new URL('..', import.meta.url));
export const CONTROL_PLANE = join(DIST, 'src/main/control-plane.js');
export const CLI = join(DIST, 'src/cli/main.js');
/** The fixture app's source stays in test/ (it is plain JS, not compiled). */
export const FIXTURE_APP = fileURLToPath(new URL('../../test/fixtures/app', import.meta.url));

export interface ControlPlaneProcess {
  child: ChildProcess;
  client: ApiClient;
  /** The proxy's listener ports (it was started by this control plane, or by an earlier one). */
  proxyPorts: { http: number; https: number };
  stop(): Promise<void>;
}

/**
 * The end of an integration suite: every app down, its instances gone (within `ms`), then the control plane and
 * the proxy stopped. Failures of the first two steps do not keep the processes from being stopped.
 */
export async function shutDown(
  plane: ControlPlaneProcess | undefined,
  dataDir: string,
  ms = 30_000,
): Promise<void> {
  if (plane) {
    await stopApps(plane, ms);
    await plane.stop();
  }
  await stopProxy(dataDir);
}

/** Every app down and its instances gone (within `ms`); a failure is left for the steps after it to meet. */
export async function stopApps(plane: ControlPlaneProcess, ms = 30_000): Promise<void> {
  await plane.client.downAll().catch(() => undefined);
  await waitFor(
    'every instance to stop',
    async () => ((await plane.client.instances()).length === 0 ? true : undefined),
    ms,
  ).catch(() => undefined);
}

/** Stops the proxy a control plane started on this data dir (it outlives control planes by design). */
export async function stopProxy(dataDir: string): Promise<void> {
  const pid = readProxyPid(dataDir);
  if (pid === null || !processExists(pid)) return;
  process.kill(pid, 'SIGTERM');
  await waitFor('the proxy to exit', () => (processExists(pid) ? undefined : true), 15_000);
}

/**
 * Starts `dist/src/main/control-plane.js` and resolves once it says it is listening. `extra.args` come after the
 * harness's (a later `--http-port` wins), `extra.env` over the test's environment.
 */
export async function startControlPlane(
  dataDir: string,
  timeoutMs = 30_000,
  extra: { args?: string[]; env?: Record<string, string> } = {},
): Promise<ControlPlaneProcess> {
  const args = [
    '--data-dir',
    dataDir,
    '--port',
    '0',
    '--http-port',
    '0',
    '--https-port',
    '0',
    ...(extra.args ?? []),
  ];
  const child = spawn(process.execPath, [CONTROL_PLANE, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // ACME stays off unless a test turns it on: no control plane of the suite asks a real CA for anything.
    env: { ...process.env, BERTH_LOG_LEVEL: 'warn', BERTH_ACME_DIRECTORY: 'off', ...extra.env },
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += String(chunk);
  });
  const lines = createInterface({ input: child.stdout! });
  const listening = new Promise<{ http: number; https: number }>((resolve, reject) => {
    lines.on('line', (line) => {
      if (line.includes('"listening"'))
        resolve((JSON.parse(line) as { proxy: { http: number; https: number } }).proxy);
    });
    child.once('exit', (code) => reject(new Error(`control plane exited with ${code}: ${stderr}`)));
  });
  let proxyPorts: { http: number; https: number };
  try {
    proxyPorts = await withDeadline(listening, timeoutMs, 'control plane to listen');
  } catch (error) {
    // A control plane that did not come up in time must not outlive the test (it would keep the file running).
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await withDeadline(once(child, 'exit'), 10_000, 'control plane to exit').catch(() => undefined);
    }
    throw error;
  }
  return {
    child,
    proxyPorts,
    client: ApiClient.fromDataDir(dataDir),
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await withDeadline(once(child, 'exit'), 10_000, 'control plane to exit');
    },
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI as a process. */
export async function runCli(dataDir: string, args: string[], cwd = process.cwd()): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, '--data-dir', dataDir, ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += String(chunk);
  });
  child.stderr.on('data', (chunk) => {
    stderr += String(chunk);
  });
  const [code] = (await withDeadline(once(child, 'exit'), 60_000, `berth ${args.join(' ')}`)) as [number];
  return { code, stdout, stderr };
}

/**
 * Starts a CLI command that keeps running (`logs -f`, `events -f`): its process, and what it printed so far. The
 * caller ends it (SIGINT, as Ctrl-C does).
 */
export function followCli(dataDir: string, args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [CLI, '--data-dir', dataDir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c) => {
    out += String(c);
  });
  return { child, output: () => out };
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Writes a berth.yaml (and optionally more files) into a fresh directory and returns its path. */
export function writeApp(files: Record<string, string>): string {
  const dir = tempDir('berth-app-');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/** GET http://127.0.0.1:port/ → parsed JSON, or undefined if nothing answers. */
export async function getJson(port: number, path = '/'): Promise<Record<string, unknown> | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) });
    return (await response.json()) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** True while a process with this pid exists. */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
