// Every runtime passes the same contract suite (test/runtime-contract.ts). A new runtime joins with one line.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeHost, FakeRuntime } from '../../../test/fakes/fake-runtime.js';
import { type ContractApp, runtimeContract } from '../../../test/runtime-contract.js';
import { ProcessRuntime } from './process-runtime.js';

/** The contract's apps as node one-liners (the Docker runtime can run the same in a node image). */
const NODE_APPS: Record<ContractApp, string> = {
  serves: 'process.on("SIGTERM", () => process.exit(0)); setInterval(() => {}, 1000); console.log("ready");',
  'exits 3': 'process.exitCode = 3;',
  'ignores SIGTERM': 'process.on("SIGTERM", () => {}); setInterval(() => {}, 1000); console.log("ready");',
};

/** Waits (deadline 10 s) until the app has printed `ready` into its output file (written by its shim). */
async function printedReady(logPath: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(existsSync(logPath) && readFileSync(logPath, 'utf8').includes('"l":"ready"'))) {
    if (Date.now() > deadline) throw new Error(`${logPath}: no "ready" within 10s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The app's pid: the only child of its shim. */
function appPid(shimPid: number): number {
  return Number(readFileSync(`/proc/${shimPid}/task/${shimPid}/children`, 'utf8').trim().split(/\s+/)[0]);
}

const scratch = mkdtempSync(join(tmpdir(), 'berth-contract-'));

runtimeContract({
  name: 'ProcessRuntime',
  runtime: () => new ProcessRuntime({ watchMs: 50 }),
  request: (instanceId, app) => ({
    instanceId,
    cwd: scratch,
    command: `${process.execPath} -e '${NODE_APPS[app]}'`,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    logPath: join(scratch, 'app', `${instanceId}.log`),
  }),
  ready: (ref) => printedReady(ref.logPath),
  kill: (ref, signal) => process.kill(appPid(ref.pid), signal),
  cleanup: async () => rmSync(scratch, { recursive: true, force: true }),
});

const host = new FakeHost();
runtimeContract({
  name: 'FakeRuntime',
  runtime: () => new FakeRuntime({ host }),
  request: (instanceId, app) => ({
    instanceId,
    cwd: '/',
    command: app,
    env: {},
    logPath: `/fake/${instanceId}.log`,
  }),
  ready: async () => {},
  kill: (ref, signal) => host.end(ref.instanceId, { code: null, signal }),
});
