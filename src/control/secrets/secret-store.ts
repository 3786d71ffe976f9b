// The secrets tables: secrets with their labels, sealed versions, the master key check, config vars.
import { z } from 'zod';
import type { Database, Migration, Statement } from '../store/database.js';
import type { SealedVersion } from './envelope.js';

/** A secret's row: labels point at versions; a soft-deleted secret has `deletedAt` and `purgeAt`. */
export interface SecretRow {
  app: string;
  name: string;
  currentVersion: number;
  previousVersion: number | null;
  createdAt: number;
  updatedAt: number;
  deletedAt: number | null;
  purgeAt: number | null;
}

export interface VersionRow extends SealedVersion {
  app: string;
  name: string;
  version: number;
  createdAt: number;
  createdBy: string;
}

export const SECRETS_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'secrets (envelope-encrypted versions) and config vars',
    sql: `
      -- One row: a value sealed with the master key, so a wrong key is refused before it touches anything.
      CREATE TABLE secret_master_check (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        check_value BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        rotated_at INTEGER
      );
      -- A secret per app and name; labels point at versions. deleted_at/purge_at: soft delete, recovery window.
      CREATE TABLE secrets (
        app TEXT NOT NULL,
        name TEXT NOT NULL,
        current_version INTEGER NOT NULL,
        previous_version INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        deleted_at INTEGER,
        purge_at INTEGER,
        PRIMARY KEY (app, name)
      );
      -- Each version: its value sealed with its own data key, the data key sealed with the master key.
      CREATE TABLE secret_versions (
        app TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        sealed_key BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (app, name, version),
        FOREIGN KEY (app, name) REFERENCES secrets (app, name) ON DELETE CASCADE
      );
      CREATE TABLE config_vars (
        app TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (app, key)
      );
    `,
  },
  {
    version: 2,
    name: 'platform secrets (the ACME account key)',
    sql: `
      -- Berth's own secrets, sealed like app secrets (own data key, sealed by the master key, re-sealed on rotation).
      CREATE TABLE platform_secrets (
        name TEXT PRIMARY KEY,
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        sealed_key BLOB NOT NULL,
        created_at INTEGER NOT NULL
      );
    `,
  },
];

const platformRow = z
  .object({
    name: z.string(),
    nonce: z.instanceof(Buffer),
    ciphertext: z.instanceof(Buffer),
    sealed_key: z.instanceof(Buffer),
  })
  .transform((row) => ({
    name: row.name,
    nonce: row.nonce,
    ciphertext: row.ciphertext,
    sealedKey: row.sealed_key,
  }));

const secretRow = z
  .object({
    app: z.string(),
    name: z.string(),
    current_version: z.number().int(),
    previous_version: z.number().int().nullable(),
    created_at: z.number(),
    updated_at: z.number(),
    deleted_at: z.number().nullable(),
    purge_at: z.number().nullable(),
  })
  .transform(
    (row): SecretRow => ({
      app: row.app,
      name: row.name,
      currentVersion: row.current_version,
      previousVersion: row.previous_version,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      deletedAt: row.deleted_at,
      purgeAt: row.purge_at,
    }),
  );

const versionRow = z
  .object({
    app: z.string(),
    name: z.string(),
    version: z.number().int(),
    nonce: z.instanceof(Buffer),
    ciphertext: z.instanceof(Buffer),
    sealed_key: z.instanceof(Buffer),
    created_at: z.number(),
    created_by: z.string(),
  })
  .transform(
    (row): VersionRow => ({
      app: row.app,
      name: row.name,
      version: row.version,
      nonce: row.nonce,
      ciphertext: row.ciphertext,
      sealedKey: row.sealed_key,
      createdAt: row.created_at,
      createdBy: row.created_by,
    }),
  );

const configRow = z
  .object({ key: z.string(), value: z.string(), updated_at: z.number() })
  .transform((row) => ({ key: row.key, value: row.value, updatedAt: row.updated_at }));

/** Versions kept per secret besides the labelled ones (AWS keeps about 100; we need only a short history). */
export const KEPT_VERSIONS = 10;

/** The repository of the secrets tables; only the secrets module reads or writes them. */
export class SecretStore {
  readonly #db: Database;
  readonly #s: ReturnType<typeof statements>;

