// Deploys a release to a Kubernetes target: render, validate, server-side apply, watch each Deployment's rollout,
// and, when one fails, apply the previous release's spec again and wait for it (Berth's rollback, not the cluster's).
import { circuitBreakerReason, circuitBreakerThreshold } from '../../domain/deployment.js';
import { BerthError } from '../../domain/errors.js';
import { type AppSpec, DEFAULT_PROGRESS_DEADLINE_MS } from '../../domain/spec.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import type { KubeCluster, PruneResult } from './kube-cluster.js';
import {
  checkForKubernetes,
  FIELD_MANAGER,
  type KubeObject,
  LABEL_COMPONENT,
  LABEL_NAME,
  objectNames,
  podTemplateHash,
  RELEASE_ANNOTATION,
  renderManifests,
  type ServicePlacement,
  unpinnedImages,
} from './kube-manifests.js';
import { validateManifests } from './kube-validate.js';
import { appliedAt, type RolloutStatus, rolloutStatus } from './rollout-status.js';

/** On a Deployment: the digest of the pod template Berth last applied, to tell an unchanged service. */
export const TEMPLATE_ANNOTATION = 'berth.dev/pod-template';

/** Lines of a failed pod's log in a failure reason, as many as locally. */
const LOG_LINES_IN_REASON = 10;

/** A release as the cluster gets it: the spec, and what its environment is made of. */
export interface KubeRelease {
  spec: AppSpec;
  release: number;
  configVars: Record<string, string>;
  secretVersions: Record<string, number>;
  /** The values of the secrets the services name: sent in the app's Secret object, over the API only. */
  secretValues: Record<string, string>;
  /** Pods per service set by `berth scale`, over the spec's `instances`. */
  scale?: Record<string, number>;
}

export type KubeDeployOutcome =
  | { outcome: 'succeeded'; release: number; services: string[]; pruned: PruneResult }
  | { outcome: 'rolled_back'; release: number; restored: number; reason: string }
  | { outcome: 'failed'; release: number; reason: string };

export interface KubeDeployerOptions {
  clock?: Clock;
  /** How often the rollout is read; the default suits a real cluster. */
  pollMs?: number;
  /** Each change of a service's progress line (`web: 2/3 new ready`), as it happens. */
  onProgress?: (line: string) => void;
  /** The name of the target, in messages. */
  target?: string;
  /** Ends a watch early (the control plane stops): the rollout then fails with that reason. */
  signal?: AbortSignal;
}

export class KubeDeployer {
  readonly #cluster: KubeCluster;
  readonly #clock: Clock;
  readonly #pollMs: number;
  readonly #onProgress: (line: string) => void;
  readonly #target: string;
  readonly #signal: AbortSignal | undefined;

  constructor(cluster: KubeCluster, options: KubeDeployerOptions = {}) {
    this.#cluster = cluster;
    this.#clock = options.clock ?? systemClock;
    this.#pollMs = options.pollMs ?? 1000;
    this.#onProgress = options.onProgress ?? (() => {});
    this.#target = options.target ?? 'kubernetes';
    this.#signal = options.signal;
  }

