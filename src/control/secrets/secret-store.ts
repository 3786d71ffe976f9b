// SQL of the secrets tables (migration 2): secrets with their labels, sealed versions, the key check, config vars.
import type Database from 'better-sqlite3';
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

interface RawSecret {
  app: string;
  name: string;
  current_version: number;
  previous_version: number | null;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
  purge_at: number | null;
}

interface RawVersion {
  app: string;
  name: string;
  version: number;
  nonce: Buffer;
  ciphertext: Buffer;
  sealed_key: Buffer;
  created_at: number;
  created_by: string;
}

function toSecret(row: RawSecret): SecretRow {
  return {
    app: row.app,
    name: row.name,
    currentVersion: row.current_version,
    previousVersion: row.previous_version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    deletedAt: row.deleted_at,
    purgeAt: row.purge_at,
  };
}

function toVersion(row: RawVersion): VersionRow {
  return {
    app: row.app,
    name: row.name,
    version: row.version,
    nonce: row.nonce,
    ciphertext: row.ciphertext,
    sealedKey: row.sealed_key,
    createdAt: row.created_at,
    createdBy: row.created_by,
  };
}

/** Versions kept per secret besides the labelled ones (AWS keeps about 100; we need only a short history). */
export const KEPT_VERSIONS = 10;

export class SecretStore {
  readonly #db: Database.Database;

