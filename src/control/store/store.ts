// The control plane's state: one SQLite file (WAL mode) holding apps, releases, services, instances and events.
import Database from 'better-sqlite3';
import type { ReleaseRecord } from '../../domain/api-types.js';
import type {
  Deployment,
  DeploymentKind,
  DeploymentService,
  DeploymentState,
} from '../../domain/deployment.js';
import type { BerthEvent, NewEvent } from '../../domain/event.js';
import type { Instance, InstanceState } from '../../domain/instance.js';
import { LIVE_STATES } from '../../domain/instance.js';
import type { AppSpec, ServiceSpec } from '../../domain/spec.js';
import { MIGRATIONS } from './migrations.js';

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

interface InstanceRow {
  id: string;
  app: string;
  service: string;
  release: number;
  config_hash: string;
  state: InstanceState;
  pid: number | null;
  process_start: number | null;
  port: number | null;
  created_at: number;
  healthy_at: number | null;
  ended_at: number | null;
  exit_code: number | null;
  exit_signal: string | null;
  reason: string | null;
  log_path: string;
}

interface ServiceRow {
  app: string;
  name: string;
  release: number;
  desired_count: number;
  config_hash: string;
  spec_json: string;
  source_dir: string;
  failures: number;
  next_start_at: number;
}

interface DeploymentRow {
  id: number;
  app: string;
  kind: DeploymentKind;
  from_release: number | null;
  to_release: number;
  state: DeploymentState;
  services_json: string;
  reason: string | null;
  started_at: number;
  ended_at: number | null;
}

function toDeployment(row: DeploymentRow): Deployment {
  return {
    id: row.id,
    app: row.app,
    kind: row.kind,
    fromRelease: row.from_release,
    toRelease: row.to_release,
    state: row.state,
    services: JSON.parse(row.services_json) as DeploymentService[],
    reason: row.reason,
    startedAt: row.started_at,
    endedAt: row.ended_at,
  };
}

interface EventRow {
  id: number;
  at: number;
  actor: string;
  kind: string;
  app: string | null;
  service: string | null;
  instance: string | null;
  message: string;
  data_json: string;
}

const INSTANCE_COLUMNS: Record<keyof Instance, keyof InstanceRow> = {
  id: 'id',
  app: 'app',
  service: 'service',
  release: 'release',
  configHash: 'config_hash',
  state: 'state',
  pid: 'pid',
  processStart: 'process_start',
  port: 'port',
  createdAt: 'created_at',
  healthyAt: 'healthy_at',
  endedAt: 'ended_at',
  exitCode: 'exit_code',
  exitSignal: 'exit_signal',
  reason: 'reason',
  logPath: 'log_path',
};

export class Store {
  readonly #db: Database.Database;
  readonly #now: () => number;

  constructor(path: string, options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    this.#db.pragma('foreign_keys = ON');
    this.#db.pragma('busy_timeout = 5000');
    this.#migrate();
  }

  close(): void {
    this.#db.close();
  }

  /** The SQLite handle, for modules that keep their own tables and SQL (metrics, alarms, drains). */
  get db(): Database.Database {
    return this.#db;
  }

  /**
   * A consistent copy of the whole database at `path`, taken while it is in use (SQLite's online backup API:
   * writes that land meanwhile are in the copy or not, never half).
   */
  async backup(path: string): Promise<void> {
    await this.#db.backup(path);
  }

  /**
   * After a restore into another data directory: paths recorded under `from` (release artifacts, services'
   * sources, instance logs) are moved under `to`. Returns how many rows changed.
   */
  relocatePaths(from: string, to: string): number {
    if (from === to) return 0;
    const prefix = from.endsWith('/') ? from : `${from}/`;
    const target = to.endsWith('/') ? to : `${to}/`;
    let changed = 0;
    this.transaction(() => {
      for (const [table, column] of [
        ['releases', 'source_dir'],
        ['services', 'source_dir'],
        ['instances', 'log_path'],
      ] as const) {
        changed += this.#db
          .prepare(
            `UPDATE ${table} SET ${column} = @target || substr(${column}, length(@prefix) + 1) WHERE substr(${column}, 1, length(@prefix)) = @prefix`,
          )
          .run({ prefix, target }).changes;
      }
    });
    return changed;
  }

