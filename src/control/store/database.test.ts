// The database: per-owner migrations, the earlier single ledger carried over, after-commit hooks, checked rows.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { z } from 'zod';
import { Database } from './database.js';

describe('Database', () => {
  it("applies each owner's migrations once, in version order, whatever order they are listed in", () => {
    const db = Database.open(':memory:');
    const migrations = [
      { version: 2, name: 'b', sql: 'ALTER TABLE t ADD COLUMN b TEXT' },
      { version: 1, name: 'a', sql: 'CREATE TABLE t (a TEXT)' },
    ];
    db.migrate('mine', migrations);
    db.migrate('mine', migrations);
    db.migrate('other', [{ version: 1, name: 'x', sql: 'CREATE TABLE u (x TEXT)' }]);
    assert.deepEqual(db.schemaVersions(), { mine: 2, other: 1 });
    db.statement('INSERT INTO t (a, b) VALUES (?, ?)').run('1', '2');
  });

  it('carries the single numbered ledger of earlier versions over to the owners of each migration', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'berth-db-')), 'state.db');
    const legacy = new BetterSqlite3(path);
    legacy.exec(
      'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)',
    );
    for (const version of [1, 2, 3, 4, 5]) {
      legacy.prepare('INSERT INTO schema_migrations VALUES (?, ?, 0)').run(version, `m${version}`);
    }
    legacy.close();
    const db = Database.open(path);
    assert.deepEqual(db.schemaVersions(), {
      alarms: 1,
      drains: 1,
      events: 1,
      metrics: 1,
      pipeline: 1,
      secrets: 1,
      store: 3,
    });
  });

  it('refuses a database whose earlier ledger has a migration this version does not know', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'berth-db-')), 'state.db');
    const legacy = new BetterSqlite3(path);
    legacy.exec(
      'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)',
    );
    legacy.prepare('INSERT INTO schema_migrations VALUES (9, ?, 0)').run('from the future');
    legacy.close();
    assert.throws(
      () => Database.open(path),
      /migration 9 \(from the future\), which this version of Berth does not know/,
    );
  });

  it('runs after-commit hooks once the outer transaction commits, and drops them when it rolls back', () => {
    const db = Database.open(':memory:');
    db.migrate('t', [{ version: 1, name: 't', sql: 'CREATE TABLE t (a INTEGER)' }]);
    const ran: string[] = [];
    db.transaction(() => {
      db.transaction(() => db.afterCommit(() => ran.push('inner')));
      db.afterCommit(() => ran.push('outer'));
      assert.deepEqual(ran, [], 'nothing runs before the commit');
    });
    assert.deepEqual(ran, ['inner', 'outer']);
    assert.throws(() =>
      db.transaction(() => {
        db.statement('INSERT INTO t VALUES (1)').run();
        db.afterCommit(() => ran.push('lost'));
        throw new Error('roll back');
      }),
    );
    assert.deepEqual(ran, ['inner', 'outer']);
    assert.equal(db.statement('SELECT COUNT(*) AS n FROM t', z.object({ n: z.number() })).get()?.n, 0);
    db.afterCommit(() => ran.push('now'));
    assert.deepEqual(ran, ['inner', 'outer', 'now']);
  });

  it('checks rows at the boundary and names the statement when one is not what the code expects', () => {
    const db = Database.open(':memory:');
    db.migrate('t', [{ version: 1, name: 't', sql: "CREATE TABLE t (a TEXT); INSERT INTO t VALUES ('x')" }]);
    const wrong = db.statement('SELECT a FROM t', z.object({ a: z.number() }));
    assert.throws(() => wrong.all(), /unexpected row from `SELECT a FROM t`: a: /);
  });
});