  constructor(db: Database.Database) {
    this.#db = db;
  }

  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn)();
  }

  keyCheck(): Buffer | undefined {
    const row = this.#db.prepare('SELECT check_value FROM secret_master_check WHERE id = 1').get() as
      | { check_value: Buffer }
      | undefined;
    return row?.check_value;
  }

  setKeyCheck(check: Buffer, now: number): void {
    this.#db
      .prepare(
        `INSERT INTO secret_master_check (id, check_value, created_at) VALUES (1, ?, ?)
         ON CONFLICT (id) DO UPDATE SET check_value = excluded.check_value, rotated_at = excluded.created_at`,
      )
      .run(check, now);
  }

  /** True when any secret version exists (then a missing master key must not be replaced by a new one). */
  hasVersions(): boolean {
    return this.#db.prepare('SELECT 1 FROM secret_versions LIMIT 1').get() !== undefined;
  }

  getSecret(app: string, name: string): SecretRow | undefined {
    const row = this.#db.prepare('SELECT * FROM secrets WHERE app = ? AND name = ?').get(app, name) as
      | RawSecret
      | undefined;
    return row && toSecret(row);
  }

  /** Secrets of one app (or all), soft-deleted ones included. */
  listSecrets(app?: string): SecretRow[] {
    const rows = (
      app === undefined
        ? this.#db.prepare('SELECT * FROM secrets ORDER BY app, name').all()
        : this.#db.prepare('SELECT * FROM secrets WHERE app = ? ORDER BY name').all(app)
    ) as RawSecret[];
    return rows.map(toSecret);
  }

  getVersion(app: string, name: string, version: number): VersionRow | undefined {
    const row = this.#db
      .prepare('SELECT * FROM secret_versions WHERE app = ? AND name = ? AND version = ?')
      .get(app, name, version) as RawVersion | undefined;
    return row && toVersion(row);
  }

  listAllVersions(): VersionRow[] {
    return (this.#db.prepare('SELECT * FROM secret_versions').all() as RawVersion[]).map(toVersion);
  }

  /** Adds a version and makes it current (the old current becomes previous), restoring a soft-deleted secret. */
  addVersion(version: VersionRow): void {
    const existing = this.getSecret(version.app, version.name);
    if (!existing) {
      this.#db
        .prepare(
          `INSERT INTO secrets (app, name, current_version, previous_version, created_at, updated_at)
           VALUES (?, ?, ?, NULL, ?, ?)`,
        )
        .run(version.app, version.name, version.version, version.createdAt, version.createdAt);
    }
    this.#db
      .prepare(
        `INSERT INTO secret_versions (app, name, version, nonce, ciphertext, sealed_key, created_at, created_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
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
      this.#db
        .prepare(
          `UPDATE secrets SET current_version = ?, previous_version = ?, updated_at = ?, deleted_at = NULL,
             purge_at = NULL WHERE app = ? AND name = ?`,
        )
        .run(version.version, existing.currentVersion, version.createdAt, version.app, version.name);
    }
    this.#pruneVersions(version.app, version.name);
  }

  nextVersion(app: string, name: string): number {
    const row = this.#db
      .prepare('SELECT MAX(version) AS version FROM secret_versions WHERE app = ? AND name = ?')
      .get(app, name) as { version: number | null };
    return (row.version ?? 0) + 1;
  }

  setLabels(app: string, name: string, current: number, previous: number | null, now: number): void {
    this.#db
      .prepare(
        'UPDATE secrets SET current_version = ?, previous_version = ?, updated_at = ? WHERE app = ? AND name = ?',
      )
      .run(current, previous, now, app, name);
  }

  setDeleted(app: string, name: string, deletedAt: number | null, purgeAt: number | null): void {
    this.#db
      .prepare('UPDATE secrets SET deleted_at = ?, purge_at = ?, updated_at = ? WHERE app = ? AND name = ?')
      .run(deletedAt, purgeAt, deletedAt ?? Date.now(), app, name);
  }

  purge(app: string, name: string): void {
    this.#db.prepare('DELETE FROM secret_versions WHERE app = ? AND name = ?').run(app, name);
    this.#db.prepare('DELETE FROM secrets WHERE app = ? AND name = ?').run(app, name);
  }

  /** Soft-deleted secrets whose recovery window has passed. */
  expired(now: number): SecretRow[] {
    return (
      this.#db
        .prepare('SELECT * FROM secrets WHERE purge_at IS NOT NULL AND purge_at <= ?')
        .all(now) as RawSecret[]
    ).map(toSecret);
  }

  replaceSealedKey(app: string, name: string, version: number, sealedKey: Buffer): void {
    this.#db
      .prepare('UPDATE secret_versions SET sealed_key = ? WHERE app = ? AND name = ? AND version = ?')
      .run(sealedKey, app, name, version);
  }

  #pruneVersions(app: string, name: string): void {
    const secret = this.getSecret(app, name);
    if (!secret) return;
    this.#db
      .prepare(
        `DELETE FROM secret_versions WHERE app = ? AND name = ? AND version NOT IN (?, ?) AND version <= (
           SELECT MAX(version) FROM secret_versions WHERE app = ? AND name = ?) - ?`,
      )
      .run(app, name, secret.currentVersion, secret.previousVersion ?? -1, app, name, KEPT_VERSIONS);
  }

  // Plain config vars: not secret, kept apart and shown as they are.

  configVars(app: string): Record<string, string> {
    const rows = this.#db
      .prepare('SELECT key, value FROM config_vars WHERE app = ? ORDER BY key')
      .all(app) as {
      key: string;
      value: string;
    }[];
    return Object.fromEntries(rows.map((row) => [row.key, row.value]));
  }

  listConfig(app: string): { key: string; value: string; updatedAt: number }[] {
    return (
      this.#db
        .prepare('SELECT key, value, updated_at FROM config_vars WHERE app = ? ORDER BY key')
        .all(app) as {
        key: string;
        value: string;
        updated_at: number;
      }[]
    ).map((row) => ({ key: row.key, value: row.value, updatedAt: row.updated_at }));
  }

  setConfigVar(app: string, key: string, value: string, now: number): void {
    this.#db
      .prepare(
        `INSERT INTO config_vars (app, key, value, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (app, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      )
      .run(app, key, value, now);
  }

  unsetConfigVar(app: string, key: string): boolean {
    return this.#db.prepare('DELETE FROM config_vars WHERE app = ? AND key = ?').run(app, key).changes > 0;
  }
}
