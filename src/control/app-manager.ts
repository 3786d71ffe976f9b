// What users ask of apps: apply a spec, scale a service, take an app down, and see whether it has converged.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { ApplyResult, AppStatus, ReleaseRecord, ServiceStatus } from '../domain/api-types.js';
import {
  type CanaryProgress,
  circuitBreakerThreshold,
  type Deployment,
  type DeploymentKind,
} from '../domain/deployment.js';
import { BerthError, type Issue } from '../domain/errors.js';
import type { Instance } from '../domain/instance.js';
import type { AppSpec, ServiceSpec } from '../domain/spec.js';
import { type Clock, systemClock } from '../lib/clock.js';
import { formatDuration } from '../lib/duration.js';
import type { EventStore } from './store/event-store.js';
import type { ServiceRecord, Store } from './store/store.js';

export interface ReleaseOptions {
  artifactDigest?: string;
  kind?: DeploymentKind;
  description?: string;
}

/** Where artifacts are pruned, and how many releases of each app keep theirs. */
export interface ArtifactRetention {
  prune(keep: ReadonlySet<string>): string[];
  retainReleases: number;
  /** Release images (by digest) no kept release needs are deleted from the registry and this machine. */
  pruneImages?(keep: ReadonlySet<string>): Promise<string[]>;
}

/** What a release needs of the secrets module: that named secrets exist, their versions, the app's config vars. */
export interface ReleaseSecrets {
  /** Throws `not_found` naming the missing ones. */
  resolve(app: string, names: readonly string[]): Record<string, string>;
  versions(app: string, names: readonly string[]): Record<string, number>;
  configVars(app: string): Record<string, string>;
}

/** What a release needs of the domains module: that no host of the spec belongs to another app. */
export interface ReleaseHosts {
  /** Throws (`conflict` naming the owner, `invalid_spec`) for a host the app may not have. */
  checkSpec(spec: AppSpec): void;
}

export class AppManager {
  readonly #store: Store;
  readonly #events: EventStore;
  readonly #changed: () => void;
  #secrets: ReleaseSecrets | undefined;
  #hosts: ReleaseHosts | undefined;
  readonly #artifacts: ArtifactRetention | undefined;
  readonly #clock: Clock;

  /** `changed` is called after every change of desired state, to wake the reconciler. */
  constructor(
    store: Store,
    changed: () => void,
    options: { artifacts?: ArtifactRetention; clock?: Clock } = {},
  ) {
    this.#store = store;
    this.#events = store.events;
    this.#changed = changed;
    this.#artifacts = options.artifacts;
    this.#clock = options.clock ?? systemClock;
  }

  /** Makes secret versions and config vars part of each service's config hash, and refuses missing secrets. */
  useSecrets(secrets: ReleaseSecrets): void {
    this.#secrets = secrets;
  }

  /** Refuses a spec with a host another app owns, before anything is stored or stopped. */
  useHosts(hosts: ReleaseHosts): void {
    this.#hosts = hosts;
  }

  /** Refuses a spec naming a secret the app does not have, before anything is stored or stopped. */
  #checkSecrets(spec: AppSpec): void {
    if (!this.#secrets) return;
    const issues: Issue[] = [];
    const missing = new Set<string>();
    for (const [name, service] of Object.entries(spec.services)) {
      const known = this.#secrets.versions(spec.app, service.secrets);
      for (const secret of service.secrets) {
        if (known[secret] !== 0) continue;
        missing.add(secret);
        issues.push({ path: `services.${name}.secrets`, message: `no secret ${secret}` });
      }
    }
    if (missing.size > 0) {
      const names = [...missing];
      throw new BerthError(
        'invalid_spec',
        `${spec.app} has no secret ${names.join(', ')}; set it first with \`berth secrets set ${spec.app} ${names[0]}=-\``,
        { issues },
      );
    }
  }

