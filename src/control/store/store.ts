// The core state: apps, releases, services, instances and deployments, with the one way to change a state.
import { z } from 'zod';
import type { ReleaseRecord } from '../../domain/api-types.js';
import {
  type CanaryProgress,
  DEPLOYMENT_STATES,
  type Deployment,
  type DeploymentService,
  type DeploymentState,
} from '../../domain/deployment.js';
import { BerthError } from '../../domain/errors.js';
import type { BerthEvent } from '../../domain/event.js';
import { INSTANCE_STATES, type Instance, type InstanceState, LIVE_STATES } from '../../domain/instance.js';
import type { AppSpec, ServiceSpec } from '../../domain/spec.js';
import type { TrafficRamp, TrafficSplit } from '../../domain/traffic.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import { Notifier } from '../../lib/notifier.js';
import type { Database, Migration } from './database.js';
import type { EventInput, EventStore } from './event-store.js';

export interface AppRecord {
  name: string;
  currentRelease: number;
  createdAt: number;
  updatedAt: number;
}

/** A service as it should run: its release's spec, how many copies, and its crash-restart backoff state. */
export interface ServiceRecord {
  app: string;
  name: string;
  release: number;
  desiredCount: number;
  configHash: string;
  spec: ServiceSpec;
  sourceDir: string;
  /** Consecutive failures (crashes, failed starts) since it last ran well. */
  failures: number;
  /** No new instance is started before this time (epoch ms): the crash-loop backoff. */
  nextStartAt: number;
}

/** Facts about an instance that a transition may record along with its new state. */
export type InstanceFacts = Partial<Pick<Instance, 'healthyAt' | 'endedAt' | 'exitCode' | 'exitSignal'>>;

/** The event a transition writes, built from the record as it was before the change. */
export type TransitionEvent<T> = (before: T) => EventInput;

export const STORE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'apps, releases, services, instances',
    sql: `
      CREATE TABLE apps (
        name TEXT PRIMARY KEY,
        current_release INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE TABLE releases (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        spec_json TEXT NOT NULL,
        source_dir TEXT NOT NULL,
        description TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (app, version)
      );
      CREATE TABLE services (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        release INTEGER NOT NULL,
        desired_count INTEGER NOT NULL,
        config_hash TEXT NOT NULL,
        spec_json TEXT NOT NULL,
        source_dir TEXT NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        next_start_at INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (app, name)
      );
      CREATE TABLE instances (
        id TEXT PRIMARY KEY,
        app TEXT NOT NULL,
        service TEXT NOT NULL,
        release INTEGER NOT NULL,
        config_hash TEXT NOT NULL,
        state TEXT NOT NULL,
        pid INTEGER,
        process_start INTEGER,
        port INTEGER,
        created_at INTEGER NOT NULL,
        healthy_at INTEGER,
        ended_at INTEGER,
        exit_code INTEGER,
        exit_signal TEXT,
        reason TEXT,
        stdout_path TEXT NOT NULL,
        stderr_path TEXT NOT NULL
      );
      CREATE INDEX instances_by_service ON instances (app, service, state);
    `,
  },
  {
    version: 2,
    name: 'instance output in one JSON-lines file',
    sql: `
      ALTER TABLE instances ADD COLUMN log_path TEXT NOT NULL DEFAULT '';
      UPDATE instances SET log_path = substr(stdout_path, 1, length(stdout_path) - length('.out.log')) || '.log'
        WHERE stdout_path LIKE '%.out.log';
      ALTER TABLE instances DROP COLUMN stdout_path;
      ALTER TABLE instances DROP COLUMN stderr_path;
    `,
  },
  {
    version: 3,
    name: 'release artifacts and deployments',
    sql: `
      ALTER TABLE releases ADD COLUMN artifact_digest TEXT;
      CREATE TABLE deployments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL,
        kind TEXT NOT NULL,
        from_release INTEGER,
        to_release INTEGER NOT NULL,
        state TEXT NOT NULL,
        services_json TEXT NOT NULL,
        reason TEXT,
        started_at INTEGER NOT NULL,
        ended_at INTEGER
      );
      CREATE INDEX deployments_by_app ON deployments (app, id);
    `,
  },
  {
    version: 4,
    name: 'the runtime of each instance (process or docker)',
    sql: `ALTER TABLE instances ADD COLUMN runtime TEXT NOT NULL DEFAULT 'process';`,
  },
  {
    version: 5,
    name: 'canary deployments and the target group of each instance',
    sql: `
      ALTER TABLE deployments ADD COLUMN strategy TEXT NOT NULL DEFAULT 'rolling';
      ALTER TABLE deployments ADD COLUMN canary_json TEXT;
      ALTER TABLE instances ADD COLUMN target_group TEXT;
    `,
  },
  {
    version: 6,
    name: 'indexes for every hot query, so history does not slow them',
    // The live instances are found through a partial index that holds only them, however many ended rows there
    // are; its WHERE is LIVE_INSTANCES (a query must spell it the same way to use it). An app's newest instances,
    // the ones ended since a moment and the deployments in progress each have their own.
    sql: `
      DROP INDEX instances_by_service;
      CREATE INDEX instances_live ON instances (app, service, created_at DESC, id)
        WHERE state IN ('starting', 'healthy', 'unhealthy', 'draining');
      CREATE INDEX instances_newest ON instances (app, service, created_at DESC, id);
      CREATE INDEX instances_ended ON instances (ended_at) WHERE ended_at IS NOT NULL;
      CREATE INDEX deployments_by_state ON deployments (state, app, id);
    `,
  },
  {
    version: 7,
    name: 'traffic splits between services and external origins (berth traffic) and their ramps',
    sql: `
      CREATE TABLE traffic (
        app TEXT PRIMARY KEY,
        weights_json TEXT NOT NULL,
        ramp_json TEXT,
        updated_at INTEGER NOT NULL
      );
    `,
  },
];

