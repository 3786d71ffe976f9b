// Apps whose releases run on a Kubernetes target: targets, deploys as releases and deployments in Berth's store
// (followed like local ones), rollback, scale, and pods, logs and events read back from the cluster.
import type { DeployResult, KubeTarget, PodView, ServiceStatus } from '../../domain/api-types.js';
import { circuitBreakerThreshold, type Deployment, type DeploymentKind } from '../../domain/deployment.js';
import { BerthError } from '../../domain/errors.js';
import type { AppLogLine } from '../../domain/metrics-types.js';
import type { AppSpec } from '../../domain/spec.js';
import type { Logger } from '../../lib/logger.js';
import type { ReleaseSecrets } from '../app-manager.js';
import type { Store } from '../store/store.js';
import { ClusterLogFollower, eventLine, podLine } from './cluster-log-follower.js';
import type { KubeCluster, KubeTargetConfig } from './kube-cluster.js';
import type { KubeDeployer, KubeDeployerOptions, KubeRelease } from './kube-deployer.js';
import {
  checkForKubernetes,
  type KubeObject,
  LABEL_COMPONENT,
  LABEL_PART_OF,
  objectNames,
  renderManifests,
  unreachableImages,
} from './kube-manifests.js';
import { apiVersionsFor, LATEST_KNOWN } from './kube-versions.js';
import type { TargetStore } from './target-store.js';

export interface KubeAppsOptions {
  store: Store;
  targets: TargetStore;
  secrets: ReleaseSecrets;
  log: Logger;
  /** How often rollouts are read (tests shorten it). */
  pollMs?: number;
  /** Makes the cluster client of a target (tests may wrap it); the real one by default. */
  cluster?: (target: KubeTargetConfig) => KubeCluster;
}

export class KubeApps {
  readonly #options: KubeAppsOptions;
  readonly #running = new Set<Promise<void>>();
  readonly #stopping = new AbortController();

  constructor(options: KubeAppsOptions) {
    this.#options = options;
  }

  get targets(): TargetStore {
    return this.#options.targets;
  }

