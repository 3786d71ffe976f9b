// `berth up` (the control plane in the foreground, or as a daemon with --detach) and `berth stop`.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { type ControlEndpoint, controlPaths } from '../../domain/data-dir.js';
import { BerthError } from '../../domain/errors.js';
import { isRunning, readPidFile, signalRecorded } from '../../lib/process-identity.js';
import { ApiClient } from '../client.js';
import type { CliContext } from '../context.js';
import { UsageError } from '../output.js';

const CONTROL_PLANE = fileURLToPath(new URL('../../main/control-plane.js', import.meta.url));

/** How long `up --detach` waits for the control plane to answer, and `stop` for it to exit. */
const DETACH_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 90_000;

interface UpOptions {
  apiPort?: string;
  port?: string;
  httpPort?: string;
  httpsPort?: string;
  listen?: string;
  metricsPort?: string;
  metricsInterval?: string;
  accessLog?: boolean;
  detach?: boolean;
  acmeDirectory?: string;
  acmeEmail?: string;
  acmeEabKid?: string;
  acmeDnsHook?: string;
}

/** The control plane's flags for what was given; the rest it takes from BERTH_* variables or its defaults. */
function controlPlaneArgs(dataDir: string, options: UpOptions): string[] {
  const ports: [flag: string, value: string | undefined][] = [
    ['api-port', options.apiPort ?? options.port],
    ['http-port', options.httpPort],
    ['https-port', options.httpsPort],
    ['metrics-port', options.metricsPort],
  ];
  const args = ['--data-dir', dataDir];
  for (const [flag, value] of ports) {
    if (value === undefined) continue;
    if (!/^\d+$/.test(value) || Number(value) > 65535)
      throw new UsageError(`--${flag}: expected a port number from 0 to 65535, got ${value}`);
    args.push(`--${flag}`, value);
  }
  if (options.listen !== undefined) args.push('--listen', options.listen);
  if (options.metricsInterval !== undefined) args.push('--metrics-interval', options.metricsInterval);
  if (options.accessLog) args.push('--access-log');
  for (const [flag, value] of [
    ['acme-directory', options.acmeDirectory],
    ['acme-email', options.acmeEmail],
    ['acme-eab-kid', options.acmeEabKid],
    ['acme-dns-hook', options.acmeDnsHook],
  ] as const) {
    if (value !== undefined) args.push(`--${flag}`, value);
  }
  return args;
}

