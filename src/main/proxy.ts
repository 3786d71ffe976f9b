// Composition root of a proxy process: on its own (binds its ports), or as a keeper's worker (`--worker`: gets its
// sockets from the keeper over IPC; see src/proxy/keeper.ts). Stops gracefully either way.
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { BerthError, formatIssues } from '../domain/errors.js';
import type { KeeperStatus } from '../domain/proxy-keeper.js';
import { proxyPaths } from '../domain/proxy-paths.js';
import { AccessLog } from '../proxy/access-log.js';
import { AdminApi, type KeeperLink } from '../proxy/admin-api.js';
import { DEFAULT_PORTS } from '../proxy/default-ports.js';
import type { FromWorker, ListenerName, ToWorker } from '../proxy/keeper.js';
import { ProxyServer } from '../proxy/proxy-server.js';
import { PROXY_OPTIONS } from './proxy-options.js';

const USAGE = `usage: node dist/src/main/proxy.js --data-dir DIR [--http-port 8080] [--https-port 8443] [--host ADDR]
       [--admin-socket PATH] [--access-log [FILE]] [--no-redirect] [--drain-ms 10000]
       [--trusted-proxies CIDR,...] [--max-head-bytes 16384]
   or: (started by the keeper, dist/src/main/proxy-keeper.js) --worker --data-dir DIR [same options, no ports]
  --trusted-proxies  proxies in front of this one whose X-Forwarded-* headers are passed on (default none;
                     also BERTH_TRUSTED_PROXIES)
  --max-head-bytes   largest request head accepted and forwarded, 431 above (default 16384, what Node
                     backends accept; also BERTH_MAX_HEAD_BYTES)`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { ...PROXY_OPTIONS, worker: { type: 'boolean' } },
  });
  if (values.help || values['data-dir'] === undefined) {
    console.error(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  if (values.worker && process.send === undefined) {
    console.error('--worker: this process has no IPC channel to a keeper; run proxy-keeper.js instead');
    process.exit(2);
  }
  const port = (raw: string | undefined, fallback: number, flag: string): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0 || n > 65535) {
      console.error(`--${flag}: not a port: ${raw}`);
      process.exit(2);
    }
    return n;
  };
  const trusted = values['trusted-proxies'] ?? process.env.BERTH_TRUSTED_PROXIES ?? '';
  const maxHead = values['max-head-bytes'] ?? process.env.BERTH_MAX_HEAD_BYTES;
  const maxHeadBytes = maxHead === undefined ? undefined : Number(maxHead);
  if (
    maxHeadBytes !== undefined &&
    (!Number.isInteger(maxHeadBytes) || maxHeadBytes < 1024 || maxHeadBytes > 1024 * 1024)
  ) {
    console.error(`--max-head-bytes: expected a whole number of bytes from 1024 to 1048576, got ${maxHead}`);
    process.exit(2);
  }
  const paths = proxyPaths(values['data-dir']);
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  const accessLog =
    values['access-log-file'] !== undefined
      ? AccessLog.toFile(values['access-log-file'])
      : values['access-log']
        ? new AccessLog(process.stderr)
        : undefined;
  // The channel is opened before anything slow, so that no message of the keeper arrives unheard.
  const keeper = values.worker ? new KeeperChannel() : undefined;
  const listeners = await keeper?.listeners;
  const proxy = await ProxyServer.start({
    stateDir: paths.dir,
    httpPort: port(values['http-port'], DEFAULT_PORTS.http, 'http-port'),
    httpsPort: port(values['https-port'], DEFAULT_PORTS.https, 'https-port'),
    host: values.host,
    listeners,
    redirectHttp: !values['no-redirect'],
    accessLog,
    maxHeadBytes,
    trustedProxies: trusted
      .split(',')
      .map((entry) => entry.trim())
      .filter((entry) => entry !== ''),
  });
  const admin = new AdminApi(proxy, { keeper });
  const adminSocket = values['admin-socket'] ?? paths.adminSocket;
  if (listeners === undefined) await admin.listen(adminSocket);
  else if (listeners.admin !== undefined) await admin.listen({ handle: listeners.admin });
  const drainMs = Number(values['drain-ms'] ?? 10_000);

  let stopping = false;
  const stop = async (reason: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${JSON.stringify({ event: 'stopping', pid: process.pid, reason })}\n`);
    await proxy.close(drainMs);
    await admin.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  if (keeper !== undefined) {
    keeper.serve({
      // After a handover that failed, the admin API comes back here.
      adminSocket: (handle) => {
        if (!stopping) void admin.listen({ handle });
      },
      releaseAdmin: () => admin.stopAccepting(),
      // Handed over, or the keeper is gone (killed): stop accepting (the sockets must be free for the next keeper)
      // and finish what is in flight.
      drain: (reason) => void stop(reason),
    });
    keeper.send({ type: 'ready', ports: proxy.ports });
    return;
  }
  process.stdout.write(
    `${JSON.stringify({
      event: 'listening',
      pid: process.pid,
      http: proxy.ports.http,
      https: proxy.ports.https,
      adminSocket,
      caCert: paths.caCert,
    })}\n`,
  );
}

interface WorkerDuties {
  adminSocket(handle: object): void;
  releaseAdmin(): Promise<void>;
  drain(reason: string): void;
}

/** The worker's side of its IPC channel to the keeper. */
class KeeperChannel implements KeeperLink {
  /** The sockets the keeper sent before `go`. */
  readonly listeners: Promise<{ http: object; https: object; admin?: object }>;
  #status: KeeperStatus | null = null;
  #duties: WorkerDuties | undefined;

  constructor() {
    const got: Partial<Record<ListenerName, object>> = {};
    let started = false;
    this.listeners = new Promise((resolve, reject) => {
      process.on('message', (message: ToWorker, handle: object | undefined) => {
        switch (message.type) {
          case 'listen':
            if (handle === undefined) return;
            if (!started) got[message.name] = handle;
            else if (message.name === 'admin') this.#duties?.adminSocket(handle);
            return;
          case 'go':
            started = true;
            if (got.http === undefined || got.https === undefined)
              reject(new Error('the keeper sent no listeners'));
            else resolve({ http: got.http, https: got.https, admin: got.admin });
            return;
          case 'status':
            this.#status = message.status;
            return;
          case 'release-admin':
            void this.#duties?.releaseAdmin().then(() => this.send({ type: 'admin-released' }));
            return;
          case 'drain':
            this.#duties?.drain('asked by the keeper');
            return;
        }
      });
      process.on('disconnect', () => {
        if (!started) reject(new Error('the keeper went away before sending the listeners'));
        this.#duties?.drain('keeper gone');
      });
    });
    // Now that the handler is in place: the keeper sends the sockets in reply.
    this.send({ type: 'hello' });
  }

  serve(duties: WorkerDuties): void {
    this.#duties = duties;
    if (!process.connected) duties.drain('keeper gone');
  }

  status(): KeeperStatus | null {
    return this.#status;
  }

  restart(): void {
    this.send({ type: 'restart' });
  }

  send(message: FromWorker): void {
    if (process.connected) process.send!(message);
  }
}

main().catch((err: unknown) => {
  if (err instanceof BerthError) {
    console.error(
      `berth proxy: ${err.message}${err.issues.length > 0 ? `\n${formatIssues(err.issues)}` : ''}`,
    );
  } else {
    console.error('berth proxy:', err);
  }
  process.exit(1);
});