  /**
   * Ends the deployments a previous control plane left in progress on a target: their watch died with it. The
   * cluster carries on with the rollout; the record says so, and the next deploy can start.
   */
  recover(): void {
    for (const deployment of this.#options.store.listDeployments({ state: 'in_progress' })) {
      const release = this.#options.store.getRelease(deployment.app, deployment.toRelease);
      if (release?.spec.target === undefined) continue;
      this.#fail(
        deployment,
        `the control plane stopped while it watched this rollout on ${release.spec.target}; the cluster carried on with it (see \`berth ps ${deployment.app}\`): deploy again to watch a new one`,
      );
    }
  }

  /** Stops watching rollouts (the control plane's shutdown): each deployment in progress ends as failed, saying so. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    await Promise.allSettled([...this.#running]);
  }

  async #cluster(target: KubeTarget): Promise<KubeCluster> {
    const config = {
      kubeconfig: target.kubeconfig,
      namespace: target.namespace,
      ...(target.context ? { context: target.context } : {}),
    };
    return this.#options.cluster?.(config) ?? (await openCluster(config));
  }

  /** Adds (or replaces) a target once the cluster answered with its version, so a typo is caught at once. */
  async addTarget(input: {
    name: string;
    kubeconfig: string;
    context?: string;
    namespace?: string;
  }): Promise<KubeTarget> {
    const cluster = await openCluster(input);
    const versions = await cluster.versions();
    return this.#options.targets.put({
      name: input.name,
      kubeconfig: input.kubeconfig,
      ...(input.context === undefined ? {} : { context: input.context }),
      namespace: cluster.namespace,
      serverVersion: versions.server,
    });
  }

  /**
   * Refuses an app whose images the target's nodes could not pull (a registry on loopback, Berth's own included, for
   * a cluster elsewhere). Asked before a build (`berth deploy --target`, a pipeline run), so nothing is built, pushed
   * or recorded in vain; a rollback or a secret change deploys a release that passed it.
   */
  async checkRegistry(spec: AppSpec, targetName: string): Promise<void> {
    checkForKubernetes(spec, targetName);
    const cluster = await this.#cluster(this.#options.targets.get(targetName));
    const issues = unreachableImages(spec, cluster.server);
    if (issues.length > 0) {
      throw new BerthError('invalid_spec', `${spec.app}: target ${targetName} cannot pull its images`, {
        issues,
      });
    }
  }

  /** The target of an app's current release, or undefined for an app on this machine. */
  targetOf(app: string): string | undefined {
    const record = this.#options.store.getApp(app);
    return record && this.#options.store.getRelease(app, record.currentRelease)?.spec.target;
  }

  /**
   * Makes `spec` a new release of its app on target `targetName` and starts its rollout; the deployment record
   * ends as on this machine (succeeded, rolled back with the reason, failed). Refused before anything is recorded
   * when the app cannot run there or another deployment of it is in progress.
   */
  deploy(
    spec: AppSpec,
    sourceDir: string,
    targetName: string,
    actor: string,
    options: { kind?: DeploymentKind; description?: string } = {},
  ): DeployResult {
    const { store } = this.#options;
    const target = this.#options.targets.get(targetName);
    checkForKubernetes(spec, targetName);
    if (store.listServices(spec.app).length > 0) {
      throw new BerthError(
        'conflict',
        `${spec.app} runs on this machine; take it down first (\`berth down ${spec.app}\`), then deploy it to ${targetName}`,
      );
    }
    const active = store.activeDeployment(spec.app);
    if (active)
      throw new BerthError(
        'conflict',
        `${spec.app} is being deployed (deployment ${active.id}); wait for it to end`,
      );
    const next = { ...spec, target: targetName };
    const current = store.getApp(spec.app);
    const previousRecord = current && store.getRelease(spec.app, current.currentRelease);
    const previous = previousRecord?.spec.target === targetName ? previousRecord : undefined;
    // Values now, so a missing secret refuses the deploy before a release exists.
    const nextRelease = (release: number, s: AppSpec): KubeRelease => this.#release(s, release);
    nextRelease(0, next);
    const description =
      options.description ?? (previous ? `deploy to ${targetName}` : `first release on ${targetName}`);
    const eventsAfter = store.events.lastId();
    const { deployment, release } = store.transaction(() => {
      const release = store.createRelease(next, sourceDir, description, null);
      store.events.record({
        actor,
        kind: 'release.created',
        app: spec.app,
        message: `${spec.app} v${release}: ${description}`,
        data: { release, target: targetName },
      });
      const deployment = store.createDeployment({
        // A cluster rolls its Deployments itself (a canary spec is refused for a target, see kube-manifests.ts).
        strategy: 'rolling',
        canary: null,
        app: spec.app,
        kind: options.kind ?? 'deploy',
        fromRelease: previous?.version ?? null,
        toRelease: release,
        services: Object.values(next.services).map((s) => ({
          name: s.name,
          threshold: circuitBreakerThreshold(s.instances),
          failures: 0,
        })),
        startedAt: Date.now(),
      });
      store.events.record({
        actor,
        kind: 'deployment.started',
        app: spec.app,
        message: `deploying ${spec.app} v${release} to ${targetName}${previous ? ` over v${previous.version}` : ''}`,
        data: { deployment: deployment.id, release, from: previous?.version ?? null, target: targetName },
      });
      return { deployment, release };
    });
    const run = this.#rollout(
      target,
      deployment,
      nextRelease(release, next),
      previous && nextRelease(previous.version, previous.spec),
    ).finally(() => this.#running.delete(run));
    this.#running.add(run);
    return {
      app: spec.app,
      release,
      created: true,
      description,
      changes: [],
      eventsAfter,
      deployment: deployment.id,
      build: null,
    };
  }

  /** Release `version` (default: the last one before the current that went live) again, as a new release. */
  rollback(app: string, actor: string, version: number | undefined, target: ReleaseTarget): DeployResult {
    const release = target(app, version);
    return this.deploy(release.spec, release.sourceDir, this.targetOf(app) ?? release.spec.target!, actor, {
      kind: 'rollback',
      description: `rollback to v${release.version}`,
    });
  }

  /** Sets pod counts of the current release (no new release, as locally); the Deployment controller rolls it. */
  async scale(app: string, counts: Record<string, number>, actor: string): Promise<ServiceStatus[]> {
    const { store } = this.#options;
    const record = store.getApp(app);
    const current = record && store.getRelease(app, record.currentRelease);
    const targetName = current?.spec.target;
    if (!current || targetName === undefined)
      throw new BerthError('not_found', `${app} runs on no Kubernetes target`);
    for (const name of Object.keys(counts)) {
      if (!current.spec.services[name]) throw new BerthError('not_found', `${app} has no service ${name}`);
    }
    const cluster = await this.#cluster(this.#options.targets.get(targetName));
    const deployer = await newDeployer(cluster, { target: targetName, pollMs: this.#options.pollMs });
    const scale: Record<string, number> = {};
    for (const name of Object.keys(current.spec.services)) {
      const live = await cluster.deployment(objectNames.workload(app, name));
      if (live?.spec?.replicas !== undefined) scale[name] = live.spec.replicas;
    }
    await cluster.apply(
      await deployer.manifests({
        ...this.#release(current.spec, current.version),
        scale: { ...scale, ...counts },
      }),
    );
    store.events.record({
      actor,
      kind: 'service.scaled',
      app,
      message: `${app} on ${targetName}: ${Object.entries(counts)
        .map(([s, n]) => `${s}=${n}`)
        .join(' ')}`,
      data: { counts, target: targetName },
    });
    const pods = await this.pods(app);
    return Object.entries(counts).map(([name, desired]) => {
      const own = pods.filter((p) => p.service === name);
      const healthy = own.filter((p) => p.ready).length;
      return {
        name,
        release: current.version,
        desired,
        healthy,
        starting: own.length - healthy,
        unhealthy: 0,
        outdated: 0,
        draining: 0,
        converged: healthy === desired && own.length === desired,
      };
    });
  }

  /**
   * The current release of `app` as the objects a cluster would get, for GitOps (`berth export k8s`): the Secret
   * is left out and only referred to (`secretKeyRef`), so no value is ever printed.
   */
  export(app: string, options: { kubeVersion?: string; namespace?: string }): KubeObject[] {
    const { store, secrets } = this.#options;
    const record = store.getApp(app);
    const current = record && store.getRelease(app, record.currentRelease);
    if (!current) throw new BerthError('not_found', `no app named ${app}`);
    const { spec } = current;
    checkForKubernetes(spec, 'the export');
    const names = [...new Set(Object.values(spec.services).flatMap((s) => s.secrets))];
    return renderManifests({
      spec,
      release: current.version,
      namespace: options.namespace ?? 'default',
      versions: apiVersionsFor(options.kubeVersion ?? LATEST_KNOWN),
      services: Object.fromEntries(
        Object.values(spec.services).map((s) => [
          s.name,
          { release: current.version, replicas: s.instances },
        ]),
      ),
      configVars: secrets.configVars(app),
      secretVersions: secrets.versions(app, names),
    });
  }

  /** The app's pods on its target: its instances there. */
  async pods(app: string): Promise<PodView[]> {
    const cluster = await this.#clusterOf(app);
    const pods = await cluster.pods(`${LABEL_PART_OF}=${app}`);
    return pods.map((pod) => ({
      name: pod.metadata?.name ?? '',
      service: pod.metadata?.labels?.[LABEL_COMPONENT] ?? '',
      release: pod.metadata?.annotations?.['berth.dev/release'] ?? '',
      phase: pod.status?.phase ?? 'Pending',
      ready: (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
      restarts: (pod.status?.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0),
      startedAt: pod.status?.startTime ? new Date(pod.status.startTime).getTime() : null,
    }));
  }

  /**
   * The app's pods' output (the newest `lines` of each, with the times the cluster recorded) and the cluster's
   * events about its objects, as lines of the app's log, oldest first. A pod whose log the cluster cannot give
   * (not on a node yet) has none.
   */
  async logs(
    app: string,
    options: { lines: number; service?: string; output?: boolean },
  ): Promise<AppLogLine[]> {
    const cluster = await this.#clusterOf(app);
    const selector = `${LABEL_PART_OF}=${app}${options.service === undefined ? '' : `,${LABEL_COMPONENT}=${options.service}`}`;
    const found: AppLogLine[] = [];
    for (const pod of options.output === false ? [] : await cluster.pods(selector)) {
      const name = pod.metadata?.name ?? '';
      const service = pod.metadata?.labels?.[LABEL_COMPONENT] ?? null;
      for (const text of (await cluster.podLog(name, options.lines, false, true)) ?? []) {
        found.push(podLine(name, service, text));
      }
    }
    for (const event of await cluster.events(app)) found.push(eventLine(event));
    return found.sort((a, b) => a.t - b.t).slice(-options.lines);
  }

  /** A follower of the app's pods' output and the cluster's events (`berth logs -f`, `berth events -f`). */
  async follower(app: string, options: { service?: string; output?: boolean }): Promise<ClusterLogFollower> {
    return new ClusterLogFollower(await this.#clusterOf(app), app, {
      ...options,
      ...(this.#options.pollMs === undefined ? {} : { pollMs: this.#options.pollMs }),
    });
  }

  #clusterOf(app: string): Promise<KubeCluster> {
    const target = this.targetOf(app);
    if (target === undefined) throw new BerthError('not_found', `${app} runs on no Kubernetes target`);
    return this.#cluster(this.#options.targets.get(target));
  }

  #release(spec: AppSpec, release: number): KubeRelease {
    const { secrets } = this.#options;
    const names = [...new Set(Object.values(spec.services).flatMap((s) => s.secrets))];
    return {
      spec,
      release,
      configVars: secrets.configVars(spec.app),
      secretVersions: secrets.versions(spec.app, names),
      secretValues: secrets.resolve(spec.app, names),
    };
  }

  async #rollout(
    target: KubeTarget,
    deployment: Deployment,
    next: KubeRelease,
    previous?: KubeRelease,
  ): Promise<void> {
    const { store, log } = this.#options;
    const app = next.spec.app;
    const deployer = await newDeployer(await this.#cluster(target), {
      target: target.name,
      pollMs: this.#options.pollMs,
      signal: this.#stopping.signal,
      onProgress: (line) =>
        store.events.record({
          actor: 'deployer',
          kind: 'deployment.progress',
          app,
          message: `${app} v${next.release} on ${target.name}: ${line}`,
          // The line as it is, for `berth deploy` to print like a local deploy's progress.
          data: { deployment: deployment.id, line },
        }),
    });
    try {
      // What a deploy keeps that the spec does not say, as locally: a count set by `berth scale` stays while the
      // spec's `instances` for that service is unchanged.
      const scale: Record<string, number> = {};
      const cluster = await this.#cluster(target);
      for (const service of Object.values(next.spec.services)) {
        if (previous?.spec.services[service.name]?.instances !== service.instances) continue;
        const live = await cluster.deployment(objectNames.workload(app, service.name));
        if (live?.spec?.replicas !== undefined) scale[service.name] = live.spec.replicas;
      }
      const result = await deployer.deploy({ ...next, scale }, previous && { ...previous, scale });
      switch (result.outcome) {
        case 'succeeded': {
          const pruned = result.pruned.objects.map((o) => `${o.kind} ${o.name}`);
          store.transitionDeployment(deployment.id, 'succeeded', null, () => ({
            actor: 'deployer',
            kind: 'deployment.succeeded',
            app,
            message: `${app} v${next.release} is live on ${target.name}${pruned.length > 0 ? `; pruned ${pruned.join(', ')}` : ''}`,
            data: { deployment: deployment.id, release: next.release, pruned },
          }));
          return;
        }
        case 'rolled_back':
          store.transaction(() => {
            store.setCurrentRelease(app, result.restored);
            store.transitionDeployment(deployment.id, 'rolled_back', result.reason, () => ({
              actor: 'deployer',
              kind: 'deployment.rolled_back',
              app,
              message: `${app} v${next.release} rolled back to v${result.restored} on ${target.name}: ${result.reason}`,
              data: { deployment: deployment.id, release: next.release, restored: result.restored },
            }));
          });
          return;
        case 'failed':
          this.#fail(deployment, result.reason);
          return;
      }
    } catch (error) {
      log.warn({ err: error, app, target: target.name }, 'Kubernetes deploy failed');
      this.#fail(deployment, (error as Error).message);
    }
  }

  #fail(deployment: Deployment, reason: string): void {
    this.#options.store.transitionDeployment(deployment.id, 'failed', reason, () => ({
      actor: 'deployer',
      kind: 'deployment.failed',
      app: deployment.app,
      message: `${deployment.app} v${deployment.toRelease} failed: ${reason}`,
      data: { deployment: deployment.id },
    }));
  }
}

/** How a rollback finds its release (the app manager's rule: the last one before the current that went live). */
export type ReleaseTarget = (
  app: string,
  version: number | undefined,
) => { spec: AppSpec; sourceDir: string; version: number };

// The Kubernetes client and the object models take about 0.85 s of CPU to load: they are loaded when an app first
// uses a target, not with every control plane (most never have one).

async function openCluster(config: KubeTargetConfig): Promise<KubeCluster> {
  const { KubeCluster } = await import('./kube-cluster.js');
  return new KubeCluster(config);
}

async function newDeployer(cluster: KubeCluster, options: KubeDeployerOptions): Promise<KubeDeployer> {
  const { KubeDeployer } = await import('./kube-deployer.js');
  return new KubeDeployer(cluster, options);
}