  /**
   * A secret or config var changed: the current release again, as a new release, so that the services whose
   * environment changed roll through the health-gated deploy path. Null when no service is affected.
   */
  secretsChanged(appName: string, what: string, actor: string): ApplyResult | null {
    const app = this.#store.getApp(appName);
    const release = app && this.#store.getRelease(appName, app.currentRelease);
    if (!release) return null;
    const result = this.apply(release.spec, release.sourceDir, actor, {
      artifactDigest: release.artifactDigest ?? undefined,
      description: what,
    });
    return result.created ? result : null;
  }

  /** Services whose spec and source are unchanged but whose secrets or config vars changed. */
  #environmentChanges(
    spec: AppSpec,
    sourceDir: string,
    services: readonly ServiceRecord[],
    changes: readonly ReleaseChange[],
  ): ReleaseChange[] {
    if (!this.#secrets) return [];
    const found: ReleaseChange[] = [];
    for (const [name, service] of Object.entries(spec.services)) {
      const running = services.find((s) => s.name === name);
      if (!running || running.sourceDir !== sourceDir || changes.some((c) => c.service === name)) continue;
      if (JSON.stringify(running.spec) !== JSON.stringify(service)) continue;
      // Same spec and source: a different hash can only come from secret versions or config vars.
      if (configHashOf(service, sourceDir, this.#hashInputs(spec.app, service)) !== running.configHash)
        found.push({ kind: 'environment', service: name });
    }
    return found;
  }

  /** The inputs of a service's config hash that live outside its spec: secret versions and config vars. */
  #hashInputs(app: string, service: ServiceSpec): ConfigHashInputs {
    if (!this.#secrets) return {};
    return {
      secretVersions: this.#secrets.versions(app, service.secrets),
      config: this.#secrets.configVars(app),
    };
  }

  /**
   * Makes `spec` (running from `sourceDir`, the release's artifact) the app's desired state, in one transaction:
   * a new release when anything changed, and a deployment for the services whose processes must be replaced.
   * Refused while another deployment of the app is in progress.
   */
  apply(spec: AppSpec, sourceDir: string, actor: string, options: ReleaseOptions = {}): ApplyResult {
    const unbuilt = Object.values(spec.services).find(
      (s) => s.dockerfile !== undefined && s.image === undefined,
    );
    if (unbuilt) throw new BerthError('internal', `${spec.app}/${unbuilt.name}: its image was not built`);
    const eventsAfter = this.#events.lastId();
    const result = this.#store.transaction((): ApplyResult => {
      this.assertNotDeploying(spec.app);
      this.#hosts?.checkSpec(spec);
      this.#checkSecrets(spec);
      const app = this.#store.getApp(spec.app);
      const previous = app ? this.#store.getRelease(spec.app, app.currentRelease) : undefined;
      const services = this.#store.listServices(spec.app);
      const found = releaseChanges(previous, spec, options.artifactDigest ?? null, services);
      found.push(...this.#environmentChanges(spec, sourceDir, services, found));
      const changes = found.map(describeChange);
      if (app && changes.length === 0 && options.kind !== 'rollback') {
        return {
          app: spec.app,
          release: app.currentRelease,
          created: false,
          description: previous?.description ?? '',
          changes,
          eventsAfter,
          deployment: null,
        };
      }
      const description = options.description ?? (changes.join('; ') || 'first release');
      // Not changes themselves (they make no release), but what a deploy keeps that the spec file does not say.
      changes.push(...keptCounts(spec, services).map(describeChange));
      const release = this.#store.createRelease(spec, sourceDir, description, options.artifactDigest ?? null);
      const replaced = this.#putServices(spec, release, sourceDir, services);
      this.#events.record({
        actor,
        kind: 'release.created',
        app: spec.app,
        message: `${spec.app} v${release}: ${description}`,
        data: { release, changes, artifact: options.artifactDigest ?? null },
      });
      let deployment: Deployment | null = null;
      if (replaced.length > 0) {
        const canary = options.kind === 'rollback' ? null : canaryOf(spec, replaced, services);
        deployment = this.#store.createDeployment({
          strategy: canary === null ? 'rolling' : 'canary',
          canary,
          app: spec.app,
          kind: options.kind ?? 'deploy',
          fromRelease: previous?.version ?? null,
          toRelease: release,
          services: replaced.map((name) => ({
            name,
            threshold: circuitBreakerThreshold(spec.services[name]!.instances),
            failures: 0,
          })),
          startedAt: this.#clock.now(),
        });
        this.#events.record({
          actor,
          kind: 'deployment.started',
          app: spec.app,
          message:
            `deploying ${spec.app} v${release}${previous ? ` over v${previous.version}` : ''}: ${replaced.join(', ')}` +
            (canary === null
              ? ''
              : ` (canary: ${canary.services.join(', ')} at ${canary.steps.join(', ')} % every ${formatDuration(canary.intervalMs)})`),
          data: { deployment: deployment.id, release, from: previous?.version ?? null, services: replaced },
        });
      }
      return {
        app: spec.app,
        release,
        created: true,
        description,
        changes,
        eventsAfter,
        deployment: deployment?.id ?? null,
      };
    });
    if (result.created) this.#changed();
    return result;
  }

  /** Throws `conflict` while a deployment of the app is in progress. */
  assertNotDeploying(appName: string): void {
    const active = this.#store.activeDeployment(appName);
    if (active) {
      throw new BerthError(
        'conflict',
        `${appName} is being deployed (v${active.toRelease}, deployment ${active.id}); a second deploy waits until it succeeds or rolls back`,
      );
    }
  }

  /**
   * Ends a deployment as failed. With `rollBack` (the service's autoRollback) the previous release becomes the
   * desired state again, so the reconciler keeps (or brings back) its instances and stops the new ones.
   */
  failDeployment(deployment: Deployment, reason: string, rollBack: boolean): void {
    this.#store.transaction(() => {
      const from =
        deployment.fromRelease === null
          ? undefined
          : this.#store.getRelease(deployment.app, deployment.fromRelease);
      const canRollBack = rollBack && from !== undefined;
      if (canRollBack) {
        this.#putServices(from.spec, from.version, from.sourceDir, this.#store.listServices(deployment.app));
        this.#store.setCurrentRelease(deployment.app, from.version);
      }
      this.#store.transitionDeployment(deployment.id, canRollBack ? 'rolled_back' : 'failed', reason, () => ({
        actor: 'deployer',
        kind: canRollBack ? 'deployment.rolled_back' : 'deployment.failed',
        app: deployment.app,
        message: canRollBack
          ? `v${deployment.toRelease} rolled back to v${from.version}: ${reason}`
          : `v${deployment.toRelease} failed${rollBack ? ' (no earlier release to roll back to)' : ' (autoRollback is off)'}: ${reason}`,
        data: {
          deployment: deployment.id,
          release: deployment.toRelease,
          rolledBackTo: canRollBack ? from.version : null,
          reason,
        },
      }));
    });
    this.#changed();
  }

  /**
   * The release `berth rollback` deploys again: `version`, or the newest release before the current one that
   * went live (its deployment succeeded, or it needed none); never one that failed or was rolled back itself.
   */
  rollbackTarget(appName: string, version?: number): ReleaseRecord {
    const app = this.#requireApp(appName);
    let target: ReleaseRecord | undefined;
    if (version === undefined) {
      const deployments = this.#store.listDeployments({ app: appName });
      const wentLive = (release: ReleaseRecord): boolean => {
        const last = deployments.filter((d) => d.toRelease === release.version).at(-1);
        return last === undefined || last.state === 'succeeded';
      };
      target = this.#store
        .listReleases(appName)
        .filter((r) => r.version < app.currentRelease && wentLive(r))
        .at(-1);
    } else {
      target = this.#store.getRelease(appName, version);
    }
    if (!target) {
      throw new BerthError(
        'not_found',
        version === undefined
          ? `${appName} has no release before v${app.currentRelease} that went live; name one: berth rollback ${appName} vN`
          : `${appName} has no release v${version}`,
      );
    }
    if (!existsSync(target.sourceDir)) {
      throw new BerthError(
        'not_found',
        `the artifact of ${appName} v${target.version} was pruned; deploy its source again`,
      );
    }
    return target;
  }

  /**
   * Deletes artifacts (and release images) no service uses, keeping those of the last `retainReleases` releases of
   * every app: a rollback to one of those finds its artifact and pulls its image.
   */
  pruneArtifacts(appName: string): void {
    if (!this.#artifacts) return;
    const keep = new Set<string>();
    const images = new Set<string>();
    const keepRelease = (release: ReleaseRecord | undefined): void => {
      if (release?.artifactDigest) keep.add(release.artifactDigest);
      for (const service of Object.values(release?.spec.services ?? {}))
        if (service.image !== undefined) images.add(service.image);
    };
    for (const app of this.#store.listApps()) {
      for (const release of this.#store.listReleases(app.name).slice(-this.#artifacts.retainReleases))
        keepRelease(release);
      for (const service of this.#store.listServices(app.name)) {
        keepRelease(this.#store.getRelease(app.name, service.release));
        if (service.spec.image !== undefined) images.add(service.spec.image);
      }
    }
    this.#artifacts
      .pruneImages?.(images)
      .then((removed) => {
        if (removed.length === 0) return;
        this.#events.record({
          actor: 'deployer',
          kind: 'images.pruned',
          app: appName,
          message: `pruned ${removed.length} release images no release in use or among the last ${this.#artifacts?.retainReleases} needs`,
          data: { removed },
        });
      })
      .catch((error: unknown) => {
        this.#events.record({
          actor: 'deployer',
          kind: 'images.prune_failed',
          app: appName,
          message: `could not prune release images: ${(error as Error).message}`,
        });
      });
    const removed = this.#artifacts.prune(keep);
    if (removed.length > 0) {
      this.#events.record({
        actor: 'deployer',
        kind: 'artifacts.pruned',
        app: appName,
        message: `pruned ${removed.length} artifacts no release in use or among the last ${this.#artifacts.retainReleases} needs`,
        data: { removed },
      });
    }
  }

  /** Writes each service of `spec` as desired; returns the services whose processes must be replaced. */
  #putServices(
    spec: AppSpec,
    release: number,
    sourceDir: string,
    existing: readonly ServiceRecord[],
  ): string[] {
    const replaced: string[] = [];
    for (const [name, service] of Object.entries(spec.services)) {
      const before = existing.find((s) => s.name === name);
      const configHash = configHashOf(service, sourceDir, this.#hashInputs(spec.app, service));
      if (before?.configHash !== configHash) replaced.push(name);
      this.#store.putService({
        app: spec.app,
        name,
        release,
        desiredCount: desiredCountOf(service, before),
        configHash,
        spec: service,
        sourceDir,
        failures: before?.configHash === configHash ? before.failures : 0,
        nextStartAt: before?.configHash === configHash ? before.nextStartAt : 0,
      });
    }
    for (const service of existing) {
      if (!(service.name in spec.services)) this.#store.deleteService(spec.app, service.name);
    }
    return replaced;
  }

  /** Sets desired counts, e.g. `{ web: 3 }`; every name must be a service of the app, or nothing changes. */
  scale(appName: string, counts: Record<string, number>, actor: string): ServiceStatus[] {
    this.#requireApp(appName);
    this.#store.transaction(() => {
      const services = this.#store.listServices(appName);
      const unknown = Object.keys(counts).filter((name) => !services.some((s) => s.name === name));
      if (unknown.length > 0) {
        throw new BerthError('not_found', `${appName} has no service ${unknown.join(', ')}`, {
          issues: unknown.map((name) => ({
            path: name,
            message: `no such service; services: ${services.map((s) => s.name).join(', ')}`,
          })),
        });
      }
      for (const [name, count] of Object.entries(counts)) {
        const service = services.find((s) => s.name === name)!;
        if (service.desiredCount === count) continue;
        this.#store.setDesiredCount(appName, name, count);
        // A deliberate scale is a fresh start for the crash-loop backoff.
        this.#store.setRestartBackoff(appName, name, 0, 0);
        this.#events.record({
          actor,
          kind: 'service.scaled',
          app: appName,
          service: name,
          message: `${appName}/${name} scaled ${service.desiredCount} → ${count}`,
          data: { from: service.desiredCount, to: count },
        });
      }
    });
    this.#changed();
    return this.status(appName).services;
  }

  /**
   * Restarts a service's instances, rolling as a deploy does (new ones healthy before old ones drain, within
   * `maxSurge`/`minHealthy`): the same release, fresh processes. Refused while the app is being deployed.
   */
  restart(appName: string, serviceName: string, actor: string): ServiceStatus {
    this.#requireApp(appName);
    this.#store.transaction(() => {
      this.assertNotDeploying(appName);
      const services = this.#store.listServices(appName);
      if (!services.some((s) => s.name === serviceName)) {
        throw new BerthError('not_found', `${appName} has no service ${serviceName}`, {
          issues: [
            {
              path: serviceName,
              message: `no such service; services: ${services.map((s) => s.name).join(', ')}`,
            },
          ],
        });
      }
      const count = this.#store.markForRestart(appName, serviceName);
      this.#events.record({
        actor,
        kind: 'service.restarting',
        app: appName,
        service: serviceName,
        message: `${appName}/${serviceName} restarting ${count} instance${count === 1 ? '' : 's'}, rolling: replacements healthy before the old ones drain`,
        data: { instances: count },
      });
    });
    this.#changed();
    return this.status(appName).services.find((s) => s.name === serviceName)!;
  }

  /** Scales every service of the app to zero; `apply` brings it back. */
  down(appName: string, actor: string): void {
    this.#requireApp(appName);
    const counts = Object.fromEntries(this.#store.listServices(appName).map((s) => [s.name, 0]));
    this.scale(appName, counts, actor);
  }

  status(appName: string): AppStatus {
    const app = this.#requireApp(appName);
    const live = this.#store.listInstances({ app: appName, live: true });
    const services = this.#store.listServices(appName).map((service) => serviceStatus(service, live));
    return {
      app: appName,
      release: app.currentRelease,
      services,
      converged: services.every((s) => s.converged),
    };
  }

  #requireApp(name: string) {
    const app = this.#store.getApp(name);
    if (!app) throw new BerthError('not_found', `no app named ${name}; apply a berth.yaml first`);
    return app;
  }
}

