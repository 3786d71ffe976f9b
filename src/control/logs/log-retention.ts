// Keeps the history of ended instances bounded: their records by age and count per service, their log files by age
// and per-app size, oldest first (events stay: they say what happened to a pruned instance).
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isLive } from '../../domain/instance.js';
import type { Logger } from '../../lib/logger.js';
import { every, type Ticker } from '../../lib/ticker.js';
import { DEFAULT_INSTANCE_HISTORY, type InstanceHistory, type Store } from '../store/store.js';

export interface LogRetentionPolicy {
  /** Files of ended instances not written for this long are deleted. */
  maxAgeMs: number;
  /** Per app, files of ended instances are deleted oldest first until the app's files fit. */
  maxBytesPerApp: number;
}

export const DEFAULT_LOG_RETENTION: LogRetentionPolicy = {
  maxAgeMs: 7 * 24 * 3_600_000,
  maxBytesPerApp: 1024 * 1024 * 1024,
};

interface LogFile {
  path: string;
  instance: string;
  size: number;
  mtime: number;
}

export interface LogRetentionOptions {
  store: Store;
  logDir: string;
  log: Logger;
  policy?: LogRetentionPolicy;
  /** How many ended instances' records are kept; `DEFAULT_INSTANCE_HISTORY` by default. */
  history?: InstanceHistory;
  now?: () => number;
}

export class LogRetention {
  readonly #options: LogRetentionOptions;
  readonly #policy: LogRetentionPolicy;
  #ticker: Ticker | undefined;

  constructor(options: LogRetentionOptions) {
    this.#options = options;
    this.#policy = options.policy ?? DEFAULT_LOG_RETENTION;
  }

  start(everyMs = 60_000): void {
    this.#ticker ??= every(everyMs, () => void this.enforce(), {
      name: 'log retention',
      log: this.#options.log,
    });
  }

  async stop(): Promise<void> {
    await this.#ticker?.stop();
    this.#ticker = undefined;
  }

  /**
   * One pass over every app directory. A live instance's file is never deleted (its process holds it open and
   * the shim appends to it), so the size cap can be exceeded by live output alone. Returns the deleted paths.
   */
  enforce(): string[] {
    const now = (this.#options.now ?? Date.now)();
    const history = this.#options.history ?? DEFAULT_INSTANCE_HISTORY;
    // Ended rows would otherwise pile up forever (a crash loop writes one a minute); the hot queries do not read
    // them (indexes), but `berth ps --all`, backups and the file itself grow with them.
    const pruned = this.#options.store.pruneEndedInstances(now - history.maxAgeMs, history.maxPerService);
    if (pruned > 0) this.#options.log.info({ instances: pruned }, 'history retention pruned ended instances');
    const deleted: string[] = [];
    let apps: string[];
    try {
      apps = readdirSync(this.#options.logDir);
    } catch {
      return deleted;
    }
    for (const app of apps) {
      const dir = join(this.#options.logDir, app);
      const files: LogFile[] = [];
      try {
        for (const name of readdirSync(dir)) {
          // Output (`.log`) and the shim's exit record (`.exit`) of each instance.
          if (!name.endsWith('.log') && !name.endsWith('.exit')) continue;
          const path = join(dir, name);
          const stat = statSync(path);
          if (!stat.isFile()) continue;
          // `<id>.log`, `<id>.exit`, or the older `<id>.out.log` / `<id>.err.log`.
          const instance = name.replace(/\.(out|err)\.log$|\.log$|\.exit$/, '');
          files.push({ path, instance, size: stat.size, mtime: stat.mtimeMs });
        }
      } catch {
        continue;
      }
      const live = (file: LogFile): boolean => {
        const instance = this.#options.store.getInstance(file.instance);
        return instance !== undefined && isLive(instance.state);
      };
      const removable = files.filter((f) => !live(f)).sort((a, b) => a.mtime - b.mtime);
      let total = files.reduce((sum, f) => sum + f.size, 0);
      for (const file of removable) {
        const tooOld = now - file.mtime > this.#policy.maxAgeMs;
        if (!tooOld && total <= this.#policy.maxBytesPerApp) continue;
        rmSync(file.path, { force: true });
        total -= file.size;
        deleted.push(file.path);
      }
    }
    if (deleted.length > 0) this.#options.log.info({ files: deleted.length }, 'log retention deleted files');
    return deleted;
  }
}
