// The control plane process's composition root: store, runtime, reconciler and API wired together.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadOrCreateToken } from '../control/api/admin-token.js';
import { registerAutoscaleRoutes } from '../control/api/autoscale-routes.js';
import { registerBackupRoutes } from '../control/api/backup-routes.js';
import { registerPipelineRoutes } from '../control/api/pipeline-routes.js';
import { registerSecretsRoutes } from '../control/api/secrets-routes.js';
import { createApi } from '../control/api/server.js';
import { AppManager } from '../control/app-manager.js';
import { Autoscaler } from '../control/autoscale/autoscaler.js';
import { MemoryLimiter } from '../control/autoscale/memory-limiter.js';
import { ArtifactBuilder } from '../control/deploy/artifact-builder.js';
import { Deployer } from '../control/deploy/deployer.js';
import { DeploymentTracker } from '../control/deploy/deployment-tracker.js';
import { EventLog } from '../control/event-log.js';
import { DEFAULT_RETENTION, MetricsStore } from '../control/metrics/metrics-store.js';
import { GitRepos } from '../control/pipeline/git-repos.js';
import { PipelineService } from '../control/pipeline/pipeline-service.js';
import { CommandReleasePhase } from '../control/pipeline/release-phase.js';
import { platformEnv, Reconciler } from '../control/reconcile/reconciler.js';
import { ProcessRuntime } from '../control/runtime/process-runtime.js';
import { MASTER_KEY_ENV } from '../control/secrets/master-key.js';
import { TextScrubber } from '../control/secrets/scrubber.js';
import { SecretsService } from '../control/secrets/secrets-service.js';
import { Store } from '../control/store/store.js';
import { ProxySupervisor, type RunningProxy } from '../control/traffic/proxy-supervisor.js';
import { RouteSync } from '../control/traffic/route-sync.js';
import { UsageMonitor } from '../control/usage-monitor.js';
import { type ControlEndpoint, controlPaths } from '../domain/data-dir.js';
import { BerthError } from '../domain/errors.js';
import { proxyPaths } from '../domain/proxy-paths.js';
import { VERSION } from '../domain/version.js';
import { systemClock } from '../lib/clock.js';
import type { FileLock } from '../lib/file-lock.js';
import { createLogger } from '../lib/logger.js';
import { ensurePrivateDir, ensurePrivateFile } from '../lib/private-files.js';
import { identify, writePidFile } from '../lib/process-identity.js';
import { ArgumentError, parseControlPlaneArgs } from './control-plane-options.js';
import { lockDataDir } from './data-dir-lock.js';
import { createObservability } from './observability.js';

export { VERSION };

/** Artifacts of this many most recent releases per app are kept (besides those in use), for rollbacks. */
const RETAINED_RELEASES = 5;

export interface ControlPlaneOptions {
  dataDir: string;
  /** Port of the REST API; 0 picks a free port. */
  port: number;
  host?: string;
  /** Ports of the proxy's listeners, used when this control plane has to start the proxy. */
  httpPort: number;
  httpsPort: number;
  /** Address of the proxy's listeners when this control plane starts it (default: every address). */
  listen?: string;
  /** The proxy runs under its own supervisor (systemd): wait for it, never start it. */
  externalProxy?: boolean;
  /** How often metrics are collected from the proxy and the runtime (ms); default 5000. */
  metricsIntervalMs?: number;
  /** Also serve `GET /metrics` without a token on 127.0.0.1 at this port (opt-in; 0 = any free port). */
  openMetricsPort?: number;
  /** How often autoscaling policies are evaluated (ms); default 5000. */
  autoscaleIntervalMs?: number;
  /** The sliding window the autoscaler averages metrics over (ms); default 60000. */
  autoscaleWindowMs?: number;
  /** Have a proxy started here write access logs, and split them into each app's log. */
  accessLog?: boolean;
}

const PROXY_MAIN = fileURLToPath(new URL('./proxy.js', import.meta.url));
/** What each app's git pre-receive hook runs. */
const GIT_HOOK_MAIN = fileURLToPath(new URL('../cli/git-hook.js', import.meta.url));

export interface RunningControlPlane {
  url: string;
  proxy: RunningProxy;
  close(): Promise<void>;
}

/**
 * Starts a control plane on `options.dataDir`, which it owns until `close()`: a second one on the same data
 * directory is refused (`conflict`, naming this one's pid and URL) before it touches anything.
 */