function serviceStatus(service: ServiceRecord, live: Instance[]): ServiceStatus {
  const own = live.filter((i) => i.service === service.name);
  const current = own.filter((i) => i.configHash === service.configHash && i.state !== 'draining');
  const count = (state: Instance['state']): number => current.filter((i) => i.state === state).length;
  const outdated = own.filter((i) => i.configHash !== service.configHash && i.state !== 'draining').length;
  const draining = own.filter((i) => i.state === 'draining').length;
  const healthy = count('healthy');
  return {
    name: service.name,
    release: service.release,
    desired: service.desiredCount,
    healthy,
    starting: count('starting'),
    unhealthy: count('unhealthy'),
    outdated,
    draining,
    converged:
      healthy === service.desiredCount && current.length === healthy && outdated === 0 && draining === 0,
  };
}

/** What the environment of a service's instances takes from outside its spec. */
export interface ConfigHashInputs {
  /** Current version of each secret the service names. */
  secretVersions?: Record<string, number>;
  /** The app's config vars (`berth config set`). */
  config?: Record<string, string>;
}

/**
 * Everything that, changed, needs new processes: the command, the environment (with secret versions, never
 * values, and config vars), where it runs, and the image of a container.
 */
export function configHashOf(service: ServiceSpec, sourceDir: string, inputs: ConfigHashInputs = {}): string {
  const extra: ConfigHashInputs = {};
  // Left out when empty, so the hashes of apps without secrets or config stay what they were (no needless roll).
  if (inputs.secretVersions && Object.keys(inputs.secretVersions).length > 0)
    extra.secretVersions = inputs.secretVersions;
  if (inputs.config && Object.keys(inputs.config).length > 0) extra.config = inputs.config;
  const image = service.image === undefined ? {} : { image: service.image };
  return createHash('sha256')
    .update(JSON.stringify({ run: service.run, env: service.env, sourceDir, ...extra, ...image }))
    .digest('hex')
    .slice(0, 16);
}

