// The add-ons' tables: each add-on with its server process and state, and its backups; states change one way.
import { z } from 'zod';
import {
  ADDON_KINDS,
  ADDON_STATES,
  type AddonBackupPolicy,
  type AddonKind,
  type AddonState,
  type BackupTrigger,
  LIVE_ADDON_STATES,
} from '../../domain/addon.js';
import { BerthError } from '../../domain/errors.js';
import type { Database, Migration } from '../store/database.js';
import type { EventInput, EventStore } from '../store/event-store.js';

/** An add-on as the store keeps it. Times are epoch milliseconds. */
export interface AddonRecord {
  id: string;
  app: string;
  name: string;
  kind: AddonKind;
  /** The server's major version (`7`, `15`). */
  version: string;
  state: AddonState;
  reason: string | null;
  port: number;
  /** The app's secret (environment variable) holding the URL. */
  envName: string;
  /** The user the URL logs in as: `default` (Redis), the current login role (PostgreSQL). */
  login: string;
  createdAt: number;
  updatedAt: number;
  /** The running server, as the runtime knows it; all null while none runs. */
  process: AddonProcess | null;
  /** Consecutive failed runs, and when the next start may happen (the crash-loop backoff). */
  failures: number;
  nextStartAt: number;
  backups: AddonBackupPolicy;
  /** Credentials being rotated: what to revoke once no instance started before `since` runs. */
  rotation: AddonRotation | null;
  /** The backup a `restoring` add-on loads. */
  restoreFrom: string | null;
}

/** One run of an add-on's server: its process id for the runtime, and where it is. */
export interface AddonProcess {
  /** `app:name.hex`: how the runtime names it (log, exit record, cgroup). */
  id: string;
  pid: number;
  processStart: number;
  logPath: string;
  startedAt: number;
}

/** The credential a rotation retires: revoked when every instance runs with the new one. */
export interface AddonRotation {
  since: number;
  /** The login being retired (PostgreSQL: the other role), and for Redis the SHA-256 of the retired password. */
  login: string;
  passwordHash?: string;
}

/** A backup file as the store keeps it; the file is `<backups dir>/<app>/<file>`. */
export interface BackupRecord {
  id: string;
  app: string;
  addon: string;
  addonId: string;
  kind: AddonKind;
  version: string;
  trigger: BackupTrigger;
  createdAt: number;
  sizeBytes: number;
  tookMs: number;
  file: string;
}

export const ADDON_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'add-ons and their backups',
    sql: `
      CREATE TABLE addons (
        id TEXT PRIMARY KEY,
        app TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        version TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        port INTEGER NOT NULL,
        env_name TEXT NOT NULL,
        login TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        process_id TEXT,
        pid INTEGER,
        process_start INTEGER,
        log_path TEXT,
        started_at INTEGER,
        failures INTEGER NOT NULL DEFAULT 0,
        next_start_at INTEGER NOT NULL DEFAULT 0,
        backups_every_ms INTEGER NOT NULL,
        backups_keep INTEGER NOT NULL,
        rotation_json TEXT,
        restore_from TEXT
      );
      CREATE UNIQUE INDEX addons_live_name ON addons (app, name)
        WHERE state NOT IN ('destroyed', 'failed');
      CREATE TABLE addon_backups (
        app TEXT NOT NULL,
        id TEXT NOT NULL,
        addon TEXT NOT NULL,
        addon_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        version TEXT NOT NULL,
        trigger TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        size_bytes INTEGER NOT NULL,
        took_ms INTEGER NOT NULL,
        file TEXT NOT NULL,
        PRIMARY KEY (app, id)
      );
      CREATE INDEX addon_backups_by_addon ON addon_backups (addon_id, created_at);
    `,
  },
];

const addonRow = z.object({
  id: z.string(),
  app: z.string(),
  name: z.string(),
  kind: z.enum(ADDON_KINDS),
  version: z.string(),
  state: z.enum(ADDON_STATES.states as [AddonState, ...AddonState[]]),
  reason: z.string().nullable(),
  port: z.number().int(),
  env_name: z.string(),
  login: z.string(),
  created_at: z.number(),
  updated_at: z.number(),
  process_id: z.string().nullable(),
  pid: z.number().int().nullable(),
  process_start: z.number().int().nullable(),
  log_path: z.string().nullable(),
  started_at: z.number().nullable(),
  failures: z.number().int(),
  next_start_at: z.number(),
  backups_every_ms: z.number().int(),
  backups_keep: z.number().int(),
  rotation_json: z.string().nullable(),
  restore_from: z.string().nullable(),
});

const rotation = z.object({ since: z.number(), login: z.string(), passwordHash: z.string().optional() });