export async function startControlPlane(options: ControlPlaneOptions): Promise<RunningControlPlane> {
  const paths = controlPaths(options.dataDir);
  // An existing data dir keeps its mode (it may be shared on purpose); what Berth creates inside is private.
  mkdirSync(paths.dataDir, { recursive: true, mode: 0o700 });
  const lock = lockDataDir(paths.dataDir, 'start a second control plane');
  const self = identify(process.pid);
  const startedAt = Date.now();
  const record = (endpoint: Omit<ControlEndpoint, 'pid' | 'startTicks' | 'command'>): void => {
    if (self) writePidFile(paths.endpoint, self, endpoint);
  };
  record({ url: null, dataDir: paths.dataDir, startedAt });
  try {
    return await startOwned(options, paths, lock, (url, proxy) =>
      record({ url, dataDir: paths.dataDir, proxy, startedAt }),
    );
  } catch (error) {
    rmSync(paths.endpoint, { force: true });
    lock.release();
    throw error;
  }
}

/** State, logs and artifacts are readable by the owner only, whatever the umask or the data dir's own mode. */
function makePrivate(paths: ReturnType<typeof controlPaths>): void {
  for (const dir of [
    paths.logs,
    ...['artifacts', 'builds', 'pipeline', 'git', 'proxy'].map((d) => join(paths.dataDir, d)),
  ])
    ensurePrivateDir(dir);
  // SQLite creates the WAL and shared-memory files with the database file's mode; older ones are fixed too.
  ensurePrivateFile(paths.database);
  for (const suffix of ['-wal', '-shm'])
    ensurePrivateFile(`${paths.database}${suffix}`, { onlyIfExists: true });
}

async function startOwned(
  options: ControlPlaneOptions,
  paths: ReturnType<typeof controlPaths>,
  lock: FileLock,
  listening: (url: string, proxy: { http: number; https: number }) => void,
): Promise<RunningControlPlane> {
  makePrivate(paths);
  // Secret values never reach an event or a platform log line: both pass through this scrubber.
  const scrubber = new TextScrubber();
  const log = createLogger({ name: 'berth-control', transform: (line) => scrubber.scrub(line) });
  const token = loadOrCreateToken(paths.token);
  const store = new Store(paths.database);
  const events = new EventLog(store, log, scrubber);
  // Refuses to start (a loose key file, a wrong key) before the proxy or any instance is touched.
  const secrets = SecretsService.open({
    store,
    events,
    dataDir: paths.dataDir,
    envKey: process.env[MASTER_KEY_ENV],
    scrubber,
  });
  // No child (proxy, shims) inherits the master key.
  delete process.env[MASTER_KEY_ENV];
  const runtime = new ProcessRuntime();
  const proxy = await new ProxySupervisor({
    dataDir: paths.dataDir,
    command: [process.execPath, PROXY_MAIN],
    httpPort: options.httpPort,
    httpsPort: options.httpsPort,
    host: options.listen,
    external: options.externalProxy,
    log,
    accessLogFile: options.accessLog ? join(proxyPaths(paths.dataDir).dir, 'access.log') : undefined,
  }).ensureRunning();
  const traffic = new RouteSync(proxy.admin, store, log);
  const builder = new ArtifactBuilder({
    artifactsDir: join(paths.dataDir, 'artifacts'),
    buildsDir: join(paths.dataDir, 'builds'),
    env: platformEnv(),
  });
  // The reconciler and the app manager need each other (kick; deployment verdicts): wire through late binding.
  let reconciler: Reconciler | undefined;
  const apps = new AppManager(store, events, () => reconciler?.kick(), {
    prune: (keep) => builder.prune(keep),
    retainReleases: RETAINED_RELEASES,
  });
  apps.useSecrets(secrets);
  // A new secret version or config var is a new release: the services using it roll, health-gated.
  secrets.onChange((change) => {
    try {
      apps.secretsChanged(change.app, `${change.kind} ${change.names.join(', ')} changed`, 'secrets');
    } catch (error) {
      // E.g. a deployment in progress, or a secret unset that a service still names: say so where users look.
      events.record({
        actor: 'secrets',
        kind: 'release.skipped',
        app: change.app,
        message: `no new release after the ${change.kind} change (${change.names.join(', ')}): ${(error as Error).message}; the next deploy takes it`,
        data: { kind: change.kind, names: change.names },
      });
    }
  });
  const scrub = (text: string): string => scrubber.scrub(text);
  const releasePhase = new CommandReleasePhase({ secrets, scrub, baseEnv: platformEnv() });
  const deployer = new Deployer(apps, builder, {
    releasePhase,
    appSecrets: (app) =>
      secrets
        .list(app)
        .filter((s) => s.deletedAt === null)
        .map((s) => s.name),
  });
  const pipelines = new PipelineService({
    store,
    apps,
    deployer,
    releasePhase,
    secrets,
    events,
    scrub,
    baseEnv: platformEnv(),
    workDir: join(paths.dataDir, 'pipeline'),
  });
  const gitRepos = new GitRepos(join(paths.dataDir, 'git'), GIT_HOOK_MAIN);
  reconciler = new Reconciler({
    store,
    runtime,
    secrets,
    events,
    traffic,
    deployments: new DeploymentTracker(store, events, apps),
    clock: systemClock,
    log,
    logDir: paths.logs,
  });
  const usage = new UsageMonitor(store, runtime);
  const observability = createObservability({
    store,
    events,
    usage,
    proxyAdmin: proxy.admin,
    clock: systemClock,
    log,
    logDir: paths.logs,
    collectIntervalMs: options.metricsIntervalMs,
    openMetricsPort: options.openMetricsPort,
    accessLogFile: options.accessLog ? join(proxyPaths(paths.dataDir).dir, 'access.log') : undefined,
  });
  const autoscaler = new Autoscaler({
    store,
    metrics: new MetricsStore(store.db, DEFAULT_RETENTION),
    scaler: apps,
    events,
    clock: systemClock,
    log,
    intervalMs: options.autoscaleIntervalMs,
    window: { windowMs: options.autoscaleWindowMs, collectIntervalMs: options.metricsIntervalMs },
  });
  const memoryLimiter = new MemoryLimiter({ store, events, log });
  const api = createApi({
    token,
    store,
    apps,
    deployer,
    usage,
    version: VERSION,
    routes: [
      (a) => registerSecretsRoutes(a, secrets),
      (a) => observability.routes(a),
      (a) => registerAutoscaleRoutes(a, { store, autoscaler }),
      (a) => registerPipelineRoutes(a, { pipelines, git: gitRepos, actor: 'admin' }),
      (a) => registerBackupRoutes(a, { store, events, dataDir: paths.dataDir }),
    ],
  });

  // The API port is bound before anything starts, so a taken port changes nothing.
  const host = options.host ?? '127.0.0.1';
  try {
    await api.listen({ host, port: options.port });
  } catch (error) {
    await pipelines.stop();
    secrets.close();
    store.close();
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new BerthError(
        'conflict',
        `the API port ${host}:${options.port} is in use (another Berth on another data directory?); choose another with --api-port or BERTH_API_PORT (0 picks a free one)`,
        { cause: error },
      );
    }
    throw error;
  }
  const address = api.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  events.record({
    actor: 'system',
    kind: 'control.started',
    message: `control plane started (pid ${process.pid})`,
  });
  reconciler.start();
  usage.start();
  await observability.start();
  autoscaler.start();
  memoryLimiter.start();
  listening(url, proxy.ports);
  log.info({ url, dataDir: paths.dataDir }, 'control plane listening');

  return {
    url,
    proxy,
    async close() {
      await pipelines.stop();
      await api.close();
      memoryLimiter.stop();
      await autoscaler.stop();
      await observability.stop();
      usage.stop();
      await reconciler.stop();
      events.record({
        actor: 'system',
        kind: 'control.stopped',
        message: 'control plane stopped; instances keep running',
      });
      secrets.close();
      store.close();
      rmSync(paths.endpoint, { force: true });
      lock.release();
    },
  };
}