/** One way a release differs from what runs: decided on as data, shown as a line by `describeChange`. */
export type ReleaseChange =
  | { kind: 'code'; service?: undefined; from: string | null; to: string | null }
  | { kind: 'added'; service: string; instances: number; run: string }
  | { kind: 'removed'; service: string }
  | { kind: 'command'; service: string; from: string; to: string }
  | { kind: 'image'; service: string; from: string | null; to: string | null }
  | { kind: 'env'; service: string; names: string[] }
  | { kind: 'instances'; service: string; from: number; to: number }
  | { kind: 'settings'; service: string }
  | { kind: 'environment'; service: string }
  | { kind: 'routes'; service?: undefined }
  | { kind: 'addons'; service?: undefined }
  /** Not a change (it makes no release): a count the release keeps from scaling although the spec says another. */
  | { kind: 'kept'; service: string; count: number; specified: number; by: 'autoscaler' | 'down' | 'scale' };

/** How `next` differs from what runs now. */
function releaseChanges(
  previous: ReleaseRecord | undefined,
  next: AppSpec,
  nextDigest: string | null,
  services: readonly ServiceRecord[],
): ReleaseChange[] {
  const changes: ReleaseChange[] = [];
  if (previous && previous.artifactDigest !== nextDigest) {
    changes.push({ kind: 'code', from: previous.artifactDigest, to: nextDigest });
  }
  for (const [name, spec] of Object.entries(next.services)) {
    const before = previous?.spec.services[name];
    const running = services.find((s) => s.name === name);
    if (!before) {
      changes.push({ kind: 'added', service: name, instances: spec.instances, run: spec.run });
      continue;
    }
    if (before.run !== spec.run)
      changes.push({ kind: 'command', service: name, from: before.run, to: spec.run });
    if (before.image !== spec.image)
      changes.push({ kind: 'image', service: name, from: before.image ?? null, to: spec.image ?? null });
    const envNames = new Set([...Object.keys(before.env), ...Object.keys(spec.env)]);
    const changedEnv = [...envNames].filter((key) => before.env[key] !== spec.env[key]).sort();
    if (changedEnv.length > 0) changes.push({ kind: 'env', service: name, names: changedEnv });
    const count = desiredCountOf(spec, running);
    if (running !== undefined && running.spec.instances !== spec.instances && running.desiredCount !== count)
      changes.push({ kind: 'instances', service: name, from: running.desiredCount, to: count });
    const { run: _r, env: _e, instances: _i, image: _m, ...restBefore } = before;
    const { run: _r2, env: _e2, instances: _i2, image: _m2, ...restNext } = spec;
    if (JSON.stringify(restBefore) !== JSON.stringify(restNext))
      changes.push({ kind: 'settings', service: name });
  }
  for (const name of Object.keys(previous?.spec.services ?? {})) {
    if (!(name in next.services)) changes.push({ kind: 'removed', service: name });
  }
  if (previous && JSON.stringify(previous.spec.routes) !== JSON.stringify(next.routes))
    changes.push({ kind: 'routes' });
  if (previous && JSON.stringify(previous.spec.addons ?? {}) !== JSON.stringify(next.addons ?? {}))
    changes.push({ kind: 'addons' });
  return changes;
}

