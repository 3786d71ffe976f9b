// Makes sure the proxy process runs: finds it on its admin socket, or starts it detached so it outlives us.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../../domain/errors.js';
import { ProxyAdminClient } from '../../domain/proxy-admin-client.js';
import { proxyPaths } from '../../domain/proxy-paths.js';
import type { Logger } from '../../lib/logger.js';
import { identify, runningPid, writePidFile } from '../../lib/process-identity.js';

export interface ProxySupervisorOptions {
  dataDir: string;
  /** How to run the proxy: e.g. `[process.execPath, '/path/to/dist/src/main/proxy.js']`. */
  command: string[];
  httpPort: number;
  httpsPort: number;
  /** Address of the proxy's listeners (default: every address). */
  host?: string;
  /** The proxy has its own supervisor (a systemd unit): wait for it to answer, never start one here. */
  external?: boolean;
  log: Logger;
  startTimeoutMs?: number;
  /** When set, a proxy started here writes JSON-lines access logs to this file (one it finds running keeps its own). */
  accessLogFile?: string;
}

export interface RunningProxy {
  admin: ProxyAdminClient;
  pid: number | null;
  ports: { http: number; https: number };
}

/** The pid file (pid, start time, command line) of a proxy a control plane of this data directory started. */
export function proxyPidFile(dataDir: string): string {
  return join(proxyPaths(dataDir).dir, 'proxy.pid');
}

/** The recorded proxy's pid, only while that very process runs (a stale file or a reused pid gives null). */
export function readProxyPid(dataDir: string): number | null {
  return runningPid(proxyPidFile(dataDir)) ?? null;
}

export class ProxySupervisor {
  readonly #options: ProxySupervisorOptions;

  constructor(options: ProxySupervisorOptions) {
    this.#options = options;
  }

  /** Returns the running proxy, starting it first if nothing answers on its admin socket. */
  async ensureRunning(): Promise<RunningProxy> {
    const paths = proxyPaths(this.#options.dataDir);
    const admin = new ProxyAdminClient(paths.adminSocket, { timeoutMs: 2000 });
    const existing = await admin.health().catch(() => undefined);
    if (existing) {
      this.#options.log.info({ ports: existing.ports }, 'proxy already running; keeping it');
      return { admin, pid: readProxyPid(this.#options.dataDir), ports: existing.ports };
    }
    if (this.#options.external) return this.#waitForExternal(admin);
    mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
    const logFile = openSync(join(paths.dir, 'proxy.log'), 'a', 0o600);
    const [executable, ...args] = this.#options.command;
    const child = spawn(
      executable!,
      [
        ...args,
        '--data-dir',
        this.#options.dataDir,
        '--http-port',
        String(this.#options.httpPort),
        '--https-port',
        String(this.#options.httpsPort),
        ...(this.#options.host === undefined ? [] : ['--host', this.#options.host]),
        ...(this.#options.accessLogFile === undefined
          ? []
          : ['--access-log-file', this.#options.accessLogFile]),
      ],
      // Its own process group and no pipes to us: the proxy keeps serving while the control plane restarts.
      { detached: true, stdio: ['ignore', logFile, logFile] },
    );
    closeSync(logFile);
    child.unref();
    const pid = child.pid ?? null;
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code) =>
        reject(
          new BerthError(
            'runtime_failure',
            `the proxy exited with code ${code} at start; see ${join(paths.dir, 'proxy.log')}`,
          ),
        ),
      ),
    );
    const deadline = Date.now() + (this.#options.startTimeoutMs ?? 10_000);
    for (;;) {
      const health = await Promise.race([admin.health().catch(() => undefined), exited]);
      if (health) {
        // Recorded once it answers, so /proc shows its own command line (not ours from before its exec).
        const identity = pid === null ? undefined : identify(pid);
        if (identity) writePidFile(proxyPidFile(this.#options.dataDir), identity);
        this.#options.log.info({ pid, ports: health.ports }, 'proxy started');
        return { admin, pid, ports: health.ports };
      }
      if (Date.now() > deadline) {
        throw new BerthError('runtime_failure', `the proxy did not answer on ${paths.adminSocket} in time`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Waits for a proxy that something else starts (e.g. the berth-proxy systemd unit). */
  async #waitForExternal(admin: ProxyAdminClient): Promise<RunningProxy> {
    const deadline = Date.now() + (this.#options.startTimeoutMs ?? 30_000);
    this.#options.log.info('waiting for the proxy, which runs under its own supervisor');
    for (;;) {
      const health = await admin.health().catch(() => undefined);
      if (health) return { admin, pid: null, ports: health.ports };
      if (Date.now() > deadline) {
        throw new BerthError(
          'runtime_failure',
          `the proxy did not answer on ${proxyPaths(this.#options.dataDir).adminSocket}; with --external-proxy it is started by its own unit (systemctl status berth-proxy)`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
