// The control plane's command line and environment: one parser for `berth up`, `npm start`, systemd and tests.
import { parseArgs } from 'node:util';
import { resolveDataDir } from '../domain/data-dir.js';
import { parseDuration } from '../lib/duration.js';

/** Ports and addresses, each a flag with an environment variable of the same meaning. */
export const LISTEN_ENV = {
  httpPort: 'BERTH_HTTP_PORT',
  httpsPort: 'BERTH_HTTPS_PORT',
  apiPort: 'BERTH_API_PORT',
  listen: 'BERTH_LISTEN',
} as const;

export const DEFAULT_API_PORT = 7070;
export const DEFAULT_HTTP_PORT = 8080;
export const DEFAULT_HTTPS_PORT = 8443;

export interface ControlPlaneArgs {
  dataDir: string;
  /** REST API port on 127.0.0.1; 0 picks a free one (recorded in control.json). */
  apiPort: number;
  apiHost: string;
  httpPort: number;
  httpsPort: number;
  /** Address of the proxy's listeners; undefined = every address. */
  listen: string | undefined;
  /** The proxy runs under its own supervisor (systemd): wait for it, never start one. */
  externalProxy: boolean;
  metricsIntervalMs: number;
  autoscaleIntervalMs: number;
  autoscaleWindowMs: number;
  accessLog: boolean;
  openMetricsPort: number | undefined;
  /** How long a dashboard session lasts after sign-in. */
  sessionTtlMs: number;
}

/** A wrong flag or variable: the message names it. */
export class ArgumentError extends Error {}

/**
 * Flags first, then the environment, then the defaults. `--port`/`--host` are the older names of
 * `--api-port`/`--api-host`.
 */
export function parseControlPlaneArgs(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): ControlPlaneArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'data-dir': { type: 'string' },
        'api-port': { type: 'string' },
        port: { type: 'string' },
        'api-host': { type: 'string' },
        host: { type: 'string' },
        'http-port': { type: 'string' },
        'https-port': { type: 'string' },
        listen: { type: 'string' },
        'external-proxy': { type: 'boolean' },
        'metrics-interval': { type: 'string' },
        'metrics-port': { type: 'string' },
        'autoscale-interval': { type: 'string' },
        'autoscale-window': { type: 'string' },
        'access-log': { type: 'boolean' },
        'session-ttl': { type: 'string' },
      },
    }));
  } catch (error) {
    throw new ArgumentError((error as Error).message);
  }
  const text = (flag: string, variable?: string): string | undefined => {
    const value = values[flag];
    if (typeof value === 'string') return value;
    return variable === undefined ? undefined : env[variable] || undefined;
  };
  const port = (flag: string, variable: string, fallback: number, alias?: string): number => {
    const flagged = text(flag) ?? (alias === undefined ? undefined : text(alias));
    const raw = flagged ?? (env[variable] || undefined);
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) > 65535) {
      const source = flagged !== undefined ? `--${flag}` : variable;
      throw new ArgumentError(`${source}: expected a port number from 0 to 65535, got ${raw}`);
    }
    return Number(raw);
  };
  const duration = (flag: string, variable: string, fallback: string): number => {
    const raw = text(flag, variable) ?? fallback;
    try {
      const ms = parseDuration(raw);
      if (ms > 0) return ms;
    } catch {
      // reported below
    }
    throw new ArgumentError(`--${flag}: expected a positive duration such as 5s or 500ms, got ${raw}`);
  };
  const listen = text('listen', LISTEN_ENV.listen);
  if (listen !== undefined && !/^[0-9A-Za-z.:%-]+$/.test(listen)) {
    throw new ArgumentError(`--listen: expected an address such as 127.0.0.1, 0.0.0.0 or ::, got ${listen}`);
  }
  const metricsPort = text('metrics-port');
  return {
    dataDir: resolveDataDir(text('data-dir'), env),
    apiPort: port('api-port', LISTEN_ENV.apiPort, DEFAULT_API_PORT, 'port'),
    apiHost: text('api-host') ?? text('host') ?? '127.0.0.1',
    httpPort: port('http-port', LISTEN_ENV.httpPort, DEFAULT_HTTP_PORT),
    httpsPort: port('https-port', LISTEN_ENV.httpsPort, DEFAULT_HTTPS_PORT),
    listen,
    externalProxy: values['external-proxy'] === true,
    metricsIntervalMs: duration('metrics-interval', 'BERTH_METRICS_INTERVAL', '5s'),
    autoscaleIntervalMs: duration('autoscale-interval', 'BERTH_AUTOSCALE_INTERVAL', '5s'),
    autoscaleWindowMs: duration('autoscale-window', 'BERTH_AUTOSCALE_WINDOW', '60s'),
    accessLog: values['access-log'] === true || env.BERTH_ACCESS_LOG === '1',
    openMetricsPort: metricsPort === undefined ? undefined : port('metrics-port', 'BERTH_METRICS_PORT', 0),
    sessionTtlMs: duration('session-ttl', 'BERTH_SESSION_TTL', '8h'),
  };
}