/** The line `berth deploy` shows for a change, e.g. `~ web: instances 2 → 3`. */
export function describeChange(change: ReleaseChange): string {
  switch (change.kind) {
    case 'code':
      return `~ code: ${shortDigest(change.from)} → ${shortDigest(change.to)}`;
    case 'added':
      return `+ ${change.service}: ${change.instances} × ${change.run === '' ? "the image's command" : `\`${change.run}\``}`;
    case 'removed':
      return `- ${change.service}`;
    case 'command':
      return `~ ${change.service}: command \`${change.from}\` → \`${change.to}\``;
    case 'image':
      return `~ ${change.service}: image ${shortImage(change.from)} → ${shortImage(change.to)}`;
    case 'env':
      return `~ ${change.service}: env ${change.names.join(', ')}`;
    case 'instances':
      return `~ ${change.service}: instances ${change.from} → ${change.to}`;
    case 'settings':
      return `~ ${change.service}: settings`;
    case 'environment':
      return `~ ${change.service}: secrets or config vars`;
    case 'routes':
      return '~ routes';
    case 'addons':
      return '~ addons';
    case 'kept': {
      const why =
        change.by === 'autoscaler'
          ? 'autoscaled'
          : change.by === 'down'
            ? 'stopped by berth down or scale'
            : 'set by berth scale';
      return `= ${change.service}: keeps ${change.count} instance${change.count === 1 ? '' : 's'} (${why}; berth.yaml says ${change.specified}, change it there to reset)`;
    }
  }
}

