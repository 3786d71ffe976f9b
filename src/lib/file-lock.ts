// An exclusive lock on a file, held by this process until it closes the lock or dies (even by SIGKILL).
//
// Node has no flock(2). The lock is SQLite's: a connection in `locking_mode = EXCLUSIVE` that has written once
// keeps its POSIX write lock (fcntl) on the file until it is closed, and the kernel drops such locks when the
// process ends, however it ends. So there is no stale lock to detect, no pid to trust, no helper process that
// could die on its own (as with a child running flock(1)), and no race between two starters (as with an O_EXCL
// file that must be removed when stale). The lock is not inherited by child processes. better-sqlite3 is
// already a dependency; the file is a tiny SQLite database used only for its lock.
import { closeSync, existsSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';

export class FileLock {
  readonly path: string;
  #db: Database.Database | undefined;

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.#db = db;
  }

  /** Takes the lock on `path` (created, mode 0600, if missing), or returns undefined at once if another holds it. */
  static tryAcquire(path: string): FileLock | undefined {
    // Never open and close a file this process may hold locked: closing any descriptor of a file drops the
    // process's POSIX locks on it. Only a missing file is created here (mode 0600).
    if (!existsSync(path)) {
      try {
        closeSync(openSync(path, 'wx', 0o600));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
    }
    const db = new Database(path, { timeout: 0 });
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      // The first write takes the exclusive lock, which EXCLUSIVE mode then keeps until close.
      db.exec('CREATE TABLE IF NOT EXISTS lock (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL)');
      db.prepare(
        'INSERT INTO lock (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at',
      ).run(Date.now());
      return new FileLock(path, db);
    } catch (error) {
      db.close();
      if ((error as { code?: string }).code === 'SQLITE_BUSY') return undefined;
      throw error;
    }
  }

  get held(): boolean {
    return this.#db !== undefined;
  }

  release(): void {
    this.#db?.close();
    this.#db = undefined;
  }
}