export function registerUp(program: Command, context: CliContext): void {
  program
    .command('up')
    .description('run the control plane (Ctrl-C or `berth stop` stops Berth, not the apps)')
    .option(
      '--api-port <port>',
      'port of the REST API on 127.0.0.1 (0 = any free port) [$BERTH_API_PORT, 7070]',
    )
    .option('--port <port>', 'the older name of --api-port')
    .option(
      '--http-port <port>',
      "the proxy's HTTP port (redirects to HTTPS, answers ACME challenges) [$BERTH_HTTP_PORT, 80 as root or with CAP_NET_BIND_SERVICE, else 8080]",
    )
    .option('--https-port <port>', "the proxy's HTTPS port [$BERTH_HTTPS_PORT, 443 when it may, else 8443]")
    .option('--listen <address>', "address of the proxy's listeners [$BERTH_LISTEN, every address]")
    .option('--detach', 'run in the background (log: <data-dir>/control.log); returns once it answers')
    .option('--metrics-port <port>', 'also serve Prometheus /metrics without a token on 127.0.0.1:<port>')
    .option('--metrics-interval <duration>', 'how often to collect metrics (default 5s)')
    .option('--access-log', "have the proxy log every request; shown in each app's `berth logs`")
    .option(
      '--acme-directory <url>',
      'where public hosts get certificates (agreeing to its terms): letsencrypt, letsencrypt-staging, zerossl, google, an RFC 8555 directory URL, or off [$BERTH_ACME_DIRECTORY, letsencrypt]',
    )
    .option('--acme-email <address>', "the ACME account's contact [$BERTH_ACME_EMAIL]")
    .option(
      '--acme-eab-kid <kid>',
      'external account binding key id (ZeroSSL, Google); its HMAC key in $BERTH_ACME_EAB_HMAC_KEY [$BERTH_ACME_EAB_KID]',
    )
    .option(
      '--acme-dns-hook <command>',
      'DNS-01 (needed for *.wildcards): a command that sets/clears $BERTH_ACME_NAME TXT $BERTH_ACME_VALUE [$BERTH_ACME_DNS_HOOK]',
    )
    .action(async (options: UpOptions) => {
      const dataDir = context.dataDir;
      const args = [CONTROL_PLANE, ...controlPlaneArgs(dataDir, options)];
      if (options.detach) return detach(dataDir, args);
      const child = spawn(process.execPath, args, { stdio: 'inherit' });
      const forward = (signal: NodeJS.Signals): void => {
        child.kill(signal);
      };
      process.on('SIGINT', forward);
      process.on('SIGTERM', forward);
      const code = await new Promise<number>((resolve) =>
        child.on('exit', (exitCode) => resolve(exitCode ?? 1)),
      );
      process.exitCode = code;
    });

  program
    .command('stop')
    .description('stop the control plane of this data directory (the proxy and the apps keep serving)')
    .action(async () => {
      const dataDir = context.dataDir;
      const path = controlPaths(dataDir).endpoint;
      const sent = signalRecorded(path, 'SIGTERM');
      if (sent.outcome !== 'signalled') {
        process.stdout.write(`Berth is not running on the data directory ${dataDir}\n`);
        return;
      }
      const recorded = readPidFile<ControlEndpoint>(path);
      const deadline = Date.now() + STOP_TIMEOUT_MS;
      while (recorded !== undefined && isRunning(recorded)) {
        if (Date.now() > deadline)
          throw new BerthError('runtime_failure', `the control plane (pid ${sent.pid}) is still stopping`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      process.stdout.write(
        `stopped the control plane (pid ${sent.pid}); the proxy and the apps keep serving\n`,
      );
    });
}

/**
 * Starts the control plane as a daemon (own session, output appended to control.log) and returns once it answers
 * on its API, or fails with the end of its log if it exits first.
 */
async function detach(dataDir: string, args: string[]): Promise<void> {
  const paths = controlPaths(dataDir);
  const running = readPidFile<ControlEndpoint>(paths.endpoint);
  if (running !== undefined && isRunning(running)) {
    throw new BerthError(
      'conflict',
      `Berth already runs on the data directory ${dataDir} (pid ${running.pid}${running.url ? `, API ${running.url}` : ''})`,
    );
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const log = openSync(paths.log, 'a', 0o600);
  const logStart = statSync(paths.log).size;
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  let exitCode: number | null | undefined;
  child.once('exit', (code, signal) => {
    exitCode = code ?? (signal ? 128 : 1);
  });
  const deadline = Date.now() + DETACH_TIMEOUT_MS;
  for (;;) {
    if (exitCode !== undefined) {
      process.stderr.write(tail(paths.log, logStart));
      throw new BerthError(
        'runtime_failure',
        `the control plane exited with code ${exitCode} while starting; its log: ${paths.log}`,
      );
    }
    const endpoint = readPidFile<ControlEndpoint>(paths.endpoint);
    if (endpoint !== undefined && endpoint.pid === child.pid && endpoint.url) {
      const answered = await ApiClient.fromDataDir(dataDir)
        .ping()
        .catch(() => undefined);
      if (answered) {
        child.unref();
        const proxy = endpoint.proxy
          ? `, proxy HTTP :${endpoint.proxy.http} HTTPS :${endpoint.proxy.https}`
          : '';
        process.stdout.write(
          `Berth is running in the background: pid ${child.pid}, API ${endpoint.url}${proxy}\n` +
            `  data directory ${dataDir}\n  log ${paths.log}\n  stop it with: berth stop\n`,
        );
        return;
      }
    }
    if (Date.now() > deadline) {
      child.unref();
      throw new BerthError(
        'runtime_failure',
        `the control plane (pid ${child.pid}) did not answer within ${DETACH_TIMEOUT_MS / 1000}s; see ${paths.log}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** What was appended to `path` from `offset` (at most the last 4 KiB). */
function tail(path: string, offset: number): string {
  const size = statSync(path).size;
  const start = Math.max(offset, size - 4096);
  const buffer = Buffer.alloc(size - start);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buffer, 0, buffer.length, start);
  } finally {
    closeSync(fd);
  }
  return buffer.toString('utf8');
}
