// Where Berth keeps its state: the data directory and the files in it, shared by the CLI and the processes.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** `--data-dir`, else `BERTH_HOME`, else `~/.berth`. */
export function resolveDataDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag ?? env.BERTH_HOME ?? join(homedir(), '.berth'));
}

export interface ControlPaths {
  dataDir: string;
  database: string;
  /** The admin token, mode 0600. */
  token: string;
  /** Written by a running control plane: `{ url, pid }`, so the CLI finds it. */
  endpoint: string;
  logs: string;
}

export function controlPaths(dataDir: string): ControlPaths {
  return {
    dataDir,
    database: join(dataDir, 'state.db'),
    token: join(dataDir, 'admin-token'),
    endpoint: join(dataDir, 'control.json'),
    logs: join(dataDir, 'logs'),
  };
}

/** What a running control plane writes to `ControlPaths.endpoint`. */
export interface ControlEndpoint {
  url: string;
  pid: number;
}
