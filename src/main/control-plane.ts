// The control plane process's composition root: store, runtime, reconciler and API wired together.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AddonService } from '../control/addons/addon-service.js';
import { AddonStore } from '../control/addons/addon-store.js';
import { AttachedSecrets } from '../control/addons/attached-secrets.js';
import { registerAddonRoutes } from '../control/api/addon-routes.js';
import { loadOrCreateToken } from '../control/api/admin-token.js';
import { registerAutoscaleRoutes } from '../control/api/autoscale-routes.js';
import { registerBackupRoutes } from '../control/api/backup-routes.js';
import { registerCanaryRoutes } from '../control/api/canary-routes.js';
import { registerDomainsRoutes } from '../control/api/domains-routes.js';
import { registerKubeRoutes } from '../control/api/kube-routes.js';
import { registerPipelineRoutes } from '../control/api/pipeline-routes.js';
import { registerProxyRoutes } from '../control/api/proxy-routes.js';
import { registerSecretsRoutes } from '../control/api/secrets-routes.js';
import { createApi } from '../control/api/server.js';
import { registerTrafficRoutes } from '../control/api/traffic-routes.js';
import { AppManager } from '../control/app-manager.js';
import { Autoscaler } from '../control/autoscale/autoscaler.js';
import { MemoryLimiter } from '../control/autoscale/memory-limiter.js';
import { ArtifactBuilder } from '../control/deploy/artifact-builder.js';
import { CanaryController } from '../control/deploy/canary-controller.js';
import { Deployer } from '../control/deploy/deployer.js';
import { DeploymentTracker } from '../control/deploy/deployment-tracker.js';
import { DockerEngine } from '../control/docker/docker-engine.js';
import { AcmeIssuer, newKeyPem } from '../control/domains/acme-issuer.js';
import { CertificateManager } from '../control/domains/certificate-manager.js';
import { DomainRegistry } from '../control/domains/domain-registry.js';
import { DomainStore } from '../control/domains/domain-store.js';
import { LocalRegistry } from '../control/images/local-registry.js';
import { ReleaseImages } from '../control/images/release-images.js';
import { KubeApps } from '../control/kube/kube-apps.js';
import { TargetStore } from '../control/kube/target-store.js';
import { DEFAULT_RETENTION, MetricsStore } from '../control/metrics/metrics-store.js';
import { GitRepos } from '../control/pipeline/git-repos.js';
import { PipelineService } from '../control/pipeline/pipeline-service.js';
import { CommandReleasePhase } from '../control/pipeline/release-phase.js';
import { platformEnv, Reconciler } from '../control/reconcile/reconciler.js';
import { DockerRuntime } from '../control/runtime/docker-runtime.js';
import { ownerMark, ProcessRuntime } from '../control/runtime/process-runtime.js';
import { RuntimeSet } from '../control/runtime/runtime-set.js';
import { MASTER_KEY_ENV } from '../control/secrets/master-key.js';
import { TextScrubber } from '../control/secrets/scrubber.js';
import { SecretsService } from '../control/secrets/secrets-service.js';
import { Database } from '../control/store/database.js';
import { EventStore } from '../control/store/event-store.js';
import { Store } from '../control/store/store.js';
import { ProxySupervisor, type RunningProxy } from '../control/traffic/proxy-supervisor.js';
import { RouteSync } from '../control/traffic/route-sync.js';
import { TargetHealthFeed } from '../control/traffic/target-health-feed.js';
import { TrafficController } from '../control/traffic/traffic-controller.js';
import { UsageMonitor } from '../control/usage-monitor.js';
import { addonMetricsService } from '../domain/addon.js';
import { type ControlEndpoint, controlPaths } from '../domain/data-dir.js';
import { BerthError } from '../domain/errors.js';
import { proxyPaths } from '../domain/proxy-paths.js';
import { VERSION } from '../domain/version.js';
import { systemClock } from '../lib/clock.js';
import { createLogger } from '../lib/logger.js';
import { ensurePrivateDir, ensurePrivateFile } from '../lib/private-files.js';
import { installProcessHandlers } from '../lib/process-handlers.js';
import { identify, writePidFile } from '../lib/process-identity.js';
import { Teardown } from '../lib/teardown.js';
import {
  ACME_EAB_HMAC_ENV,
  type AcmeArgs,
  ArgumentError,
  parseControlPlaneArgs,
} from './control-plane-options.js';
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
  /**
   * The proxy keeper runs as its own service (systemd): wait for it and watch it (its crashes are events), never
   * start or restart it. Default false: the control plane starts the keeper if none runs, and again when it dies.
   */
  externalProxy?: boolean;
  /** How often metrics are collected from the proxy and the runtime (ms); default 5000. */
  metricsIntervalMs?: number;
  /** How long a dashboard session lasts after sign-in (default 8 h). */
  sessionTtlMs?: number;
  /** Also serve `GET /metrics` without a token on 127.0.0.1 at this port (opt-in; 0 = any free port). */
  openMetricsPort?: number;
  /** How often autoscaling policies are evaluated (ms); default 5000. */
  autoscaleIntervalMs?: number;
  /** The sliding window the autoscaler averages metrics over (ms); default 60000. */
  autoscaleWindowMs?: number;
  /** Have a proxy started here write access logs, and split them into each app's log. */
  accessLog?: boolean;
  /** Certificates for public hosts from this CA; absent or a null directory: ACME off (local CA only). */
  acme?: AcmeArgs;
}