/** The condition of the partial index `instances_live`, spelled as the index spells it. */
export const LIVE_INSTANCES = `state IN (${LIVE_STATES.map((s) => `'${s}'`).join(', ')})`;

/** How long ended instances are kept, and how many per service at most (`pruneEndedInstances`). */
export interface InstanceHistory {
  /** Ended longer ago than this: deleted (their log files go after the same time, `LogRetention`). */
  maxAgeMs: number;
  /** Per service, only the newest this many ended instances are kept (a crash loop makes one a minute). */
  maxPerService: number;
}

export const DEFAULT_INSTANCE_HISTORY: InstanceHistory = { maxAgeMs: 7 * 24 * 3_600_000, maxPerService: 200 };

const trafficRow = z.object({
  app: z.string(),
  weights_json: z.string(),
  ramp_json: z.string().nullable(),
  updated_at: z.number(),
});

function toTraffic(row: z.output<typeof trafficRow>): TrafficSplit {
  return {
    app: row.app,
    weights: JSON.parse(row.weights_json) as Record<string, number>,
    ramp: row.ramp_json === null ? null : (JSON.parse(row.ramp_json) as TrafficRamp),
    updatedAt: row.updated_at,
  };
}

const appRow = z.object({
  name: z.string(),
  current_release: z.number().int(),
  created_at: z.number(),
  updated_at: z.number(),
});

const releaseRow = z.object({
  app: z.string(),
  version: z.number().int(),
  spec_json: z.string(),
  source_dir: z.string(),
  artifact_digest: z.string().nullable(),
  description: z.string(),
  created_at: z.number(),
});

const serviceRow = z.object({
  app: z.string(),
  name: z.string(),
  release: z.number().int(),
  desired_count: z.number().int(),
  config_hash: z.string(),
  spec_json: z.string(),
  source_dir: z.string(),
  failures: z.number().int(),
  next_start_at: z.number(),
});

