// The SQLite connection: migrations per owning module, transactions with after-commit hooks, checked rows.
import BetterSqlite3 from 'better-sqlite3';
import type { z } from 'zod';
import { BerthError } from '../../domain/errors.js';

/** One numbered schema change of one module. A migration once landed is never edited. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Parameters of a statement: positional values, or one object of named ones (`@name`). */
type Params = unknown[];

/**
 * A prepared statement whose rows are checked against `row` as they leave the database, so a column that is
 * not what the code expects fails here, naming the statement, instead of somewhere downstream.
 */
export class Statement<Row> {
  readonly #statement: BetterSqlite3.Statement;
  readonly #row: z.ZodType<Row> | undefined;
  readonly #sql: string;
  readonly #db: Database;

  constructor(
    db: Database,
    statement: BetterSqlite3.Statement,
    sql: string,
    row: z.ZodType<Row> | undefined,
  ) {
    this.#db = db;
    this.#statement = statement;
    this.#sql = sql;
    this.#row = row;
  }

  get(...params: Params): Row | undefined {
    this.#db.observe(this.#sql, params);
    const raw = this.#statement.get(...params);
    return raw === undefined ? undefined : this.#check(raw);
  }

  all(...params: Params): Row[] {
    this.#db.observe(this.#sql, params);
    return this.#statement.all(...params).map((raw) => this.#check(raw));
  }

  run(...params: Params): { changes: number; lastInsertRowid: number } {
    this.#db.observe(this.#sql, params);
    const result = this.#statement.run(...params);
    return { changes: result.changes, lastInsertRowid: Number(result.lastInsertRowid) };
  }

  /** True when this statement checks its rows against `row` (the same schema object, or none). */
  checks(row: z.ZodType<unknown> | undefined): boolean {
    return this.#row === row;
  }

  #check(raw: unknown): Row {
    if (this.#row === undefined) return raw as Row;
    const parsed = this.#row.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new BerthError(
        'internal',
        `unexpected row from \`${this.#sql.replace(/\s+/g, ' ').slice(0, 80)}\`: ${issue?.path.join('.')}: ${issue?.message}`,
      );
    }
    return parsed.data;
  }
}

/**
 * Which owners' migrations the single numbered list of earlier versions (table `schema_migrations`) had applied:
 * that list is carried over once into the per-owner ledger.
 */
const LEGACY_VERSIONS: Record<number, [owner: string, version: number][]> = {
  1: [
    ['store', 1],
    ['events', 1],
  ],
  2: [
    ['store', 2],
    ['secrets', 1],
  ],
  3: [
    ['metrics', 1],
    ['alarms', 1],
    ['drains', 1],
  ],
  4: [['store', 3]],
  5: [['pipeline', 1]],
};

/**
 * The state database (one SQLite file, WAL). It is handed to repositories only: each owns its tables, applies its
 * own migrations (`migrate(owner, ...)`) and prepares its own statements; nobody else reads those tables.
 */
export class Database {
  readonly #db: BetterSqlite3.Database;
  readonly #now: () => number;
  #depth = 0;
  #afterCommit: (() => void)[] = [];
  /** Prepared statements by their SQL: a query built per call (a filter's variant) is prepared once. */
  readonly #prepared = new Map<string, Statement<unknown>>();
  #planObserver: ((sql: string, plan: string[]) => void) | undefined;

  private constructor(db: BetterSqlite3.Database, now: () => number) {
    this.#db = db;
    this.#now = now;
  }

