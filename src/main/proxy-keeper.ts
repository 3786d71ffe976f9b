// Composition root of the proxy keeper: one per data dir, it owns the proxy's sockets and runs its worker(s).
// Runnable on its own (a systemd service) or started by the control plane. See docs/proxy.md, "The keeper".
import { mkdirSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { proxyPaths } from '../domain/proxy-paths.js';
import { FileLock } from '../lib/file-lock.js';
import { identify, readPidFile, runningPid, writePidFile } from '../lib/process-identity.js';
import { DEFAULT_PORTS } from '../proxy/default-ports.js';
import { Keeper, KeeperError } from '../proxy/keeper.js';
import { PROXY_OPTIONS } from './proxy-options.js';

const USAGE = `usage: node dist/src/main/proxy-keeper.js --data-dir DIR [--http-port 8080] [--https-port 8443]
       [--host ADDR] [--admin-socket PATH] [--access-log | --access-log-file FILE] [--no-redirect]
       [--drain-ms 10000] [--trusted-proxies CIDR,...] [--max-head-bytes 16384] [--workers auto|N]
  --workers  proxy worker processes sharing the listeners (default auto: one per core, like nginx's
             worker_processes auto; also BERTH_PROXY_WORKERS)
Signals: SIGTERM/SIGINT drain the workers and exit; SIGHUP hands over to a new worker (like \`berth proxy restart\`).`;

const WORKER_MAIN = fileURLToPath(new URL('./proxy.js', import.meta.url));

/** Removes the pid file if it still names this process (a successor may have written its own). */
function removePidFile(path: string): void {
  if (readPidFile(path)?.pid === process.pid) rmSync(path, { force: true });
}

/** `auto` (or nothing): one worker per core the process may use; otherwise a whole number from 1 to 64. */
function workerCount(raw: string | undefined): number {
  if (raw === undefined || raw === '' || raw === 'auto') return Math.min(availableParallelism(), 64);
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 64)
    fail(`--workers (or BERTH_PROXY_WORKERS): expected auto or a whole number from 1 to 64, got ${raw}`, 2);
  return n;
}

function fail(message: string, code = 1): never {
  process.stderr.write(`berth proxy keeper: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    // --workers is the keeper's own: workers are not told how many they are.
    options: { ...PROXY_OPTIONS, workers: { type: 'string' } },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (values['data-dir'] === undefined) fail(`--data-dir is required\n${USAGE}`, 2);
  const port = (raw: string | undefined, fallback: number, flag: string): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0 || n > 65535)
      fail(`--${flag}: expected a port from 0 to 65535, got ${raw}`, 2);
    return n;
  };
  const drainMs = Number(values['drain-ms'] ?? 10_000);
  if (!Number.isInteger(drainMs) || drainMs < 0)
    fail(`--drain-ms: expected milliseconds, got ${values['drain-ms']}`, 2);
  const workers = workerCount(values.workers ?? process.env.BERTH_PROXY_WORKERS);
  const dataDir = values['data-dir'];
  const paths = proxyPaths(dataDir);
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  // One keeper per data dir: the kernel drops the lock however the keeper dies, so it is never stale.
  const lock = FileLock.tryAcquire(paths.keeperLock);
  if (lock === undefined) {
    const pid = runningPid(paths.pidFile);
    fail(`another proxy keeper runs for ${dataDir}${pid === undefined ? '' : ` (pid ${pid})`}`);
  }
  const pidFile = paths.pidFile;
  writePidFile(pidFile, identify(process.pid)!);
  const adminSocket = values['admin-socket'] ?? paths.adminSocket;
  // The worker gets the flags that shape serving; the sockets come from here.
  const workerArgs = [
    '--worker',
    '--data-dir',
    dataDir,
    '--drain-ms',
    String(drainMs),
    ...(values['no-redirect'] ? ['--no-redirect'] : []),
    ...(values['access-log'] ? ['--access-log'] : []),
    ...(values['access-log-file'] === undefined ? [] : ['--access-log-file', values['access-log-file']]),
    ...(values['trusted-proxies'] === undefined ? [] : ['--trusted-proxies', values['trusted-proxies']]),
    ...(values['max-head-bytes'] === undefined ? [] : ['--max-head-bytes', values['max-head-bytes']]),
  ];
  const log = (event: Record<string, unknown>) => process.stderr.write(`${JSON.stringify(event)}\n`);
  let keeper: Keeper;
  try {
    keeper = await Keeper.start({
      http: { host: values.host, port: port(values['http-port'], DEFAULT_PORTS.http, 'http-port') },
      https: { host: values.host, port: port(values['https-port'], DEFAULT_PORTS.https, 'https-port') },
      adminSocket,
      worker: [process.execPath, WORKER_MAIN, ...workerArgs],
      drainMs,
      workers,
      log,
    });
  } catch (error) {
    removePidFile(pidFile);
    fail(error instanceof KeeperError ? error.message : String(error));
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log({ time: new Date().toISOString(), event: 'stopping', signal });
    await keeper.stop();
    removePidFile(pidFile);
    lock.release();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => void keeper.restart());

  const worker = keeper.status().workers[0];
  process.stdout.write(
    `${JSON.stringify({
      event: 'listening',
      pid: process.pid,
      worker: worker?.pid ?? null,
      http: keeper.ports.http,
      https: keeper.ports.https,
      adminSocket,
      caCert: paths.caCert,
    })}\n`,
  );
}

main().catch((error: unknown) =>
  fail(error instanceof Error ? (error.stack ?? error.message) : String(error)),
);