const instanceRow = z.object({
  id: z.string(),
  app: z.string(),
  service: z.string(),
  release: z.number().int(),
  config_hash: z.string(),
  state: z.enum(INSTANCE_STATES.states as [InstanceState, ...InstanceState[]]),
  pid: z.number().int().nullable(),
  process_start: z.number().int().nullable(),
  port: z.number().int().nullable(),
  created_at: z.number(),
  healthy_at: z.number().nullable(),
  ended_at: z.number().nullable(),
  exit_code: z.number().int().nullable(),
  exit_signal: z.string().nullable(),
  reason: z.string().nullable(),
  log_path: z.string(),
  runtime: z.enum(['process', 'docker']),
  target_group: z.string().nullable(),
});

const deploymentRow = z.object({
  id: z.number().int(),
  app: z.string(),
  kind: z.enum(['deploy', 'rollback']),
  from_release: z.number().int().nullable(),
  to_release: z.number().int(),
  state: z.enum(DEPLOYMENT_STATES.states as [DeploymentState, ...DeploymentState[]]),
  services_json: z.string(),
  reason: z.string().nullable(),
  started_at: z.number(),
  ended_at: z.number().nullable(),
  strategy: z.enum(['rolling', 'canary']),
  canary_json: z.string().nullable(),
});

const deploymentServices = z.array(
  z.object({ name: z.string(), threshold: z.number().int(), failures: z.number().int() }),
);

const count = z.object({ n: z.number().nullable() });

