// Every runtime passes the same contract suite (test/runtime-contract.ts). A new runtime joins with one harness.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BUSYBOX_IMAGE,
  dockerSkipReason,
  type EngineLease,
  ensureBusyboxImage,
  leaseDockerEngine,
} from '../../../test/docker-host.js';
import { FakeHost, FakeRuntime } from '../../../test/fakes/fake-runtime.js';
import { CONTRACT_SECRET, type ContractApp, runtimeContract } from '../../../test/runtime-contract.js';
import { detectCgroups } from './cgroups.js';
import { DockerRuntime } from './docker-runtime.js';
import { readAllProcStats } from './proc.js';
import { ownerMark, ProcessRuntime } from './process-runtime.js';

/** The contract's apps as node one-liners (they run as they are in a node image). */
const NODE_APPS: Record<ContractApp, string> = {
  serves: 'process.on("SIGTERM", () => process.exit(0)); setInterval(() => {}, 1000); console.log("ready");',
  'exits 3': 'process.exitCode = 3;',
  'ignores SIGTERM':
    'process.on("SIGTERM", () => {}); process.on("SIGINT", () => process.exit(7)); setInterval(() => {}, 1000); console.log("ready");',
  prints: 'console.log("token=" + process.env.CONTRACT_TOKEN); console.error("warning");',
  'exceeds memory': 'const a = []; setInterval(() => a.push(Buffer.alloc(8 << 20, 1)), 5);',
};

/** The same apps as busybox shell lines, for a container of the busybox image (no node in it). */
const SHELL_APPS: Record<ContractApp, string> = {
  serves: 'trap "exit 0" TERM; echo ready; while true; do sleep 0.1; done',
  'exits 3': 'exit 3',
  'ignores SIGTERM': 'trap "" TERM; trap "exit 7" INT; echo ready; while true; do sleep 0.1; done',
  prints: 'echo "token=$CONTRACT_TOKEN"; echo warning >&2',
  // tail keeps the whole "line" it reads, and /dev/zero has no newline.
  'exceeds memory': 'tail /dev/zero',
};

/** Waits (deadline 10 s) until the app has printed `ready` into its output file. */
async function printedReady(logPath: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(existsSync(logPath) && readFileSync(logPath, 'utf8').includes('"l":"ready"'))) {
    if (Date.now() > deadline) throw new Error(`${logPath}: no "ready" within 10s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The app's pid: the only child of its shim (a process) or of its init (a container). */
function appPid(parentPid: number): number {
  return Number(readFileSync(`/proc/${parentPid}/task/${parentPid}/children`, 'utf8').trim().split(/\s+/)[0]);
}

/** `pid` and its descendants. */
function processTree(pid: number): number[] {
  const children = (() => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      return [];
    }
  })();
  return [pid, ...children.flatMap((child) => processTree(Number(child)))];
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

const scratch = mkdtempSync(join(tmpdir(), 'berth-contract-'));
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...CONTRACT_SECRET };
const cgroups = detectCgroups();

runtimeContract({
  name: 'ProcessRuntime',
  // One owner for every runtime of the suite, as for the control planes of one data dir.
  runtime: () => new ProcessRuntime({ watchMs: 50, owner: ownerMark(scratch) }),
  request: (instanceId, app) => ({
    instanceId,
    cwd: scratch,
    command: `${process.execPath} -e '${NODE_APPS[app]}'`,
    env,
    logPath: join(scratch, 'app', `${instanceId}.log`),
    scrub: { ...CONTRACT_SECRET },
  }),
  ready: (ref) => printedReady(ref.logPath),
  kill: (ref, signal) => process.kill(appPid(ref.pid), signal),
  // Command lines of the shim and the app, and the shim's environment (its config came over a pipe).
  exposed: async (ref) => {
    const group = readAllProcStats().filter((stat) => stat.pgrp === ref.pid);
    const shimEnv = readFileSync(`/proc/${ref.pid}/environ`, 'utf8');
    return [...group.map((stat) => commandLine(stat.pid)), shimEnv].join('\n');
  },
  noMemoryLimits:
    cgroups === null ? 'no writable cgroup hierarchy: memory limits are enforced from /proc' : false,
  cleanup: async () => rmSync(scratch, { recursive: true, force: true }),
});

let lease: EngineLease | undefined;
const dockerScratch = mkdtempSync(join(tmpdir(), 'berth-contract-docker-'));
const dockerOwner = `contract-${process.pid}`;
const skip = dockerSkipReason();
if (skip) {
  // Listed once, with its reason, instead of the whole suite.
  const { it } = await import('node:test');
  it('Runtime contract: DockerRuntime', { skip }, () => {});
} else {
  runtimeContract({
    name: 'DockerRuntime',
    setup: async () => {
      lease = await leaseDockerEngine();
      await ensureBusyboxImage(lease.engine);
    },
    runtime: () => new DockerRuntime({ engine: lease!.engine, owner: dockerOwner }),
    request: (instanceId, app) => ({
      instanceId,
      cwd: '/',
      command: `sh -c '${SHELL_APPS[app]}'`,
      image: BUSYBOX_IMAGE,
      env: { ...CONTRACT_SECRET },
      logPath: join(dockerScratch, 'app', `${instanceId}.log`),
      scrub: { ...CONTRACT_SECRET },
      labels: { app: 'contract', service: 'web', release: 'v1' },
    }),
    ready: (ref) => printedReady(ref.logPath),
    kill: (ref, signal) => process.kill(appPid(ref.pid), signal),
    // Command lines of every process in the container, and what `docker inspect` shows besides the env.
    exposed: async (ref) => {
      const name = new DockerRuntime({ engine: lease!.engine, owner: dockerOwner }).containerName(
        ref.instanceId,
      );
      const info = await lease!.engine.json<{ Config: Record<string, unknown> }>(
        'GET',
        `/containers/${name}/json`,
      );
      const { Env: _env, ...config } = info.Config;
      return [...processTree(ref.pid).map(commandLine), JSON.stringify({ ...info, Config: config })].join(
        '\n',
      );
    },
    cleanup: async () => {
      if (!lease) return;
      // What a failed test left running ("instances keep running" when a runtime closes).
      const prefix = `/${new DockerRuntime({ engine: lease.engine, owner: dockerOwner }).containerName('')}`;
      for (const container of await lease.engine.listContainers(['berth.app=contract'])) {
        if (container.Names.some((name) => name.startsWith(prefix)))
          await lease.engine.removeContainer(container.Id);
      }
      await lease.release();
      rmSync(dockerScratch, { recursive: true, force: true });
    },
  });
}

const host = new FakeHost();
const fakeScratch = mkdtempSync(join(tmpdir(), 'berth-contract-fake-'));
runtimeContract({
  name: 'FakeRuntime',
  runtime: () => new FakeRuntime({ host }),
  request: (instanceId, app) => ({
    instanceId,
    cwd: '/',
    command: app,
    env: { ...CONTRACT_SECRET },
    logPath: join(fakeScratch, `${instanceId}.log`),
    scrub: { ...CONTRACT_SECRET },
  }),
  ready: async () => {},
  kill: (ref, signal) => host.end(ref.instanceId, { code: null, signal }),
  // A fake instance shows its command, as a process's command line would.
  exposed: async (ref) => host.processes.get(ref.instanceId)?.request.command ?? '',
  cleanup: async () => rmSync(fakeScratch, { recursive: true, force: true }),
});
