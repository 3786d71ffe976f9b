// Where Berth keeps its state: the data directory and the files in it, shared by the CLI and the processes.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ProcessIdentity } from '../lib/process-identity.js';

/** The environment variable naming the data directory. */
export const DATA_DIR_ENV = 'BERTH_HOME';

/**
 * `--data-dir`, else `$BERTH_HOME`, else `~/.berth`: the one default of `berth up`, `npm start` and every CLI
 * command, so they all find the same control plane.
 */
export function resolveDataDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag ?? env[DATA_DIR_ENV] ?? join(homedir(), '.berth'));
}

export interface ControlPaths {
  dataDir: string;
  database: string;
  /** The admin token, mode 0600. */
  token: string;
  /** Written by a running control plane: `ControlEndpoint`, so the CLI finds it. */
  endpoint: string;
  /** Held (locked) by the one control plane that owns the data directory. */
  lock: string;
  logs: string;
  /** Output of a control plane started with `berth up --detach`. */
  log: string;
}

export function controlPaths(dataDir: string): ControlPaths {
  return {
    dataDir,
    database: join(dataDir, 'state.db'),
    token: join(dataDir, 'admin-token'),
    endpoint: join(dataDir, 'control.json'),
    lock: join(dataDir, 'control.lock'),
    logs: join(dataDir, 'logs'),
    log: join(dataDir, 'control.log'),
  };
}

/**
 * What a running control plane writes to `ControlPaths.endpoint`: who it is (a pid file: pid, start time and
 * command line) and, once it listens, where its API is (`url` is null while it starts).
 */
export interface ControlEndpoint extends ProcessIdentity {
  url: string | null;
  dataDir: string;
  /** The proxy's listener ports, once known. */
  proxy?: { http: number; https: number };
  startedAt: number;
}