function toApp(row: z.output<typeof appRow>): AppRecord {
  return {
    name: row.name,
    currentRelease: row.current_release,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toRelease(row: z.output<typeof releaseRow>): ReleaseRecord {
  return {
    app: row.app,
    version: row.version,
    spec: JSON.parse(row.spec_json) as AppSpec,
    sourceDir: row.source_dir,
    artifactDigest: row.artifact_digest,
    description: row.description,
    createdAt: row.created_at,
  };
}

function toService(row: z.output<typeof serviceRow>): ServiceRecord {
  return {
    app: row.app,
    name: row.name,
    release: row.release,
    desiredCount: row.desired_count,
    configHash: row.config_hash,
    spec: JSON.parse(row.spec_json) as ServiceSpec,
    sourceDir: row.source_dir,
    failures: row.failures,
    nextStartAt: row.next_start_at,
  };
}

function toInstance(row: z.output<typeof instanceRow>): Instance {
  return {
    id: row.id,
    app: row.app,
    service: row.service,
    release: row.release,
    configHash: row.config_hash,
    state: row.state,
    pid: row.pid,
    processStart: row.process_start,
    port: row.port,
    createdAt: row.created_at,
    healthyAt: row.healthy_at,
    endedAt: row.ended_at,
    exitCode: row.exit_code,
    exitSignal: row.exit_signal,
    reason: row.reason,
    logPath: row.log_path,
    runtime: row.runtime,
    ...(row.target_group === null ? {} : { targetGroup: row.target_group }),
  };
}

function toDeployment(row: z.output<typeof deploymentRow>): Deployment {
  return {
    id: row.id,
    app: row.app,
    kind: row.kind,
    fromRelease: row.from_release,
    toRelease: row.to_release,
    state: row.state,
    services: deploymentServices.parse(JSON.parse(row.services_json)) as DeploymentService[],
    reason: row.reason,
    startedAt: row.started_at,
    endedAt: row.ended_at,
    strategy: row.strategy,
    canary: row.canary_json === null ? null : (JSON.parse(row.canary_json) as CanaryProgress),
  };
}

/** Freezes `value` and everything in it: a cached record shared by every reader can never be changed by one. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}

/**
 * The repository of the core tables. States change only through `transitionInstance` and
 * `transitionDeployment`: each refuses a jump its state machine does not allow and writes the state and its event
 * in one transaction.
 */
export class Store {
  /** The events table, written in the same transactions as the state changes they record. */
  readonly events: EventStore;
  /** Notified after a committed change of a deployment (followers wait on it instead of polling). */
  readonly deploymentsChanged = new Notifier();
  readonly #db: Database;
  readonly #clock: Clock;
  readonly #s: ReturnType<typeof statements>;
  #generation = 0;
  /** The services as last read (parsed specs), frozen; dropped by every write to them. */
  #services: readonly ServiceRecord[] | undefined;
  /** Releases never change once made: parsed once each, frozen. */
  readonly #releases = new Map<string, ReleaseRecord>();

  constructor(db: Database, events: EventStore, clock: Clock = systemClock) {
    db.migrate('store', STORE_MIGRATIONS);
    this.#db = db;
    this.events = events;
    this.#clock = clock;
    this.#s = statements(db);
  }

  /**
   * A number that changes with every write to the store's tables (apps, releases, services, instances,
   * deployments; not events): a reader that saw the same number has nothing new to read.
   */
  get generation(): number {
    return this.#generation;
  }

  #wrote(options: { services?: boolean } = {}): void {
    this.#generation++;
    if (options.services) this.#services = undefined;
  }

  /** Runs `fn` in one transaction: all of it lands or none of it does. */
  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn);
  }

  /**
   * A consistent copy of the whole database at `path`, taken while it is in use (SQLite's online backup API:
   * writes that land meanwhile are in the copy or not, never half).
   */
  backup(path: string): Promise<void> {
    return this.#db.backup(path);
  }

  /**
   * After a restore into another data directory: paths recorded under `from` (release artifacts, services'
   * sources, instance logs) are moved under `to`. Returns how many rows changed.
   */
  relocatePaths(from: string, to: string): number {
    if (from === to) return 0;
    const prefix = from.endsWith('/') ? from : `${from}/`;
    const target = to.endsWith('/') ? to : `${to}/`;
    this.#wrote({ services: true });
    this.#releases.clear();
    return this.transaction(() => {
      let changed = 0;
      for (const statement of this.#s.relocate) changed += statement.run({ prefix, target }).changes;
      return changed;
    });
  }

  // Apps and releases

  getApp(name: string): AppRecord | undefined {
    const row = this.#s.app.get(name);
    return row && toApp(row);
  }

  listApps(): AppRecord[] {
    return this.#s.apps.all().map(toApp);
  }

  /** Records a new numbered release of `spec.app` and makes it the app's current one. Returns its number. */
  createRelease(
    spec: AppSpec,
    sourceDir: string,
    description: string,
    artifactDigest: string | null = null,
  ): number {
    this.#wrote();
    return this.transaction(() => {
      const now = this.#clock.now();
      const app = spec.app;
      // Numbers only grow, even after the current release moved back to an older one (a rollback).
      const version = (this.#s.latestRelease.get(app)?.n ?? 0) + 1;
      if (this.getApp(app)) this.#s.setCurrentRelease.run(version, now, app);
      else this.#s.insertApp.run(app, version, now, now);
      this.#s.insertRelease.run(
        app,
        version,
        JSON.stringify(spec),
        sourceDir,
        description,
        now,
        artifactDigest,
      );
      return version;
    });
  }

  /** Points the app at another of its releases (after an automatic rollback). */
  setCurrentRelease(app: string, version: number): void {
    this.#wrote();
    this.#s.setCurrentRelease.run(version, this.#clock.now(), app);
  }

  /** A release (frozen: shared by every caller). */
  getRelease(app: string, version: number): ReleaseRecord | undefined {
    const key = `${app}\u0000${version}`;
    const known = this.#releases.get(key);
    if (known !== undefined) return known;
    const row = this.#s.release.get(app, version);
    if (row === undefined) return undefined;
    const release = deepFreeze(toRelease(row));
    // A release read inside a transaction may still be rolled back.
    if (!this.#db.inTransaction) this.#releases.set(key, release);
    return release;
  }

  listReleases(app: string): ReleaseRecord[] {
    return this.#s.releases.all(app).map(toRelease);
  }

  // Deployments

  /** A new deployment: `canary` when it carries canary progress, else `in_progress`. */
  createDeployment(deployment: Omit<Deployment, 'id' | 'state' | 'reason' | 'endedAt'>): Deployment {
    this.#wrote();
    const { lastInsertRowid } = this.#s.insertDeployment.run(
      deployment.app,
      deployment.kind,
      deployment.fromRelease,
      deployment.toRelease,
      deployment.canary === null ? 'in_progress' : 'canary',
      JSON.stringify(deployment.services),
      deployment.startedAt,
      deployment.strategy,
      deployment.canary === null ? null : JSON.stringify(deployment.canary),
    );
    this.#db.afterCommit(() => this.deploymentsChanged.notify());
    return this.getDeployment(lastInsertRowid)!;
  }

  getDeployment(id: number): Deployment | undefined {
    const row = this.#s.deployment.get(id);
    return row && toDeployment(row);
  }

  /** The app's deployment in progress, if any (there is at most one). */
  activeDeployment(app: string): Deployment | undefined {
    const row = this.#s.activeDeployment.get(app);
    return row && toDeployment(row);
  }

  /**
   * Deployments, oldest first: of one app, or those in an active state (`in_progress`, `canary`; each through an
   * index), or all of them.
   */
  listDeployments(filter?: { app: string } | { state: 'in_progress' | 'canary' }): Deployment[] {
    const rows =
      filter === undefined
        ? this.#s.allDeployments.all()
        : 'app' in filter
          ? this.#s.deploymentsOf.all(filter.app)
          : this.#s.deploymentsInState.all(filter.state);
    return rows.map(toDeployment);
  }

  /** Records a canary's progress (its step, window and last decision: data of the `canary` state). */
  setCanaryProgress(id: number, progress: CanaryProgress): void {
    // The step's weights are in the route table: a new generation makes the next sync build it again.
    this.#wrote();
    this.#s.setCanaryProgress.run(JSON.stringify(progress), id);
    this.#db.afterCommit(() => this.deploymentsChanged.notify());
  }

  /** The app's traffic split (`berth traffic`), if one was ever set. */
  getTraffic(app: string): TrafficSplit | undefined {
    const row = this.#s.traffic.get(app);
    return row === undefined ? undefined : toTraffic(row);
  }

  /** Every app's traffic split. */
  listTraffic(): TrafficSplit[] {
    return this.#s.allTraffic.all().map(toTraffic);
  }

  /** Sets an app's split (its weights and ramp); the next route table carries it. */
  setTraffic(app: string, weights: Record<string, number>, ramp: TrafficRamp | null): TrafficSplit {
    this.#wrote();
    const now = this.#clock.now();
    this.#s.putTraffic.run(app, JSON.stringify(weights), ramp === null ? null : JSON.stringify(ramp), now);
    return { app, weights, ramp, updatedAt: now };
  }

  /** Records the circuit breaker's counts of a deployment in progress (not a change of state). */
  setDeploymentServices(id: number, services: DeploymentService[]): void {
    this.#wrote();
    this.#s.setDeploymentServices.run(JSON.stringify(services), id);
  }

  /**
   * Ends a deployment: `to` must be a state the deployment may move to from the one it is in (refused
   * otherwise, with nothing written); the state, `reason`, the end time and `event` land in one transaction.
   */
  transitionDeployment(
    id: number,
    to: DeploymentState,
    reason: string | null,
    event: TransitionEvent<Deployment>,
  ): Deployment {
    return this.transaction(() => {
      const before = this.getDeployment(id);
      if (!before) throw new BerthError('not_found', `no deployment ${id}`);
      DEPLOYMENT_STATES.assert(String(id), before.state, to);
      this.#wrote();
      const endedAt = DEPLOYMENT_STATES.isFinal(to) ? this.#clock.now() : null;
      this.#s.transitionDeployment.run(to, reason, endedAt, id);
      this.events.record(event(before));
      this.#db.afterCommit(() => this.deploymentsChanged.notify());
      return this.getDeployment(id)!;
    });
  }

  // Services

  /**
   * The services (of one app), by app and name. The records are frozen and shared: they are parsed once per change
   * of the services table, not on every read (the reconciler, route sync and collector read them all often).
   */
  listServices(app?: string): readonly ServiceRecord[] {
    const all = this.#allServices();
    return app === undefined ? all : all.filter((service) => service.app === app);
  }

  getService(app: string, name: string): ServiceRecord | undefined {
    return this.#allServices().find((service) => service.app === app && service.name === name);
  }

  #allServices(): readonly ServiceRecord[] {
    if (this.#services !== undefined) return this.#services;
    const services = Object.freeze(this.#s.allServices.all().map((row) => deepFreeze(toService(row))));
    // What is read inside a transaction may still be rolled back: cached only outside one.
    if (!this.#db.inTransaction) this.#services = services;
    return services;
  }

  putService(service: ServiceRecord): void {
    this.#wrote({ services: true });
    this.#s.putService.run({ ...service, specJson: JSON.stringify(service.spec) });
  }

  deleteService(app: string, name: string): void {
    this.#wrote({ services: true });
    this.#s.deleteService.run(app, name);
  }

  setDesiredCount(app: string, name: string, count: number): void {
    this.#wrote({ services: true });
    this.#s.setDesiredCount.run(count, app, name);
  }

  setRestartBackoff(app: string, name: string, failures: number, nextStartAt: number): void {
    this.#wrote({ services: true });
    this.#s.setRestartBackoff.run(failures, nextStartAt, app, name);
  }

  /**
   * Marks a service's live instances as running an outdated configuration (their hash gets a `+restart` suffix),
   * so the reconciler replaces them as in a deploy: replacements first, the old ones drained once enough are
   * healthy. Returns how many were marked.
   */
  markForRestart(app: string, service: string): number {
    this.#wrote();
    return Number(this.#s.markForRestart.run(app, service).changes);
  }

  // Instances

  /** Records a new instance; it starts `starting` (states change only by `transitionInstance`). */
  insertInstance(
    instance: Omit<Instance, 'state' | 'runtime'> & { state?: 'starting'; runtime?: Instance['runtime'] },
  ): Instance {
    const row: Instance = { ...instance, runtime: instance.runtime ?? 'process', state: 'starting' };
    this.#wrote();
    this.#s.insertInstance.run({
      id: row.id,
      app: row.app,
      service: row.service,
      release: row.release,
      configHash: row.configHash,
      state: row.state,
      pid: row.pid,
      processStart: row.processStart,
      port: row.port,
      createdAt: row.createdAt,
      healthyAt: row.healthyAt,
      endedAt: row.endedAt,
      exitCode: row.exitCode,
      exitSignal: row.exitSignal,
      reason: row.reason,
      logPath: row.logPath,
      runtime: row.runtime,
      targetGroup: row.targetGroup ?? null,
    });
    return row;
  }

  /** Records where the runtime started the instance's process (not a change of state). */
  setInstanceProcess(id: string, process: { pid: number; processStart: number }): void {
    this.#wrote();
    this.#s.setInstanceProcess.run(process.pid, process.processStart, id);
  }

  /**
   * Moves an instance to `to`: refused (nothing written) unless the instance state machine allows it from the
   * state the instance is in; the state, `reason`, `facts` and `event` land in one transaction.
   */
  transitionInstance(
    id: string,
    to: InstanceState,
    reason: string | null,
    change: { facts?: InstanceFacts; event: TransitionEvent<Instance> },
  ): Instance {
    return this.transaction(() => {
      const before = this.getInstance(id);
      if (!before) throw new BerthError('not_found', `no instance ${id}`);
      INSTANCE_STATES.assert(id, before.state, to);
      const after: Instance = { ...before, ...change.facts, state: to, reason };
      this.#wrote();
      this.#s.transitionInstance.run(
        after.state,
        after.reason,
        after.healthyAt,
        after.endedAt,
        after.exitCode,
        after.exitSignal,
        id,
      );
      this.events.record(change.event(before));
      return after;
    });
  }

  getInstance(id: string): Instance | undefined {
    const row = this.#s.instance.get(id);
    return row && toInstance(row);
  }

  /**
   * Instances by app and service, newest first within a service; `live` limits to those whose process should be
   * running (through the partial index that holds only them). Each filter's query is prepared once.
   */
  listInstances(filter: { app?: string; service?: string; live?: boolean; limit?: number } = {}): Instance[] {
    const where: string[] = [];
    const values: unknown[] = [];
    if (filter.app !== undefined) {
      where.push('app = ?');
      values.push(filter.app);
    }
    if (filter.service !== undefined) {
      where.push('service = ?');
      values.push(filter.service);
    }
    if (filter.live) where.push(LIVE_INSTANCES);
    if (filter.limit !== undefined) values.push(Math.floor(filter.limit));
    // Named, not left to the planner: without statistics it may pick the newest-first index for `app = ?` and walk
    // the app's whole history to find its few live rows.
    const sql =
      `SELECT * FROM instances${filter.live ? ' INDEXED BY instances_live' : ''} ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ` +
      `ORDER BY app, service, created_at DESC, id${filter.limit === undefined ? '' : ' LIMIT ?'}`;
    return this.#db
      .statement(sql, instanceRow)
      .all(...values)
      .map(toInstance);
  }

  /** Instances that ended after `since` (epoch ms), oldest end first. */
  listEndedSince(since: number): Instance[] {
    return this.#s.endedSince.all(since).map(toInstance);
  }

  /**
   * Deletes the records of instances that ended before `before` and, per service, all but the newest
   * `keepPerService` ended ones. Their events stay (they name the instance and say what happened); their log files
   * go by the same age (`LogRetention`). Returns how many records went.
   */
  pruneEndedInstances(before: number, keepPerService: number): number {
    return this.transaction(() => {
      let deleted = this.#s.pruneEndedBefore.run(before).changes;
      for (const service of this.#s.servicesWithEnded.all(keepPerService)) {
        deleted += this.#s.pruneEndedBeyond.run(service.app, service.service, keepPerService).changes;
      }
      if (deleted > 0) this.#wrote();
      return deleted;
    });
  }

  // Events (the events table is the event store's; these read it for the store's callers)

  listEvents(filter: { app?: string; after?: number; limit?: number } = {}): BerthEvent[] {
    return this.events.list(filter);
  }
}

