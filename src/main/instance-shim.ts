// The per-instance shim (conmon's job): runs the app, writes its output scrubbed and timestamped, records its exit.
//
// The process runtime starts this detached (its own session and process group) and writes a `ShimConfig` as JSON
// on its stdin, then closes it: secrets travel through a pipe, never through a file or the shim's own environment.
// The app runs in the shim's process group, so a stop (SIGTERM to the group) reaches both; the shim outlives the
// app just long enough to write its last output and `<id>.exit`, then exits with the app's code. The app never
// outlives the shim: it is started with a parent-death signal (see `appCommand`).
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { OutputLog } from '../control/runtime/output-log.js';

/** What the runtime sends the shim on its stdin. */
export interface ShimConfig {
  instanceId: string;
  command: string;
  cwd: string;
  env: Record<string, string>;
  /** JSON-lines output file, appended to. */
  logPath: string;
  /** Where the app's exit status is written, as `{"code":..,"signal":..,"t":..}`. */
  exitPath: string;
  /** Secret values to scrub from the output, name → value. */
  scrub: Record<string, string>;
  /** Cgroup directories (resource limits) the app joins; the shim itself stays out of them. */
  cgroups?: string[];
}

/** How long to wait, after the app exited, for processes it left behind to close the output pipes. */
const CLOSE_GRACE_MS = 2000;

/** util-linux's `setpriv`, where installed (Debian: always, util-linux is essential). */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((path) => existsSync(path));

/**
 * How the app is run: `/bin/sh -c "exec <command>"`, through `setpriv --pdeathsig KILL` when it exists. That sets
 * PR_SET_PDEATHSIG on the app's process before the exec (it survives execve, so `sh` and then the app keep it):
 * the kernel SIGKILLs the app the moment the shim dies, even if nothing watches (the control plane down, the shim
 * killed with SIGKILL). The "parent" the kernel watches is the thread that forked, and node forks from its main
 * thread, which lives as long as the shim does. The app's own children do not inherit it; the runtime ends the rest
 * of the process group (and the cgroup) when it sees the shim gone.
 */
function appCommand(command: string, setpriv = SETPRIV): [string, string[]] {
  const shell: [string, string[]] = ['/bin/sh', ['-c', `exec ${command}`]];
  return setpriv === undefined ? shell : [setpriv, ['--pdeathsig', 'KILL', '--', shell[0], ...shell[1]]];
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function writeExit(path: string, code: number | null, signal: string | null): void {
  const temporary = `${path}.tmp`;
  writeFileSync(temporary, `${JSON.stringify({ code, signal, t: Date.now() })}\n`, { mode: 0o600 });
  renameSync(temporary, path);
}

function exitCodeOf(code: number | null, signal: string | null): number {
  if (code !== null) return code;
  const number = signal ? constants.signals[signal as NodeJS.Signals] : undefined;
  return 128 + (number ?? 0);
}

async function main(): Promise<void> {
  // A stop signals the whole group: the app gets it too. The shim stays until the app has gone, so that no
  // output is lost; it only dies on SIGKILL.
  let signalledEarly: NodeJS.Signals | null = null;
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.on(signal, () => {
      signalledEarly ??= signal;
    });
  }
  const config = JSON.parse(await readStdin()) as ShimConfig;
  logPathForErrors = config.logPath;
  process.title = `berth-shim ${config.instanceId}`;
  if (signalledEarly !== null) {
    writeExit(config.exitPath, null, signalledEarly);
    process.exit(exitCodeOf(null, signalledEarly));
  }
  const fd = openSync(config.logPath, 'a', 0o600);
  const output = new OutputLog({ fd, scrub: config.scrub });
  const [file, args] = appCommand(config.command);
  const child = spawn(file, args, {
    cwd: config.cwd,
    env: config.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Drop the references to the secrets held only for the app's environment.
  config.env = {};
  for (const dir of config.cgroups ?? []) {
    try {
      writeFileSync(join(dir, 'cgroup.procs'), String(child.pid));
    } catch (error) {
      output.record('err', `[berth: resource limits not applied (${dir}): ${(error as Error).message}]`);
    }
  }
  const out = output.stream('out');
  const err = output.stream('err');
  child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => err.push(chunk));

  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => {
      output.record('err', `[berth: could not run the command: ${error.message}]`);
      resolve({ code: 127, signal: null });
    });
  });
  const status = await exited;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)))]);
  clearTimeout(timer);
  await output.close();
  closeSync(fd);
  writeExit(config.exitPath, status.code, status.signal);
  process.exit(exitCodeOf(status.code, status.signal));
}

/** Where a failure of the shim itself is reported, once known (its own stderr goes nowhere). */
let logPathForErrors: string | undefined;

main().catch((error: unknown) => {
  const message = `[berth shim failed: ${error instanceof Error ? error.message : String(error)}]`;
  try {
    if (logPathForErrors !== undefined) {
      appendFileSync(logPathForErrors, `${JSON.stringify({ t: Date.now(), s: 'err', l: message })}\n`);
    }
  } finally {
    process.exit(70);
  }
});