async function main(): Promise<void> {
  const args = parseControlPlaneArgs(process.argv.slice(2));
  const plane = await startControlPlane({
    dataDir: args.dataDir,
    port: args.apiPort,
    host: args.apiHost,
    httpPort: args.httpPort,
    httpsPort: args.httpsPort,
    listen: args.listen,
    externalProxy: args.externalProxy,
    metricsIntervalMs: args.metricsIntervalMs,
    autoscaleIntervalMs: args.autoscaleIntervalMs,
    autoscaleWindowMs: args.autoscaleWindowMs,
    accessLog: args.accessLog,
    openMetricsPort: args.openMetricsPort,
  });
  process.stdout.write(
    `${JSON.stringify({ event: 'listening', url: plane.url, pid: process.pid, dataDir: args.dataDir, proxy: plane.proxy.ports })}\n`,
  );
  let closing = false;
  const shutdown = (): void => {
    if (closing) return;
    closing = true;
    plane.close().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`shutdown failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

/** Exit code of a refused start (the data directory has an owner, a port is taken): nothing was changed. */
export const EXIT_REFUSED = 3;

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error: unknown) => {
    process.stderr.write(`berth control plane: ${error instanceof Error ? error.message : String(error)}\n`);
    const refused = error instanceof BerthError && error.code === 'conflict';
    process.exit(error instanceof ArgumentError ? 2 : refused ? EXIT_REFUSED : 1);
  });
}