  /** Runs `fn` in one transaction: all of it lands or none of it does. */
  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn)();
  }

  schemaVersion(): number {
    const row = this.#db.prepare('SELECT MAX(version) AS version FROM schema_migrations').get() as {
      version: number | null;
    };
    return row.version ?? 0;
  }

  #migrate(): void {
    this.#db.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)',
    );
    // Applied by set, not by maximum: migrations written on parallel branches may land out of order.
    const applied = new Set(
      (this.#db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map(
        (r) => r.version,
      ),
    );
    for (const migration of [...MIGRATIONS].sort((x, y) => x.version - y.version)) {
      if (applied.has(migration.version)) continue;
      this.transaction(() => {
        this.#db.exec(migration.sql);
        this.#db
          .prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
          .run(migration.version, migration.name, this.#now());
      });
    }
  }

  // Apps and releases

  getApp(name: string): AppRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM apps WHERE name = ?').get(name) as
      | { name: string; current_release: number; created_at: number; updated_at: number }
      | undefined;
    return (
      row && {
        name: row.name,
        currentRelease: row.current_release,
        createdAt: row.created_at,
        updatedAt: row.updated_at,
      }
    );
  }

  listApps(): AppRecord[] {
    const rows = this.#db.prepare('SELECT name FROM apps ORDER BY name').all() as { name: string }[];
    return rows.map((row) => this.getApp(row.name)!);
  }

  /** Records a new numbered release of `spec.app` and makes it the app's current one. Returns its number. */
  createRelease(
    spec: AppSpec,
    sourceDir: string,
    description: string,
    artifactDigest: string | null = null,
  ): number {
    const now = this.#now();
    const app = spec.app;
    const existing = this.getApp(app);
    // Numbers only grow, even after the current release moved back to an older one (a rollback).
    const { latest } = this.#db
      .prepare('SELECT MAX(version) AS latest FROM releases WHERE app = ?')
      .get(app) as {
      latest: number | null;
    };
    const version = (latest ?? 0) + 1;
    if (existing) {
      this.#db
        .prepare('UPDATE apps SET current_release = ?, updated_at = ? WHERE name = ?')
        .run(version, now, app);
    } else {
      this.#db
        .prepare('INSERT INTO apps (name, current_release, created_at, updated_at) VALUES (?, ?, ?, ?)')
        .run(app, version, now, now);
    }
    this.#db
      .prepare(
        `INSERT INTO releases (app, version, spec_json, source_dir, description, created_at, artifact_digest)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(app, version, JSON.stringify(spec), sourceDir, description, now, artifactDigest);
    return version;
  }

  /** Points the app at another of its releases (after an automatic rollback). */
  setCurrentRelease(app: string, version: number): void {
    this.#db
      .prepare('UPDATE apps SET current_release = ?, updated_at = ? WHERE name = ?')
      .run(version, this.#now(), app);
  }

  getRelease(app: string, version: number): ReleaseRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM releases WHERE app = ? AND version = ?').get(app, version) as
      | {
          app: string;
          version: number;
          spec_json: string;
          source_dir: string;
          artifact_digest: string | null;
          description: string;
          created_at: number;
        }
      | undefined;
    return (
      row && {
        app: row.app,
        version: row.version,
        spec: JSON.parse(row.spec_json) as AppSpec,
        sourceDir: row.source_dir,
        artifactDigest: row.artifact_digest,
        description: row.description,
        createdAt: row.created_at,
      }
    );
  }

  listReleases(app: string): ReleaseRecord[] {
    const rows = this.#db.prepare('SELECT version FROM releases WHERE app = ? ORDER BY version').all(app) as {
      version: number;
    }[];
    return rows.map((row) => this.getRelease(app, row.version)!);
  }

  // Deployments

  createDeployment(deployment: Omit<Deployment, 'id' | 'state' | 'reason' | 'endedAt'>): Deployment {
    const result = this.#db
      .prepare(
        `INSERT INTO deployments (app, kind, from_release, to_release, state, services_json, started_at)
         VALUES (?, ?, ?, ?, 'in_progress', ?, ?)`,
      )
      .run(
        deployment.app,
        deployment.kind,
        deployment.fromRelease,
        deployment.toRelease,
        JSON.stringify(deployment.services),
        deployment.startedAt,
      );
    return this.getDeployment(Number(result.lastInsertRowid))!;
  }

  getDeployment(id: number): Deployment | undefined {
    const row = this.#db.prepare('SELECT * FROM deployments WHERE id = ?').get(id) as
      | DeploymentRow
      | undefined;
    return row && toDeployment(row);
  }

  /** The app's deployment in progress, if any (there is at most one). */
  activeDeployment(app: string): Deployment | undefined {
    const row = this.#db
      .prepare("SELECT * FROM deployments WHERE app = ? AND state = 'in_progress' ORDER BY id DESC LIMIT 1")
      .get(app) as DeploymentRow | undefined;
    return row && toDeployment(row);
  }

  listDeployments(filter: { app?: string; state?: DeploymentState } = {}): Deployment[] {
    const rows = this.#db
      .prepare(
        'SELECT * FROM deployments WHERE (@app IS NULL OR app = @app) AND (@state IS NULL OR state = @state) ORDER BY id',
      )
      .all({ app: filter.app ?? null, state: filter.state ?? null }) as DeploymentRow[];
    return rows.map(toDeployment);
  }

  updateDeployment(
    id: number,
    patch: Partial<Pick<Deployment, 'state' | 'services' | 'reason' | 'endedAt'>>,
  ): void {
    const current = this.getDeployment(id);
    if (!current) return;
    const next = { ...current, ...patch };
    this.#db
      .prepare('UPDATE deployments SET state = ?, services_json = ?, reason = ?, ended_at = ? WHERE id = ?')
      .run(next.state, JSON.stringify(next.services), next.reason, next.endedAt, id);
  }

  // Services

  listServices(app?: string): ServiceRecord[] {
    const rows = (
      app === undefined
        ? this.#db.prepare('SELECT * FROM services ORDER BY app, name').all()
        : this.#db.prepare('SELECT * FROM services WHERE app = ? ORDER BY name').all(app)
    ) as ServiceRow[];
    return rows.map(toServiceRecord);
  }

  getService(app: string, name: string): ServiceRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM services WHERE app = ? AND name = ?').get(app, name) as
      | ServiceRow
      | undefined;
    return row && toServiceRecord(row);
  }

  putService(service: ServiceRecord): void {
    this.#db
      .prepare(
        `INSERT INTO services (app, name, release, desired_count, config_hash, spec_json, source_dir, failures, next_start_at)
         VALUES (@app, @name, @release, @desiredCount, @configHash, @specJson, @sourceDir, @failures, @nextStartAt)
         ON CONFLICT (app, name) DO UPDATE SET release = @release, desired_count = @desiredCount,
           config_hash = @configHash, spec_json = @specJson, source_dir = @sourceDir,
           failures = @failures, next_start_at = @nextStartAt`,
      )
      .run({ ...service, specJson: JSON.stringify(service.spec) });
  }

  deleteService(app: string, name: string): void {
    this.#db.prepare('DELETE FROM services WHERE app = ? AND name = ?').run(app, name);
  }

  setDesiredCount(app: string, name: string, count: number): void {
    this.#db
      .prepare('UPDATE services SET desired_count = ? WHERE app = ? AND name = ?')
      .run(count, app, name);
  }

  setRestartBackoff(app: string, name: string, failures: number, nextStartAt: number): void {
    this.#db
      .prepare('UPDATE services SET failures = ?, next_start_at = ? WHERE app = ? AND name = ?')
      .run(failures, nextStartAt, app, name);
  }

  // Instances

  insertInstance(instance: Instance): void {
    const row = toInstanceRow(instance);
    const columns = Object.keys(row);
    this.#db
      .prepare(
        `INSERT INTO instances (${columns.join(', ')}) VALUES (${columns.map((c) => `@${c}`).join(', ')})`,
      )
      .run(row);
  }

  updateInstance(id: string, patch: Partial<Omit<Instance, 'id'>>): void {
    const assignments: string[] = [];
    const values: Record<string, unknown> = { id };
    for (const [key, value] of Object.entries(patch)) {
      const column = INSTANCE_COLUMNS[key as keyof Instance];
      assignments.push(`${column} = @${column}`);
      values[column] = value;
    }
    if (assignments.length === 0) return;
    this.#db.prepare(`UPDATE instances SET ${assignments.join(', ')} WHERE id = @id`).run(values);
  }

  getInstance(id: string): Instance | undefined {
    const row = this.#db.prepare('SELECT * FROM instances WHERE id = ?').get(id) as InstanceRow | undefined;
    return row && toInstance(row);
  }

  /** Instances, newest first within a service; `live` limits to those whose process should be running. */
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
    if (filter.live) where.push(`state IN (${LIVE_STATES.map((s) => `'${s}'`).join(', ')})`);
    const sql =
      `SELECT * FROM instances ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ` +
      `ORDER BY app, service, created_at DESC, id ${filter.limit === undefined ? '' : `LIMIT ${Math.floor(filter.limit)}`}`;
    return (this.#db.prepare(sql).all(...values) as InstanceRow[]).map(toInstance);
  }

  // Events

  appendEvent(event: NewEvent): BerthEvent {
    const at = event.at ?? this.#now();
    const result = this.#db
      .prepare(
        'INSERT INTO events (at, actor, kind, app, service, instance, message, data_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        at,
        event.actor,
        event.kind,
        event.app,
        event.service,
        event.instance,
        event.message,
        JSON.stringify(event.data),
      );
    return { ...event, id: Number(result.lastInsertRowid), at };
  }

  /** Events in order; `after` resumes from an event id, `limit` keeps the newest ones. */
  listEvents(filter: { app?: string; after?: number; limit?: number } = {}): BerthEvent[] {
    const where: string[] = ['id > ?'];
    const values: unknown[] = [filter.after ?? 0];
    if (filter.app !== undefined) {
      where.push('app = ?');
      values.push(filter.app);
    }
    const limit = Math.max(1, Math.min(filter.limit ?? 100, 10_000));
    const rows = this.#db
      .prepare(
        `SELECT * FROM (SELECT * FROM events WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT ${limit}) ORDER BY id`,
      )
      .all(...values) as EventRow[];
    return rows.map((row) => ({
      id: row.id,
      at: row.at,
      actor: row.actor,
      kind: row.kind,
      app: row.app,
      service: row.service,
      instance: row.instance,
      message: row.message,
      data: JSON.parse(row.data_json) as Record<string, unknown>,
    }));
  }
}

function toServiceRecord(row: ServiceRow): ServiceRecord {
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

function toInstance(row: InstanceRow): Instance {
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
  };
}

function toInstanceRow(instance: Instance): InstanceRow {
  const row: Record<string, unknown> = {};
  for (const [key, column] of Object.entries(INSTANCE_COLUMNS)) row[column] = instance[key as keyof Instance];
  return row as unknown as InstanceRow;
}
