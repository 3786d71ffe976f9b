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
import { ProxyServer, type ProxyWorkers, type SharedProxyState } from '../proxy/proxy-server.js';
import { NO_WORKER_METRICS, type WorkerMetrics } from '../proxy/worker-metrics.js';
import { PROXY_OPTIONS } from './proxy-options.js';

/** How long an admin change waits for the other workers to serve it before it is answered anyway. */
const SETTLE_MS = 2000;

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
  // The worker given the admin socket is the authority; the others follow it (see src/proxy/keeper.ts).
  const workers = keeper?.workers(listeners?.admin === undefined ? 'follower' : 'authority');
  const proxy = await ProxyServer.start({
    workers,
    ticketKeys: listeners?.ticketKeys,
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
    // Its counts stay in the proxy's sums after it is gone.
    await keeper?.sendAndWait({ type: 'report', id: 0, metrics: proxy.workerMetrics() });
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
      proxy,
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
  proxy: ProxyServer;
}

/** The worker's side of its IPC channel to the keeper. */
class KeeperChannel implements KeeperLink {
  /** The sockets (and TLS ticket keys) the keeper sent before `go`. */
  readonly listeners: Promise<{ http: object; https: object; admin?: object; ticketKeys?: Buffer }>;
  #status: KeeperStatus | null = null;
  #duties: WorkerDuties | undefined;
  /** Shared state that came before the proxy was up: adopted once it is. */
  #pendingSync: { state: SharedProxyState; seq: number } | undefined;
  /** Authority: the number of the last shared state sent, what each follower said it adopted, who waits. */
  #seq = Date.now() * 1000; // grows across authorities too: a new one (a handover, a crash) starts later
  readonly #syncedBy = new Map<number, number>();
  #settleWaiters: { seq: number; done: () => void }[] = [];
  #ticketKeys: Buffer | undefined;
  #syncScheduled = false;
  #drainAsked = false;
  #role: ProxyWorkers['role'] = 'authority';
  #nextCollect = 1;
  readonly #collects = new Map<number, (metrics: WorkerMetrics) => void>();

  constructor() {
    const got: Partial<Record<ListenerName, object>> = {};
    let started = false;
    this.listeners = new Promise((resolve, reject) => {
      process.on('message', (message: ToWorker, handle: object | undefined) => {
        const proxy = this.#duties?.proxy;
        switch (message.type) {
          case 'listen':
            if (handle === undefined) return;
            if (!started) got[message.name] = handle;
            else if (message.name === 'admin') this.#duties?.adminSocket(handle);
            return;
          case 'tickets':
            this.#ticketKeys = Buffer.from(message.keys, 'base64');
            proxy?.setTicketKeys(this.#ticketKeys);
            return;
          case 'go':
            started = true;
            if (got.http === undefined || got.https === undefined)
              reject(new Error('the keeper sent no listeners'));
            else
              resolve({ http: got.http, https: got.https, admin: got.admin, ticketKeys: this.#ticketKeys });
            return;
          case 'status':
            this.#status = message.status;
            proxy?.peersLeft(message.status.workers.map((w) => w.pid));
            for (const pid of this.#syncedBy.keys())
              if (!message.status.workers.some((w) => w.pid === pid)) this.#syncedBy.delete(pid);
            this.#checkSettled();
            return;
          case 'sync':
            if (proxy === undefined) this.#pendingSync = message;
            else this.#adopt(proxy, message);
            return;
          case 'peer-synced':
            this.#peerSynced(message.pid, message.seq);
            return;
          case 'peer-drained':
            proxy?.peerDrained(message.targetGroup, message.target, message.pid);
            return;
          case 'peer-failure':
            proxy?.peerFailure(message.targetGroup, message.target, message.reason);
            return;
          case 'report':
            if (proxy !== undefined)
              this.send({ type: 'report', id: message.id, metrics: proxy.workerMetrics() });
            return;
          case 'collected':
            this.#collects.get(message.id)?.(message.metrics);
            this.#collects.delete(message.id);
            return;
          case 'release-admin':
            void this.#duties?.releaseAdmin().then(() => this.send({ type: 'admin-released' }));
            return;
          case 'drain':
            // A worker still starting (a handover the keeper's stop overtook) drains as soon as it serves.
            this.#drainAsked = true;
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
    if (this.#pendingSync !== undefined) this.#adopt(duties.proxy, this.#pendingSync);
    this.#pendingSync = undefined;
    // The state it loaded from disk goes to the followers (a new authority after a crash or a handover).
    this.#sync();
    if (this.#drainAsked) duties.drain('asked by the keeper');
    else if (!process.connected) duties.drain('keeper gone');
  }

  /** How this worker stands with the others: the authority publishes, followers report back. */
  workers(role: ProxyWorkers['role']): ProxyWorkers {
    this.#role = role;
    return {
      role,
      peers: () => (this.#status?.workers ?? []).filter((w) => w.pid !== process.pid).map((w) => w.pid),
      onSharedChange: () => {
        if (role !== 'authority' || this.#syncScheduled) return;
        // Changes made in one tick (a route table, its health events) go out as one message.
        this.#syncScheduled = true;
        setImmediate(() => this.#sync());
      },
      settled: () => this.#settled(),
      onPassiveFailure: (targetGroup, target, reason) =>
        this.send({ type: 'failure', targetGroup, target, reason }),
      // The keeper passes it on unless this is the authority (an old one, of a handover, is not any more).
      onDrained: (targetGroup, target) => this.send({ type: 'drained', targetGroup, target }),
    };
  }

  #sync(): void {
    this.#syncScheduled = false;
    const proxy = this.#duties?.proxy;
    if (proxy !== undefined && this.#duties !== undefined && this.#role === 'authority')
      this.send({ type: 'sync', state: proxy.sharedState(), seq: ++this.#seq });
  }

  /** Follower: serves the authority's state, and says so (the authority answers admin changes on that word). */
  #adopt(proxy: ProxyServer, sync: { state: SharedProxyState; seq: number }): void {
    proxy.adoptShared(sync.state);
    this.send({ type: 'synced', seq: sync.seq });
  }

  /** Authority: waits until every serving follower has adopted what is shared now (at most SETTLE_MS). */
  #settled(): Promise<void> {
    if (this.#role !== 'authority') return Promise.resolve();
    // A change made this turn goes out with the next sync, the one to wait for.
    const seq = this.#syncScheduled ? this.#seq + 1 : this.#seq;
    if (this.#allSynced(seq)) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = {
        seq,
        done: () => {
          clearTimeout(timer);
          this.#settleWaiters = this.#settleWaiters.filter((w) => w !== waiter);
          resolve();
        },
      };
      // A follower that hangs must not hold the admin API: past this, the change stands without its answer.
      const timer = setTimeout(waiter.done, SETTLE_MS);
      this.#settleWaiters.push(waiter);
    });
  }

  #peerSynced(pid: number, seq: number): void {
    if (seq > (this.#syncedBy.get(pid) ?? 0)) this.#syncedBy.set(pid, seq);
    this.#checkSettled();
  }

  #allSynced(seq: number): boolean {
    const followers = (this.#status?.workers ?? []).filter(
      (w) => w.pid !== process.pid && w.state === 'serving',
    );
    return followers.every((w) => (this.#syncedBy.get(w.pid) ?? 0) >= seq);
  }

  #checkSettled(): void {
    for (const waiter of [...this.#settleWaiters]) if (this.#allSynced(waiter.seq)) waiter.done();
  }

  /** The other workers' counters (and those of workers gone), summed by the keeper. */
  collect(own: WorkerMetrics): Promise<WorkerMetrics> {
    const id = this.#nextCollect++;
    return new Promise((resolve) => {
      // The keeper answers within its own deadline; this one covers a keeper that went away.
      const timer = setTimeout(() => {
        this.#collects.delete(id);
        resolve(NO_WORKER_METRICS);
      }, 3000);
      this.#collects.set(id, (metrics) => {
        clearTimeout(timer);
        resolve(metrics);
      });
      this.send({ type: 'collect', id, own });
    });
  }

  /** Sends and resolves once the message is written to the channel (before the process exits). */
  sendAndWait(message: FromWorker): Promise<void> {
    if (!process.connected) return Promise.resolve();
    return new Promise((resolve) => process.send!(message, undefined, {}, () => resolve()));
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