const KEEPER_MAIN = fileURLToPath(new URL('./proxy-keeper.js', import.meta.url));
/** What each app's git pre-receive hook runs. */
const GIT_HOOK_MAIN = fileURLToPath(new URL('../cli/git-hook.js', import.meta.url));

export interface RunningControlPlane {
  url: string;
  proxy: RunningProxy;
  log: ReturnType<typeof createLogger>;
  /** Stops every piece, newest first (instances and the proxy keep running). */
  close(): Promise<void>;
}

/**
 * Starts a control plane on `options.dataDir`, which it owns until `close()`: a second one on the same data
 * directory is refused (`conflict`, naming this one's pid and URL) before it touches anything. When a later step
 * fails, the pieces already started are stopped again, newest first, and the error is thrown: a failed start
 * leaves nothing half-running.
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
  // Secret values never reach an event or a platform log line: both pass through this scrubber.
  const scrubber = new TextScrubber();
  const log = createLogger({ name: 'berth-control', transform: (line) => scrubber.scrub(line) });
  const teardown = new Teardown(log);
  teardown.add('the data directory', () => {
    rmSync(paths.endpoint, { force: true });
    lock.release();
  });
  try {
    makePrivate(paths);
    return await start(options, paths, scrubber, log, teardown, (url, proxy) =>
      record({ url, dataDir: paths.dataDir, proxy, startedAt }),
    );
  } catch (error) {
    await teardown.run();
    throw error;
  }
}

/** State, logs and artifacts are readable by the owner only, whatever the umask or the data dir's own mode. */
function makePrivate(paths: ReturnType<typeof controlPaths>): void {
  for (const dir of [
    paths.logs,
    ...['artifacts', 'builds', 'pipeline', 'git', 'proxy', 'registry'].map((d) => join(paths.dataDir, d)),
  ])
    ensurePrivateDir(dir);
  // SQLite creates the WAL and shared-memory files with the database file's mode; older ones are fixed too.
  ensurePrivateFile(paths.database);
  for (const suffix of ['-wal', '-shm'])
    ensurePrivateFile(`${paths.database}${suffix}`, { onlyIfExists: true });
}