function statements(db: Database) {
  return {
    app: db.statement('SELECT * FROM apps WHERE name = ?', appRow),
    apps: db.statement('SELECT * FROM apps ORDER BY name', appRow),
    insertApp: db.statement(
      'INSERT INTO apps (name, current_release, created_at, updated_at) VALUES (?, ?, ?, ?)',
    ),
    setCurrentRelease: db.statement('UPDATE apps SET current_release = ?, updated_at = ? WHERE name = ?'),
    latestRelease: db.statement('SELECT MAX(version) AS n FROM releases WHERE app = ?', count),
    insertRelease: db.statement(
      `INSERT INTO releases (app, version, spec_json, source_dir, description, created_at, artifact_digest)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    release: db.statement('SELECT * FROM releases WHERE app = ? AND version = ?', releaseRow),
    releases: db.statement('SELECT * FROM releases WHERE app = ? ORDER BY version', releaseRow),
    insertDeployment: db.statement(
      `INSERT INTO deployments (app, kind, from_release, to_release, state, services_json, started_at, strategy,
         canary_json)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    deployment: db.statement('SELECT * FROM deployments WHERE id = ?', deploymentRow),
    activeDeployment: db.statement(
      "SELECT * FROM deployments WHERE app = ? AND state IN ('canary', 'in_progress') ORDER BY id DESC LIMIT 1",
      deploymentRow,
    ),
    allDeployments: db.statement('SELECT * FROM deployments ORDER BY id', deploymentRow),
    deploymentsOf: db.statement('SELECT * FROM deployments WHERE app = ? ORDER BY id', deploymentRow),
    deploymentsInState: db.statement(
      'SELECT * FROM deployments WHERE state = ? ORDER BY app, id',
      deploymentRow,
    ),
    setDeploymentServices: db.statement('UPDATE deployments SET services_json = ? WHERE id = ?'),
    setCanaryProgress: db.statement('UPDATE deployments SET canary_json = ? WHERE id = ?'),
    traffic: db.statement('SELECT * FROM traffic WHERE app = ?', trafficRow),
    allTraffic: db.statement('SELECT * FROM traffic ORDER BY app', trafficRow),
    putTraffic: db.statement(
      `INSERT INTO traffic (app, weights_json, ramp_json, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (app) DO UPDATE SET weights_json = excluded.weights_json, ramp_json = excluded.ramp_json,
         updated_at = excluded.updated_at`,
    ),
    transitionDeployment: db.statement(
      'UPDATE deployments SET state = ?, reason = ?, ended_at = ? WHERE id = ?',
    ),
    allServices: db.statement('SELECT * FROM services ORDER BY app, name', serviceRow),
    services: db.statement('SELECT * FROM services WHERE app = ? ORDER BY name', serviceRow),
    service: db.statement('SELECT * FROM services WHERE app = ? AND name = ?', serviceRow),
    putService: db.statement(
      `INSERT INTO services (app, name, release, desired_count, config_hash, spec_json, source_dir, failures, next_start_at)
       VALUES (@app, @name, @release, @desiredCount, @configHash, @specJson, @sourceDir, @failures, @nextStartAt)
       ON CONFLICT (app, name) DO UPDATE SET release = @release, desired_count = @desiredCount,
         config_hash = @configHash, spec_json = @specJson, source_dir = @sourceDir,
         failures = @failures, next_start_at = @nextStartAt`,
    ),
    deleteService: db.statement('DELETE FROM services WHERE app = ? AND name = ?'),
    setDesiredCount: db.statement('UPDATE services SET desired_count = ? WHERE app = ? AND name = ?'),
    setRestartBackoff: db.statement(
      'UPDATE services SET failures = ?, next_start_at = ? WHERE app = ? AND name = ?',
    ),
    markForRestart: db.statement(
      `UPDATE instances SET config_hash = config_hash || '+restart'
       WHERE app = ? AND service = ? AND state IN ('starting', 'healthy', 'unhealthy')`,
    ),
    insertInstance: db.statement(
      `INSERT INTO instances (id, app, service, release, config_hash, state, pid, process_start, port, created_at,
         healthy_at, ended_at, exit_code, exit_signal, reason, log_path, runtime, target_group)
       VALUES (@id, @app, @service, @release, @configHash, @state, @pid, @processStart, @port, @createdAt,
         @healthyAt, @endedAt, @exitCode, @exitSignal, @reason, @logPath, @runtime, @targetGroup)`,
    ),
    setInstanceProcess: db.statement('UPDATE instances SET pid = ?, process_start = ? WHERE id = ?'),
    transitionInstance: db.statement(
      `UPDATE instances SET state = ?, reason = ?, healthy_at = ?, ended_at = ?, exit_code = ?, exit_signal = ?
       WHERE id = ?`,
    ),
    instance: db.statement('SELECT * FROM instances WHERE id = ?', instanceRow),
    endedSince: db.statement('SELECT * FROM instances WHERE ended_at > ? ORDER BY ended_at', instanceRow),
    pruneEndedBefore: db.statement(`DELETE FROM instances WHERE ended_at < ? AND NOT ${LIVE_INSTANCES}`),
    /** Services with more ended instances than are kept (counted through the newest-first index). */
    servicesWithEnded: db.statement(
      `SELECT app, service FROM instances WHERE NOT ${LIVE_INSTANCES} GROUP BY app, service HAVING COUNT(*) > ?`,
      z.object({ app: z.string(), service: z.string() }),
    ),
    pruneEndedBeyond: db.statement(
      `DELETE FROM instances WHERE id IN (SELECT id FROM instances WHERE app = ? AND service = ? AND NOT ${LIVE_INSTANCES}
         ORDER BY created_at DESC LIMIT -1 OFFSET ?)`,
    ),
    relocate: (
      [
        ['releases', 'source_dir'],
        ['services', 'source_dir'],
        ['instances', 'log_path'],
      ] as const
    ).map(([table, column]) =>
      db.statement(
        `UPDATE ${table} SET ${column} = @target || substr(${column}, length(@prefix) + 1) WHERE substr(${column}, 1, length(@prefix)) = @prefix`,
      ),
    ),
  };
}