  readonly #platform: {
    one: Statement<SealedVersion & { name: string }>;
    all: Statement<SealedVersion & { name: string }>;
    insert: Statement<never>;
    replaceKey: Statement<never>;
  };

  constructor(db: Database) {
    db.migrate('secrets', SECRETS_MIGRATIONS);
    this.#db = db;
    this.#s = statements(db);
    const columns = 'SELECT name, nonce, ciphertext, sealed_key FROM platform_secrets';
    this.#platform = {
      one: db.statement(`${columns} WHERE name = ?`, platformRow),
      all: db.statement(`${columns} ORDER BY name`, platformRow),
      insert: db.statement(
        'INSERT INTO platform_secrets (name, nonce, ciphertext, sealed_key, created_at) VALUES (?, ?, ?, ?, ?)',
      ),
      replaceKey: db.statement('UPDATE platform_secrets SET sealed_key = ? WHERE name = ?'),
    };
  }

  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn);
  }

  keyCheck(): Buffer | undefined {
    return this.#s.keyCheck.get()?.check_value;
  }

  setKeyCheck(check: Buffer, now: number): void {
    this.#s.setKeyCheck.run(check, now);
  }

  /** True when any secret version exists (then a missing master key must not be replaced by a new one). */
  hasVersions(): boolean {
    return this.#s.anyVersion.get() !== undefined;
  }

  /** A platform secret's sealed value (Berth's own, e.g. `acme-account <directory>`). */
  platformSecret(name: string): (SealedVersion & { name: string }) | undefined {
    return this.#platform.one.get(name);
  }

  listPlatformSecrets(): (SealedVersion & { name: string })[] {
    return this.#platform.all.all();
  }

  addPlatformSecret(name: string, sealed: SealedVersion, now: number): void {
    this.#platform.insert.run(name, sealed.nonce, sealed.ciphertext, sealed.sealedKey, now);
  }

  replacePlatformSealedKey(name: string, sealedKey: Buffer): void {
    this.#platform.replaceKey.run(sealedKey, name);
  }

  getSecret(app: string, name: string): SecretRow | undefined {
    return this.#s.secret.get(app, name);
  }

  /** Secrets of one app (or all), soft-deleted ones included. */
  listSecrets(app?: string): SecretRow[] {
    return app === undefined ? this.#s.allSecrets.all() : this.#s.secrets.all(app);
  }

  getVersion(app: string, name: string, version: number): VersionRow | undefined {
    return this.#s.version.get(app, name, version);
  }

  listAllVersions(): VersionRow[] {
    return this.#s.allVersions.all();
  }

  /** Adds a version and makes it current (the old current becomes previous), restoring a soft-deleted secret. */
  addVersion(version: VersionRow): void {
    const existing = this.getSecret(version.app, version.name);
    if (!existing) {
      this.#s.insertSecret.run(
        version.app,
        version.name,
        version.version,
        version.createdAt,
        version.createdAt,
      );
    }
    this.#s.insertVersion.run(
      version.app,
      version.name,
      version.version,
      version.nonce,
      version.ciphertext,
      version.sealedKey,
      version.createdAt,
      version.createdBy,
    );
    if (existing) {
      this.#s.makeCurrent.run(
        version.version,
        existing.currentVersion,
        version.createdAt,
        version.app,
        version.name,
      );
    }
    this.#pruneVersions(version.app, version.name);
  }

  nextVersion(app: string, name: string): number {
    return (this.#s.latestVersion.get(app, name)?.version ?? 0) + 1;
  }

  setLabels(app: string, name: string, current: number, previous: number | null, now: number): void {
    this.#s.setLabels.run(current, previous, now, app, name);
  }

  setDeleted(app: string, name: string, deletedAt: number | null, purgeAt: number | null, now: number): void {
    this.#s.setDeleted.run(deletedAt, purgeAt, now, app, name);
  }

  purge(app: string, name: string): void {
    this.#s.purgeVersions.run(app, name);
    this.#s.purgeSecret.run(app, name);
  }

  /** Soft-deleted secrets whose recovery window has passed. */
  expired(now: number): SecretRow[] {
    return this.#s.expired.all(now);
  }

  replaceSealedKey(app: string, name: string, version: number, sealedKey: Buffer): void {
    this.#s.replaceSealedKey.run(sealedKey, app, name, version);
  }

  #pruneVersions(app: string, name: string): void {
    const secret = this.getSecret(app, name);
    if (!secret) return;
    this.#s.pruneVersions.run(
      app,
      name,
      secret.currentVersion,
      secret.previousVersion ?? -1,
      app,
      name,
      KEPT_VERSIONS,
    );
  }

  // Plain config vars: not secret, kept apart and shown as they are.

  configVars(app: string): Record<string, string> {
    return Object.fromEntries(this.#s.config.all(app).map((row) => [row.key, row.value]));
  }

  listConfig(app: string): { key: string; value: string; updatedAt: number }[] {
    return this.#s.config.all(app);
  }

  setConfigVar(app: string, key: string, value: string, now: number): void {
    this.#s.setConfigVar.run(app, key, value, now);
  }

  unsetConfigVar(app: string, key: string): boolean {
    return this.#s.unsetConfigVar.run(app, key).changes > 0;
  }
}