async function start(
  options: ControlPlaneOptions,
  paths: ReturnType<typeof controlPaths>,
  scrubber: TextScrubber,
  log: ReturnType<typeof createLogger>,
  teardown: Teardown,
  listening: (url: string, proxy: { http: number; https: number }) => void,
): Promise<RunningControlPlane> {
  const token = loadOrCreateToken(paths.token);
  const clock = systemClock;
  const db = Database.open(paths.database);
  teardown.add('database', () => db.close());
  const events = new EventStore(db, { log, scrubber, clock });
  const store = new Store(db, events, clock);
  // Refuses to start (a loose key file, a wrong key) before the proxy or any instance is touched.
  const secrets = SecretsService.open({
    db,
    store,
    events,
    dataDir: paths.dataDir,
    envKey: process.env[MASTER_KEY_ENV],
    scrubber,
    log,
  });
  teardown.add('secrets', () => secrets.close());
  // No child (proxy, shims) inherits the master key.
  delete process.env[MASTER_KEY_ENV];
  // Containers beside processes: the engine is asked when an app needs it (an app on docker is refused, naming
  // what to install, when none answers); the registry starts with the first image it stores. Every instance
  // carries a mark of this data dir (an env entry, a container label), so a later start can end those that no
  // record owns.
  const owner = ownerMark(paths.dataDir);
  const engine = DockerEngine.local(log);
  teardown.add('docker engine client', () => engine.close());
  const registry = new LocalRegistry({ dataDir: paths.dataDir, log });
  teardown.add('image registry', () => registry.close());
  const images = new ReleaseImages({
    engine,
    registry,
    log,
    secrets,
    registryOf: (app) => {
      const current = store.getApp(app);
      return current && store.getRelease(app, current.currentRelease)?.spec.registry;
    },
  });
  const runtime = new RuntimeSet({
    process: new ProcessRuntime({ log, owner }),
    docker: new DockerRuntime({ engine, owner, images, log }),
  });
  // Add-on servers run on the same runtime as instances (shim, adoption, exit stream, sampling).
  let usage: UsageMonitor | undefined;
  const addons = new AddonService({
    store: new AddonStore(db, events, () => clock.now()),
    core: store,
    events,
    runtime,
    secrets,
    dataDir: paths.dataDir,
    usage: (id) => usage?.usageById(id) ?? null,
    clock,
    log,
  });
  // Every service of an app gets its add-ons' URLs: in its environment and in its config hash.
  const appSecrets = new AttachedSecrets(secrets, (app) => addons.attachedNames(app));
  secrets.useAttachments((app) => addons.attachedNames(app));
  const proxySupervisor = new ProxySupervisor({
    dataDir: paths.dataDir,
    command: [process.execPath, KEEPER_MAIN],
    httpPort: options.httpPort,
    httpsPort: options.httpsPort,
    host: options.listen,
    log,
    events,
    manage: !options.externalProxy,
    accessLogFile: options.accessLog ? join(proxyPaths(paths.dataDir).dir, 'access.log') : undefined,
  });
  const proxy = await proxySupervisor.ensureRunning();
  // The reconciler and the feed need each other (a health change wakes it): wire through late binding.
  let reconciler: Reconciler | undefined;
  // The proxy owns target health; this follows its transitions (list, then watch) for instance states.
  const health = new TargetHealthFeed({
    source: proxy.admin,
    log,
    clock,
    onChange: () => reconciler?.kick(),
    onProxyRestart: () => {
      traffic.invalidate();
      reconciler?.kick();
    },
  });
  const traffic = new RouteSync(proxy.admin, store, log, { health, clock });
  // Hosts, their owners and certificates: public hosts get one from the CA, through the route table.
  const acme = options.acme;
  const directoryUrl = acme?.directoryUrl ?? null;
  const domainStore = new DomainStore(db, events, clock);
  const domains = new DomainRegistry({
    store: domainStore,
    apps: store,
    acme: { enabled: directoryUrl !== null, dnsHook: acme?.dnsHook !== undefined },
  });
  const certificates =
    directoryUrl === null
      ? undefined
      : new CertificateManager({
          store: domainStore,
          registry: domains,
          issuer: new AcmeIssuer({
            config: {
              directoryUrl,
              ...(acme?.email === undefined ? {} : { email: acme.email }),
              ...(acme?.eab === undefined ? {} : { eab: acme.eab }),
            },
            // Sealed like an app secret, under the master key; one per CA directory.
            accountKey: () => secrets.platformSecret(`acme-account ${directoryUrl}`, newKeyPem),
            accountUrl: () => domainStore.accountUrl(directoryUrl),
            saveAccount: (url) => {
              domainStore.saveAccount(directoryUrl, url);
              events.record({
                actor: 'certificates',
                kind: 'acme.account_created',
                message: `ACME account registered at ${directoryUrl}: ${url}`,
                data: { directory: directoryUrl, account: url },
              });
            },
          }),
          ...(acme?.dnsHook === undefined ? {} : { dnsHook: acme.dnsHook }),
          traffic,
          certsDir: join(proxyPaths(paths.dataDir).certsDir, 'acme'),
          log,
          clock,
        });
  traffic.useTls({
    aliases: () => domains.aliases(),
    certificates: () => certificates?.certificates() ?? [],
    challenges: () => certificates?.challenges() ?? [],
  });
  const builder = new ArtifactBuilder({
    artifactsDir: join(paths.dataDir, 'artifacts'),
    buildsDir: join(paths.dataDir, 'builds'),
    env: platformEnv(),
  });
  const apps = new AppManager(
    store,
    () => {
      reconciler?.kick();
      certificates?.kick();
    },
    {
      artifacts: {
        prune: (keep) => builder.prune(keep),
        pruneImages: (keep) => images.prune(keep),
        retainReleases: RETAINED_RELEASES,
      },
      clock,
    },
  );
  apps.useSecrets(appSecrets);
  apps.useHosts(domains);
  // Apps on Kubernetes targets: their releases and deployments live in the same store, their pods on the cluster.
  const kube = new KubeApps({ store, targets: new TargetStore(db, clock), secrets, log });
  kube.recover();
  teardown.add('Kubernetes rollouts', () => kube.stop());
  // A new secret version or config var is a new release: the services using it roll, health-gated.
  secrets.onChange((change) => {
    // A deploy provisioning an add-on makes the release itself, with the add-on's URL in it.
    if (change.release === false) return;
    try {
      const what = `${change.kind} ${change.names.join(', ')} changed`;
      const target = kube.targetOf(change.app);
      if (target !== undefined) {
        const current = store.getRelease(change.app, store.getApp(change.app)!.currentRelease)!;
        kube.deploy(current.spec, current.sourceDir, target, 'secrets', { description: what });
        return;
      }
      apps.secretsChanged(change.app, what, 'secrets');
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
  const releasePhase = new CommandReleasePhase({ secrets: appSecrets, scrub, baseEnv: platformEnv() });
  const deployer = new Deployer(apps, builder, {
    releasePhase,
    addons,
    images,
    appSecrets: (app) =>
      secrets
        .list(app)
        .filter((s) => s.deletedAt === null)
        .map((s) => s.name),
  });
  const pipelines = new PipelineService({
    db,
    store,
    clock,
    apps,
    deployer,
    kube,
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
    secrets: appSecrets,
    otherProcesses: () => addons.ownedRefs(),
    traffic,
    health,
    deployments: new DeploymentTracker(store, apps, clock),
    clock,
    log,
    logDir: paths.logs,
  });
  usage = new UsageMonitor(store, runtime, log, () => addons.ownedRefs());
  const metrics = new MetricsStore(db, DEFAULT_RETENTION);
  const observability = createObservability({
    db,
    store,
    metrics,
    usage,
    proxyAdmin: proxy.admin,
    clock,
    log,
    logDir: paths.logs,
    collectIntervalMs: options.metricsIntervalMs,
    openMetricsPort: options.openMetricsPort,
    accessLogFile: options.accessLog ? join(proxyPaths(paths.dataDir).dir, 'access.log') : undefined,
    otherProcesses: () =>
      addons.servers().map((server) => ({
        app: server.app,
        service: addonMetricsService(server.name),
        instance: server.processId,
        healthy: server.healthy,
        usage: usage?.usageById(server.processId) ?? null,
      })),
  });
  const autoscaler = new Autoscaler({
    store,
    metrics,
    alarmStates: (app) => observability.alarmStates(app),
    scaler: apps,
    events,
    clock,
    log,
    intervalMs: options.autoscaleIntervalMs,
    window: { windowMs: options.autoscaleWindowMs, collectIntervalMs: options.metricsIntervalMs },
  });
  const memoryLimiter = new MemoryLimiter({ store, events, log });
  const canaries = new CanaryController({
    store,
    apps,
    proxyMetrics: () => proxy.admin.metrics(),
    clock,
    log,
    changed: () => reconciler?.kick(),
    syncRoutes: () => traffic.sync(),
  });
  const trafficSplits = new TrafficController({
    store,
    proxyMetrics: () => proxy.admin.metrics(),
    clock,
    log,
    changed: () => reconciler?.kick(),
    syncRoutes: () => traffic.sync(),
  });
  const api = createApi({
    token,
    store,
    apps,
    deployer,
    usage,
    kube,
    log,
    version: VERSION,
    sessionTtlMs: options.sessionTtlMs,
    liveTickMs: options.metricsIntervalMs,
    routes: [
      (a) => registerKubeRoutes(a, { kube, targets: kube.targets }),
      (a) => registerSecretsRoutes(a, secrets),
      (a) => registerAddonRoutes(a, addons),
      (a) => observability.routes(a),
      (a) => registerAutoscaleRoutes(a, { store, autoscaler }),
      (a) => registerCanaryRoutes(a, { store, apps, canaries, actor: 'admin' }),
      (a) => registerTrafficRoutes(a, { traffic: trafficSplits, actor: 'admin' }),
      (a) => registerPipelineRoutes(a, { pipelines, git: gitRepos, actor: 'admin' }),
      (a) => registerBackupRoutes(a, { store, events, dataDir: paths.dataDir, addons }),
      (a) => registerProxyRoutes(a, proxySupervisor),
      (a) =>
        registerDomainsRoutes(a, {
          registry: domains,
          certificates,
          directory: directoryUrl,
          dnsHook: acme?.dnsHook !== undefined,
          changed: () => {
            certificates?.kick();
            return traffic.sync();
          },
        }),
    ],
  });

  // The API port is bound before anything starts, so a taken port changes nothing (the teardown undoes the rest).
  const host = options.host ?? '127.0.0.1';
  try {
    await api.listen({ host, port: options.port });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new BerthError(
        'conflict',
        `the API port ${host}:${options.port} is in use (another Berth on another data directory?); choose another with --api-port or BERTH_API_PORT (0 picks a free one)`,
        { cause: error },
      );
    }
    throw error;
  }
  teardown.add('API', () => api.close());
  // Before the API closes: aborted runs end their streams, which would otherwise hold the close up.
  teardown.add('pipelines', () => pipelines.stop());
  const address = api.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  events.record({
    actor: 'system',
    kind: 'control.started',
    message: `control plane started (pid ${process.pid})`,
  });
  teardown.add('the stop event', () =>
    events.record({
      actor: 'system',
      kind: 'control.stopped',
      message: 'control plane stopped; instances keep running',
    }),
  );
  health.start();
  teardown.add('target health feed', () => health.stop());
  await reconciler.start();
  teardown.add('reconciler', () => reconciler?.stop());
  // After the reconciler's reclaim (which counts the add-on servers as owned); stopped before it closes the runtime.
  await addons.start();
  teardown.add('add-ons', () => addons.stop());
  if (certificates !== undefined) {
    certificates.start();
    teardown.add('certificates', () => certificates.stop());
  }
  // The keeper is watched from now on: started again when it dies, its journal recorded as proxy.* events.
  proxySupervisor.watch();
  teardown.add('proxy watch', () => proxySupervisor.stop());
  usage.start();
  teardown.add('usage sampling', () => usage.stop());
  await observability.start();
  teardown.add('observability', () => observability.stop());
  autoscaler.start();
  teardown.add('autoscaler', () => autoscaler.stop());
  canaries.start();
  teardown.add('canaries', () => canaries.stop());
  trafficSplits.start();
  teardown.add('traffic splits', () => trafficSplits.stop());
  memoryLimiter.start();
  teardown.add('memory limits', () => memoryLimiter.stop());
  listening(url, proxy.ports);
  log.info({ url, dataDir: paths.dataDir }, 'control plane listening');

  return { url, proxy, log, close: () => teardown.run() };
}

async function main(): Promise<void> {
  const args = parseControlPlaneArgs(process.argv.slice(2));
  // Read once: neither the proxy nor any instance inherits the CA's HMAC key.
  delete process.env[ACME_EAB_HMAC_ENV];
  const plane = await startControlPlane({
    dataDir: args.dataDir,
    port: args.apiPort,
    host: args.apiHost,
    httpPort: args.httpPort,
    httpsPort: args.httpsPort,
    listen: args.listen,
    externalProxy: args.externalProxy,
    metricsIntervalMs: args.metricsIntervalMs,
    sessionTtlMs: args.sessionTtlMs,
    autoscaleIntervalMs: args.autoscaleIntervalMs,
    autoscaleWindowMs: args.autoscaleWindowMs,
    accessLog: args.accessLog,
    openMetricsPort: args.openMetricsPort,
    acme: args.acme,
  });
  installProcessHandlers({ log: plane.log, close: () => plane.close() });
  process.stdout.write(
    `${JSON.stringify({ event: 'listening', url: plane.url, pid: process.pid, dataDir: args.dataDir, proxy: plane.proxy.ports })}\n`,
  );
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