const backupRow = z.object({
  app: z.string(),
  id: z.string(),
  addon: z.string(),
  addon_id: z.string(),
  kind: z.enum(ADDON_KINDS),
  version: z.string(),
  trigger: z.enum(['manual', 'scheduled', 'snapshot']),
  created_at: z.number(),
  size_bytes: z.number().int(),
  took_ms: z.number().int(),
  file: z.string(),
});

function toAddon(row: z.output<typeof addonRow>): AddonRecord {
  const running =
    row.process_id !== null && row.pid !== null && row.process_start !== null && row.log_path !== null;
  return {
    id: row.id,
    app: row.app,
    name: row.name,
    kind: row.kind,
    version: row.version,
    state: row.state,
    reason: row.reason,
    port: row.port,
    envName: row.env_name,
    login: row.login,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    process: running
      ? {
          id: row.process_id!,
          pid: row.pid!,
          processStart: row.process_start!,
          logPath: row.log_path!,
          startedAt: row.started_at ?? row.updated_at,
        }
      : null,
    failures: row.failures,
    nextStartAt: row.next_start_at,
    backups: { everyMs: row.backups_every_ms, keep: row.backups_keep },
    rotation: row.rotation_json === null ? null : rotation.parse(JSON.parse(row.rotation_json)),
    restoreFrom: row.restore_from,
  };
}

function toBackup(row: z.output<typeof backupRow>): BackupRecord {
  return {
    id: row.id,
    app: row.app,
    addon: row.addon,
    addonId: row.addon_id,
    kind: row.kind,
    version: row.version,
    trigger: row.trigger,
    createdAt: row.created_at,
    sizeBytes: row.size_bytes,
    tookMs: row.took_ms,
    file: row.file,
  };
}

/** What a new add-on starts as (`provisioning`; states change only by `transition`). */
export type NewAddon = Pick<
  AddonRecord,
  'id' | 'app' | 'name' | 'kind' | 'version' | 'port' | 'envName' | 'login' | 'backups'
> & { restoreFrom?: string | null };

/**
 * The repository of the add-on tables. An add-on's state changes only through `transition`, which refuses a jump
 * the add-on state machine does not list and writes the state and its event in one transaction.
 */
export class AddonStore {
  readonly events: EventStore;
  readonly #db: Database;
  readonly #now: () => number;
  readonly #s: ReturnType<typeof statements>;

  constructor(db: Database, events: EventStore, now: () => number = Date.now) {
    db.migrate('addons', ADDON_MIGRATIONS);
    this.#db = db;
    this.events = events;
    this.#now = now;
    this.#s = statements(db);
  }

  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn);
  }

  insert(addon: NewAddon, event: EventInput): AddonRecord {
    return this.transaction(() => {
      const now = this.#now();
      this.#s.insert.run({
        id: addon.id,
        app: addon.app,
        name: addon.name,
        kind: addon.kind,
        version: addon.version,
        port: addon.port,
        envName: addon.envName,
        login: addon.login,
        now,
        everyMs: addon.backups.everyMs,
        keep: addon.backups.keep,
        restoreFrom: addon.restoreFrom ?? null,
      });
      this.events.record(event);
      return this.get(addon.id)!;
    });
  }

  get(id: string): AddonRecord | undefined {
    const row = this.#s.byId.get(id);
    return row && toAddon(row);
  }

  /** The live add-on `name` of `app` (there is at most one). */
  find(app: string, name: string): AddonRecord | undefined {
    const row = this.#s.byName.get(app, name);
    return row && toAddon(row);
  }

  /** Live add-ons (all apps, or one), by app and name; `all` includes destroyed and failed ones. */
  list(filter: { app?: string; all?: boolean } = {}): AddonRecord[] {
    return this.#s.list
      .all({ app: filter.app ?? null, all: filter.all ? 1 : 0 })
      .map(toAddon)
      .filter((addon) => filter.all || LIVE_ADDON_STATES.includes(addon.state));
  }

  /**
   * Moves an add-on to `to`: refused (nothing written) unless the add-on state machine allows it from the state it
   * is in; the state, `reason`, `facts` and the event land in one transaction.
   */
  transition(
    id: string,
    to: AddonState,
    reason: string | null,
    change: { facts?: Partial<Pick<AddonRecord, 'restoreFrom'>>; event: (before: AddonRecord) => EventInput },
  ): AddonRecord {
    return this.transaction(() => {
      const before = this.get(id);
      if (!before) throw new BerthError('not_found', `no add-on ${id}`);
      ADDON_STATES.assert(`${before.app}/${before.name}`, before.state, to);
      const restoreFrom =
        change.facts?.restoreFrom === undefined ? before.restoreFrom : change.facts.restoreFrom;
      this.#s.transition.run(to, reason, restoreFrom, this.#now(), id);
      this.events.record(change.event(before));
      return this.get(id)!;
    });
  }

  /** Records the server process the runtime started (or none); not a change of state. */
  setProcess(id: string, process: AddonProcess | null): void {
    this.#s.setProcess.run(
      process?.id ?? null,
      process?.pid ?? null,
      process?.processStart ?? null,
      process?.logPath ?? null,
      process?.startedAt ?? null,
      id,
    );
  }

  setBackoff(id: string, failures: number, nextStartAt: number): void {
    this.#s.setBackoff.run(failures, nextStartAt, id);
  }

  setReason(id: string, reason: string | null): void {
    this.#s.setReason.run(reason, this.#now(), id);
  }

  setPort(id: string, port: number): void {
    this.#s.setPort.run(port, this.#now(), id);
  }

  setLogin(id: string, login: string): void {
    this.#s.setLogin.run(login, this.#now(), id);
  }

  setEnvName(id: string, envName: string): void {
    this.#s.setEnvName.run(envName, this.#now(), id);
  }

  setBackupPolicy(id: string, policy: AddonBackupPolicy): void {
    this.#s.setPolicy.run(policy.everyMs, policy.keep, this.#now(), id);
  }

  setRotation(id: string, value: AddonRotation | null): void {
    this.#s.setRotation.run(value === null ? null : JSON.stringify(value), this.#now(), id);
  }

  // Backups

  insertBackup(backup: BackupRecord): void {
    this.#s.insertBackup.run({ ...backup });
  }

  getBackup(app: string, id: string): BackupRecord | undefined {
    const row = this.#s.backup.get(app, id);
    return row && toBackup(row);
  }

  /** Backups of an app (or of one add-on id), oldest first. */
  listBackups(filter: { app?: string; addonId?: string } = {}): BackupRecord[] {
    return this.#s.backups.all({ app: filter.app ?? null, addonId: filter.addonId ?? null }).map(toBackup);
  }

  deleteBackup(app: string, id: string): void {
    this.#s.deleteBackup.run(app, id);
  }
}

