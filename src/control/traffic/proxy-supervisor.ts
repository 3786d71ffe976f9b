// Makes sure the proxy process runs: finds it on its admin socket, or starts it detached so it outlives us.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../../domain/errors.js';
import { ProxyAdminClient } from '../../domain/proxy-admin-client.js';
import { proxyPaths } from '../../domain/proxy-paths.js';
import type { Logger } from '../../lib/logger.js';

export interface ProxySupervisorOptions {
  dataDir: string;
  /** How to run the proxy: e.g. `[process.execPath, '/path/to/dist/src/main/proxy.js']`. */
  command: string[];
  httpPort: number;
  httpsPort: number;
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

/** The pid of a proxy this data directory started, if it recorded one. */
export function proxyPidFile(dataDir: string): string {
  return join(proxyPaths(dataDir).dir, 'proxy.pid');
}

export function readProxyPid(dataDir: string): number | null {
  try {
    return Number.parseInt(readFileSync(proxyPidFile(dataDir), 'utf8'), 10) || null;
  } catch {
    return null;
  }
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
    mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
    const logFile = openSync(join(paths.dir, 'proxy.log'), 'a');
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
    if (pid !== null) writeFileSync(proxyPidFile(this.#options.dataDir), `${pid}\n`);
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
        this.#options.log.info({ pid, ports: health.ports }, 'proxy started');
        return { admin, pid, ports: health.ports };
      }
      if (Date.now() > deadline) {
        throw new BerthError('runtime_failure', `the proxy did not answer on ${paths.adminSocket} in time`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