  /** Opens (creating) the database at `path`; `:memory:` for a throwaway one. */
  static open(path: string, options: { now?: () => number } = {}): Database {
    const db = new BetterSqlite3(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    const database = new Database(db, options.now ?? Date.now);
    database.#prepareLedger();
    return database;
  }

  close(): void {
    this.#db.close();
  }

  /** A consistent copy of the whole database at `path` while it is in use (SQLite's online backup API). */
  async backup(path: string): Promise<void> {
    await this.#db.backup(path);
  }

  get open(): boolean {
    return this.#db.open;
  }

  /**
   * Applies `owner`'s migrations that are not applied yet, in version order, each in its own transaction.
   * Applied by set, not by maximum: migrations written on parallel branches may land out of order.
   */
  migrate(owner: string, migrations: readonly Migration[]): void {
    const applied = new Set(
      (
        this.#db.prepare('SELECT version FROM schema_versions WHERE owner = ?').all(owner) as {
          version: number;
        }[]
      ).map((r) => r.version),
    );
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(migration.version)) continue;
      this.transaction(() => {
        this.#db.exec(migration.sql);
        this.#db
          .prepare('INSERT INTO schema_versions (owner, version, name, applied_at) VALUES (?, ?, ?, ?)')
          .run(owner, migration.version, migration.name, this.#now());
      });
    }
  }

  /** The highest applied migration of each owner. */
  schemaVersions(): Record<string, number> {
    const rows = this.#db
      .prepare('SELECT owner, MAX(version) AS version FROM schema_versions GROUP BY owner ORDER BY owner')
      .all() as { owner: string; version: number }[];
    return Object.fromEntries(rows.map((r) => [r.owner, r.version]));
  }

  /**
   * A prepared statement; with `row`, every row it returns is checked against that schema. The same SQL with the
   * same row schema gives the same prepared statement back, so a repository may build a query per call.
   */
  statement<Row = never>(sql: string, row?: z.ZodType<Row>): Statement<Row> {
    const known = this.#prepared.get(sql) as Statement<Row> | undefined;
    if (known?.checks(row)) return known;
    const statement = new Statement(this, this.#db.prepare(sql), sql, row);
    this.#prepared.set(sql, statement as Statement<unknown>);
    return statement;
  }

  /** True inside `transaction` (what is read there may still be rolled back). */
  get inTransaction(): boolean {
    return this.#db.inTransaction;
  }

  /**
   * Tests: every statement run from now on is first explained (`EXPLAIN QUERY PLAN`, with its parameters) and its
   * plan's lines given to `observer`; that is how the indexes are checked against the queries as they really run.
   */
  explainEach(observer: ((sql: string, plan: string[]) => void) | undefined): void {
    this.#planObserver = observer;
  }

  /** Called by statements before they run. */
  observe(sql: string, params: Params): void {
    if (this.#planObserver === undefined) return;
    const rows = this.#db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[];
    this.#planObserver(
      sql,
      rows.map((row) => row.detail),
    );
  }

  /** Runs `fn` in one transaction (nested calls join the outer one): all of it lands or none of it does. */
  transaction<T>(fn: () => T): T {
    if (this.#depth > 0) return this.#db.transaction(fn)();
    this.#depth++;
    let result: T;
    try {
      result = this.#db.transaction(fn)();
    } catch (error) {
      this.#afterCommit = [];
      throw error;
    } finally {
      this.#depth--;
    }
    const hooks = this.#afterCommit;
    this.#afterCommit = [];
    for (const hook of hooks) hook();
    return result;
  }

  /** Runs `hook` once the current transaction has committed (dropped if it rolls back); at once outside one. */
  afterCommit(hook: () => void): void {
    if (this.#depth > 0) this.#afterCommit.push(hook);
    else hook();
  }

  #prepareLedger(): void {
    this.#db.exec(
      `CREATE TABLE IF NOT EXISTS schema_versions (
         owner TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL, applied_at INTEGER NOT NULL,
         PRIMARY KEY (owner, version))`,
    );
    const legacy = this.#db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
      .get();
    if (legacy === undefined) return;
    const carried = this.#db.prepare(
      'INSERT OR IGNORE INTO schema_versions (owner, version, name, applied_at) VALUES (?, ?, ?, ?)',
    );
    this.transaction(() => {
      const rows = this.#db.prepare('SELECT version, name, applied_at FROM schema_migrations').all() as {
        version: number;
        name: string;
        applied_at: number;
      }[];
      for (const row of rows) {
        const owners = LEGACY_VERSIONS[row.version];
        if (owners === undefined) {
          throw new BerthError(
            'runtime_failure',
            `the state database has migration ${row.version} (${row.name}), which this version of Berth does not know; use the version that wrote it`,
          );
        }
        for (const [owner, version] of owners) carried.run(owner, version, row.name, row.applied_at);
      }
      this.#db.exec('DROP TABLE schema_migrations');
    });
  }
}