function statements(db: Database) {
  return {
    insert: db.statement(
      `INSERT INTO addons (id, app, name, kind, version, state, port, env_name, login, created_at, updated_at,
         backups_every_ms, backups_keep, restore_from)
       VALUES (@id, @app, @name, @kind, @version, 'provisioning', @port, @envName, @login, @now, @now,
         @everyMs, @keep, @restoreFrom)`,
    ),
    byId: db.statement('SELECT * FROM addons WHERE id = ?', addonRow),
    byName: db.statement(
      "SELECT * FROM addons WHERE app = ? AND name = ? AND state NOT IN ('destroyed', 'failed')",
      addonRow,
    ),
    list: db.statement(
      'SELECT * FROM addons WHERE (@app IS NULL OR app = @app) ORDER BY app, name, created_at',
      addonRow,
    ),
    transition: db.statement(
      'UPDATE addons SET state = ?, reason = ?, restore_from = ?, updated_at = ? WHERE id = ?',
    ),
    setProcess: db.statement(
      'UPDATE addons SET process_id = ?, pid = ?, process_start = ?, log_path = ?, started_at = ? WHERE id = ?',
    ),
    setBackoff: db.statement('UPDATE addons SET failures = ?, next_start_at = ? WHERE id = ?'),
    setReason: db.statement('UPDATE addons SET reason = ?, updated_at = ? WHERE id = ?'),
    setPort: db.statement('UPDATE addons SET port = ?, updated_at = ? WHERE id = ?'),
    setLogin: db.statement('UPDATE addons SET login = ?, updated_at = ? WHERE id = ?'),
    setEnvName: db.statement('UPDATE addons SET env_name = ?, updated_at = ? WHERE id = ?'),
    setPolicy: db.statement(
      'UPDATE addons SET backups_every_ms = ?, backups_keep = ?, updated_at = ? WHERE id = ?',
    ),
    setRotation: db.statement('UPDATE addons SET rotation_json = ?, updated_at = ? WHERE id = ?'),
    insertBackup: db.statement(
      `INSERT INTO addon_backups (app, id, addon, addon_id, kind, version, trigger, created_at, size_bytes,
         took_ms, file)
       VALUES (@app, @id, @addon, @addonId, @kind, @version, @trigger, @createdAt, @sizeBytes, @tookMs, @file)`,
    ),
    backup: db.statement('SELECT * FROM addon_backups WHERE app = ? AND id = ?', backupRow),
    backups: db.statement(
      `SELECT * FROM addon_backups WHERE (@app IS NULL OR app = @app) AND (@addonId IS NULL OR addon_id = @addonId)
       ORDER BY created_at, id`,
      backupRow,
    ),
    deleteBackup: db.statement('DELETE FROM addon_backups WHERE app = ? AND id = ?'),
  };
}