  /**
   * The objects of `release` for this cluster, validated: a service whose pod template would not change keeps the
   * release that introduced its pods (and so its pods).
   */
  async manifests(release: KubeRelease): Promise<KubeObject[]> {
    checkForKubernetes(release.spec, this.#target);
    const unpinned = unpinnedImages(release.spec);
    if (unpinned.length > 0) {
      throw new BerthError(
        'invalid_spec',
        `${release.spec.app}: ${unpinned.join(', ')} must run an image pinned by digest (…@sha256:…) on a cluster: deploy it so that Berth builds and pushes it`,
        {
          issues: unpinned.map((name) => ({
            path: `services.${name}.image`,
            message: 'not pinned by digest',
          })),
        },
      );
    }
    const versions = await this.#cluster.versions();
    const render = (services: Record<string, ServicePlacement>): KubeObject[] =>
      renderManifests({
        spec: release.spec,
        release: release.release,
        namespace: this.#cluster.namespace,
        versions,
        services,
        configVars: release.configVars,
        secretVersions: release.secretVersions,
        secretValues: release.secretValues,
      });
    const placements: Record<string, ServicePlacement> = {};
    for (const service of Object.values(release.spec.services)) {
      placements[service.name] = {
        release: release.release,
        replicas: release.scale?.[service.name] ?? service.instances,
      };
    }
    for (const service of Object.values(release.spec.services)) {
      const { replicas } = placements[service.name]!;
      const live = await this.#cluster.deployment(objectNames.workload(release.spec.app, service.name));
      const since = /^v(\d+)$/.exec(
        live?.spec?.template.metadata?.annotations?.[RELEASE_ANNOTATION] ?? '',
      )?.[1];
      if (since === undefined) continue;
      // Rendered with the release of the running pods: the same digest means the same template, so they stay.
      const kept = { ...placements, [service.name]: { release: Number(since), replicas } };
      const candidate = render(kept).find(
        (o) => o.kind === 'Deployment' && o.metadata.labels?.[LABEL_COMPONENT] === service.name,
      );
      if (candidate && live?.metadata?.annotations?.[TEMPLATE_ANNOTATION] === podTemplateHash(candidate)) {
        placements[service.name] = kept[service.name]!;
      }
    }
    const objects = render(placements);
    for (const object of objects) {
      if (object.kind === 'Deployment')
        object.metadata.annotations![TEMPLATE_ANNOTATION] = podTemplateHash(object);
    }
    validateManifests(objects);
    return objects;
  }

  /**
   * Applies `next` and watches its rollout. A failed rollout is rolled back to `previous` (when given and
   * `autoRollback` is on for the failing service), whose rollout is awaited too. Objects of the app that `next`
   * no longer names are pruned after it succeeds.
   */
  async deploy(next: KubeRelease, previous?: KubeRelease): Promise<KubeDeployOutcome> {
    const objects = await this.manifests(next);
    // The server's own checks (admission, defaults, immutable fields) on the whole set before any of it is stored.
    await this.#cluster.apply(objects, { dryRun: true });
    await this.#cluster.apply(objects);
    const result = await this.watch(next.spec);
    if (result.state !== 'failed') {
      const planned = await this.#cluster.prune(next.spec.app, objects, { dryRun: true });
      const pruned =
        planned.objects.length === 0
          ? planned
          : await this.#cluster.prune(next.spec.app, objects, { dryRun: false });
      return {
        outcome: 'succeeded',
        release: next.release,
        services: Object.keys(next.spec.services),
        pruned,
      };
    }
    const reason = await this.#reason(result);
    const autoRollback = next.spec.services[result.service]?.deploy.autoRollback ?? true;
    if (previous === undefined || !autoRollback) return { outcome: 'failed', release: next.release, reason };
    this.#onProgress(`rolling back to v${previous.release}: ${reason.split('\n')[0]}`);
    await this.#cluster.apply(await this.manifests(previous));
    const restored = await this.watch(previous.spec);
    if (restored.state === 'failed') {
      return {
        outcome: 'failed',
        release: next.release,
        reason: `${reason}\nthe rollback to v${previous.release} failed too: ${await this.#reason(restored)}`,
      };
    }
    return { outcome: 'rolled_back', release: next.release, restored: previous.release, reason };
  }

  /**
   * Follows every Deployment of `spec` until all are complete or one fails, reporting progress as it changes.
   * Berth's own deadline (the longest progress deadline, plus a margin) ends a watch on a cluster whose controller
   * never reports: the rollout then counts as failed.
   */
  async watch(spec: AppSpec): Promise<RolloutStatus> {
    const services = Object.values(spec.services);
    const longest = Math.max(
      ...services.map((s) => s.deploy.progressDeadlineMs ?? DEFAULT_PROGRESS_DEADLINE_MS),
    );
    const deadline = this.#clock.now() + longest + 30_000;
    const shown = new Map<string, string>();
    for (;;) {
      const statuses: RolloutStatus[] = [];
      for (const service of services) {
        const name = objectNames.workload(spec.app, service.name);
        const deployment = await this.#cluster.deployment(name);
        if (deployment === undefined)
          throw new BerthError('not_found', `Deployment ${name} is gone from the cluster`);
        const selector = `${LABEL_NAME}=${spec.app},${LABEL_COMPONENT}=${service.name}`;
        const [replicaSets, pods] = await Promise.all([
          this.#cluster.replicaSets(selector),
          this.#cluster.pods(selector),
        ]);
        const applied = appliedAt(deployment, FIELD_MANAGER);
        const status = rolloutStatus({
          service: service.name,
          deployment,
          ...(applied === undefined ? {} : { appliedAt: applied }),
          replicaSets,
          pods,
          threshold: circuitBreakerThreshold(deployment.spec?.replicas ?? service.instances),
        });
        if (shown.get(service.name) !== status.text) {
          shown.set(service.name, status.text);
          this.#onProgress(status.text);
        }
        statuses.push(status);
      }
      const failed = statuses.find((s) => s.state === 'failed');
      if (failed) return failed;
      if (statuses.every((s) => s.state === 'complete')) return statuses[0]!;
      if (this.#clock.now() > deadline) {
        const stuck = statuses.find((s) => s.state === 'progressing')!;
        return {
          state: 'failed',
          service: stuck.service,
          cause: 'progress-deadline',
          failures: 0,
          threshold: 0,
          text: `${stuck.service}: the cluster reported no end of the rollout within ${Math.round((longest + 30_000) / 1000)}s`,
        };
      }
      await this.#clock.sleep(this.#pollMs, { signal: this.#signal });
      if (this.#signal?.aborted) {
        throw new BerthError('runtime_failure', 'the control plane stopped while it watched the rollout');
      }
    }
  }

  /** The words of a failed rollout, with the failing pod's last log lines when the cluster can give them. */
  async #reason(status: RolloutStatus): Promise<string> {
    if (status.state !== 'failed') return '';
    const last = status.last;
    const output =
      last === undefined
        ? []
        : ((await this.#cluster.podLog(last.pod, LOG_LINES_IN_REASON, last.crashed)) ?? []);
    if (status.cause === 'circuit-breaker' && last !== undefined) {
      return circuitBreakerReason({
        service: status.service,
        failures: status.failures,
        threshold: status.threshold,
        last: last.pod,
        failure: last.failure,
        output,
      });
    }
    const lines = output.map((line) => `  ${line}`).join('\n');
    return `${status.text}${last ? `; last: ${last.pod} ${last.failure}` : ''}${lines ? `\nits last output:\n${lines}` : ''}`;
  }
}
