// The control plane's command line and environment: one parser for `berth up`, `npm start`, systemd and tests.
import { parseArgs } from 'node:util';
import { ACME_DIRECTORIES } from '../control/domains/acme-issuer.js';
import { resolveDataDir } from '../domain/data-dir.js';
import { parseDuration } from '../lib/duration.js';
import { mayBindPort } from '../lib/privileged-ports.js';

/** Ports and addresses, each a flag with an environment variable of the same meaning. */
export const LISTEN_ENV = {
  httpPort: 'BERTH_HTTP_PORT',
  httpsPort: 'BERTH_HTTPS_PORT',
  apiPort: 'BERTH_API_PORT',
  listen: 'BERTH_LISTEN',
} as const;

export const DEFAULT_API_PORT = 7070;
/** The proxy's ports when it may bind privileged ports (root, CAP_NET_BIND_SERVICE): the standard ones. */
export const PRODUCTION_PORTS = { http: 80, https: 443 } as const;
/** Otherwise (a developer's account): the usual unprivileged alternatives. */
export const DEFAULT_HTTP_PORT = 8080;
export const DEFAULT_HTTPS_PORT = 8443;

/** Where certificates come from: `--acme-directory` (a URL, a known CA's name, or `off`) and the account's details. */
export interface AcmeArgs {
  /** Null when ACME is off. */
  directoryUrl: string | null;
  email: string | undefined;
  /** External account binding: the key id from the flag, the HMAC key only from the environment. */
  eab: { kid: string; hmacKey: string } | undefined;
  dnsHook: string | undefined;
}

/** Flag-less settings read from the environment only: a secret must not show in `ps`. */
export const ACME_EAB_HMAC_ENV = 'BERTH_ACME_EAB_HMAC_KEY';

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
  acme: AcmeArgs;
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
  mayBind: (port: number) => boolean = mayBindPort,
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
        'acme-directory': { type: 'string' },
        'acme-email': { type: 'string' },
        'acme-eab-kid': { type: 'string' },
        'acme-dns-hook': { type: 'string' },
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
  // 80 and 443 when the proxy may bind them, as a production server should; 8080 and 8443 on a developer's account.
  const production = mayBind(PRODUCTION_PORTS.http) && mayBind(PRODUCTION_PORTS.https);
  return {
    dataDir: resolveDataDir(text('data-dir'), env),
    apiPort: port('api-port', LISTEN_ENV.apiPort, DEFAULT_API_PORT, 'port'),
    apiHost: text('api-host') ?? text('host') ?? '127.0.0.1',
    httpPort: port('http-port', LISTEN_ENV.httpPort, production ? PRODUCTION_PORTS.http : DEFAULT_HTTP_PORT),
    httpsPort: port(
      'https-port',
      LISTEN_ENV.httpsPort,
      production ? PRODUCTION_PORTS.https : DEFAULT_HTTPS_PORT,
    ),
    listen,
    externalProxy: values['external-proxy'] === true,
    metricsIntervalMs: duration('metrics-interval', 'BERTH_METRICS_INTERVAL', '5s'),
    autoscaleIntervalMs: duration('autoscale-interval', 'BERTH_AUTOSCALE_INTERVAL', '5s'),
    autoscaleWindowMs: duration('autoscale-window', 'BERTH_AUTOSCALE_WINDOW', '60s'),
    accessLog: values['access-log'] === true || env.BERTH_ACCESS_LOG === '1',
    openMetricsPort: metricsPort === undefined ? undefined : port('metrics-port', 'BERTH_METRICS_PORT', 0),
    sessionTtlMs: duration('session-ttl', 'BERTH_SESSION_TTL', '8h'),
    acme: acmeArgs(text, env),
  };
}

/** `--acme-*` flags and `BERTH_ACME_*` variables; each bad value names its flag or variable. */
function acmeArgs(
  text: (flag: string, variable?: string) => string | undefined,
  env: NodeJS.ProcessEnv,
): AcmeArgs {
  const directory = text('acme-directory', 'BERTH_ACME_DIRECTORY') ?? 'letsencrypt';
  let directoryUrl: string | null;
  if (directory === 'off') directoryUrl = null;
  else if (Object.hasOwn(ACME_DIRECTORIES, directory)) directoryUrl = ACME_DIRECTORIES[directory]!;
  else {
    let url: URL | undefined;
    try {
      url = new URL(directory);
    } catch {
      url = undefined;
    }
    if (url?.protocol !== 'https:') {
      throw new ArgumentError(
        `--acme-directory: expected an https:// URL of an ACME directory, off, or one of ${Object.keys(ACME_DIRECTORIES).join(', ')}; got ${directory}`,
      );
    }
    directoryUrl = url.href;
  }
  const email = text('acme-email', 'BERTH_ACME_EMAIL');
  if (email !== undefined && !/^[^\s@:]+@[^\s@]+\.[^\s@]+$/.test(email))
    throw new ArgumentError(`--acme-email: expected an e-mail address, got ${email}`);
  const kid = text('acme-eab-kid', 'BERTH_ACME_EAB_KID');
  const hmacKey = env[ACME_EAB_HMAC_ENV] || undefined;
  if ((kid === undefined) !== (hmacKey === undefined)) {
    throw new ArgumentError(
      kid === undefined
        ? `${ACME_EAB_HMAC_ENV} is set but --acme-eab-kid is not: external account binding needs both`
        : `--acme-eab-kid needs its HMAC key in ${ACME_EAB_HMAC_ENV} (not a flag: ps would show it)`,
    );
  }
  if (hmacKey !== undefined && !/^[A-Za-z0-9_-]+=*$/.test(hmacKey))
    throw new ArgumentError(`${ACME_EAB_HMAC_ENV}: expected the base64url HMAC key your CA gave you`);
  return {
    directoryUrl,
    ...(email === undefined ? { email: undefined } : { email }),
    eab: kid === undefined || hmacKey === undefined ? undefined : { kid, hmacKey },
    dnsHook: text('acme-dns-hook', 'BERTH_ACME_DNS_HOOK'),
  };
}