/** `…/shop/web@sha256:0123456789ab` for a digest reference, the reference itself otherwise. */
export function shortImage(image: string | null): string {
  if (image === null) return 'none (a process)';
  const at = image.indexOf('@sha256:');
  if (at === -1) return image;
  const repository = image.slice(0, at).split('/').slice(-2).join('/');
  return `${repository}@${image.slice(at + 1, at + 1 + 'sha256:'.length + 12)}`;
}

function shortDigest(digest: string | null): string {
  return digest === null ? 'source in place' : digest.slice(0, 'sha256:'.length + 12);
}

/**
 * How many instances a service runs after a new release: the count it runs now (set by `berth scale` or the
 * autoscaler, 0 after `berth down`), as Heroku keeps a formation and ECS a desired count across deployments,
 * unless the spec's `instances` changed, which is a deliberate new count. Autoscaled services stay within the new
 * bounds (but 0, a paused service, stays 0).
 */
export function desiredCountOf(service: ServiceSpec, before: ServiceRecord | undefined): number {
  if (!before) return service.instances;
  const specChanged = before.spec.instances !== service.instances;
  const count = specChanged ? service.instances : before.desiredCount;
  const policy = service.autoscale;
  if (!policy || (count === 0 && !specChanged)) return count;
  return Math.min(policy.max, Math.max(policy.min, count));
}