function statements(db: Database) {
  return {
    keyCheck: db.statement(
      'SELECT check_value FROM secret_master_check WHERE id = 1',
      z.object({ check_value: z.instanceof(Buffer) }),
    ),
    setKeyCheck: db.statement(
      `INSERT INTO secret_master_check (id, check_value, created_at) VALUES (1, ?, ?)
       ON CONFLICT (id) DO UPDATE SET check_value = excluded.check_value, rotated_at = excluded.created_at`,
    ),
    anyVersion: db.statement('SELECT 1 AS one FROM secret_versions LIMIT 1', z.object({ one: z.number() })),
    secret: db.statement('SELECT * FROM secrets WHERE app = ? AND name = ?', secretRow),
    allSecrets: db.statement('SELECT * FROM secrets ORDER BY app, name', secretRow),
    secrets: db.statement('SELECT * FROM secrets WHERE app = ? ORDER BY name', secretRow),
    version: db.statement(
      'SELECT * FROM secret_versions WHERE app = ? AND name = ? AND version = ?',
      versionRow,
    ),
    allVersions: db.statement('SELECT * FROM secret_versions', versionRow),
    insertSecret: db.statement(
      `INSERT INTO secrets (app, name, current_version, previous_version, created_at, updated_at)
       VALUES (?, ?, ?, NULL, ?, ?)`,
    ),
    insertVersion: db.statement(
      `INSERT INTO secret_versions (app, name, version, nonce, ciphertext, sealed_key, created_at, created_by)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    makeCurrent: db.statement(
      `UPDATE secrets SET current_version = ?, previous_version = ?, updated_at = ?, deleted_at = NULL,
         purge_at = NULL WHERE app = ? AND name = ?`,
    ),
    latestVersion: db.statement(
      'SELECT MAX(version) AS version FROM secret_versions WHERE app = ? AND name = ?',
      z.object({ version: z.number().int().nullable() }),
    ),
    setLabels: db.statement(
      'UPDATE secrets SET current_version = ?, previous_version = ?, updated_at = ? WHERE app = ? AND name = ?',
    ),
    setDeleted: db.statement(
      'UPDATE secrets SET deleted_at = ?, purge_at = ?, updated_at = ? WHERE app = ? AND name = ?',
    ),
    purgeVersions: db.statement('DELETE FROM secret_versions WHERE app = ? AND name = ?'),
    purgeSecret: db.statement('DELETE FROM secrets WHERE app = ? AND name = ?'),
    expired: db.statement('SELECT * FROM secrets WHERE purge_at IS NOT NULL AND purge_at <= ?', secretRow),
    replaceSealedKey: db.statement(
      'UPDATE secret_versions SET sealed_key = ? WHERE app = ? AND name = ? AND version = ?',
    ),
    pruneVersions: db.statement(
      `DELETE FROM secret_versions WHERE app = ? AND name = ? AND version NOT IN (?, ?) AND version <= (
         SELECT MAX(version) FROM secret_versions WHERE app = ? AND name = ?) - ?`,
    ),
    config: db.statement(
      'SELECT key, value, updated_at FROM config_vars WHERE app = ? ORDER BY key',
      configRow,
    ),
    setConfigVar: db.statement(
      `INSERT INTO config_vars (app, key, value, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (app, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
    ),
    unsetConfigVar: db.statement('DELETE FROM config_vars WHERE app = ? AND key = ?'),
  };
}