/** The services whose count a release keeps from scaling (`= web: keeps 5 instances ...`). */
function keptCounts(spec: AppSpec, services: readonly ServiceRecord[]): ReleaseChange[] {
  const kept: ReleaseChange[] = [];
  for (const [name, service] of Object.entries(spec.services)) {
    const running = services.find((s) => s.name === name);
    if (running === undefined || running.spec.instances !== service.instances) continue;
    const count = desiredCountOf(service, running);
    if (count === service.instances) continue;
    const by = service.autoscale ? 'autoscaler' : count === 0 ? 'down' : 'scale';
    kept.push({ kind: 'kept', service: name, count, specified: service.instances, by });
  }
  return kept;
}

/**
 * The canary of a deployment: the replaced services whose spec says `strategy: canary` and that already run a
 * release to compare with (a first deploy has no old side). They all have the same steps, interval and analysis
 * (`canaryMismatches` refuses a spec where they differ), so the first's are the deployment's; null when none
 * qualifies (a rolling deploy).
 */
function canaryOf(
  spec: AppSpec,
  replaced: readonly string[],
  before: readonly ServiceRecord[],
): CanaryProgress | null {
  const names = replaced.filter(
    (name) =>
      spec.services[name]?.deploy.strategy === 'canary' &&
      before.some((s) => s.name === name && s.desiredCount > 0),
  );
  const first = names[0] === undefined ? undefined : spec.services[names[0]]!.deploy;
  if (first === undefined) return null;
  return {
    services: names,
    steps: [...first.steps],
    intervalMs: first.intervalMs,
    analysis: { ...first.analysis },
    step: 0,
    windowStartedAt: null,
    baseline: {},
    holds: 0,
    last: null,
  };
}
