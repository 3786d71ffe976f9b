// One owner per data directory: the control plane (or a restore) holds `<data-dir>/control.lock` while it runs,
// and a second one is refused before it touches anything, with the running one's pid and URL.
import { mkdirSync } from 'node:fs';
import { type ControlEndpoint, controlPaths } from '../domain/data-dir.js';
import { BerthError } from '../domain/errors.js';
import { FileLock } from '../lib/file-lock.js';
import { isRunning, readPidFile } from '../lib/process-identity.js';

/**
 * Takes the data directory's lock, or throws `conflict` naming who holds it. `doing` completes the refusal:
 * e.g. "start a second control plane".
 */
export function lockDataDir(dataDir: string, doing: string): FileLock {
  const paths = controlPaths(dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const lock = FileLock.tryAcquire(paths.lock);
  if (lock) return lock;
  throw new BerthError('conflict', `refusing to ${doing}: ${describeOwner(dataDir)}`);
}

/** Who holds the lock of `dataDir`, in words, from what it recorded in control.json. */
export function describeOwner(dataDir: string): string {
  const owner = readPidFile<ControlEndpoint>(controlPaths(dataDir).endpoint);
  if (owner === undefined || !isRunning(owner)) {
    return `another Berth process holds the data directory ${dataDir} (it is starting, stopping or restoring)`;
  }
  const where = owner.url ? `its API is ${owner.url}` : 'it is still starting';
  return `Berth already runs on the data directory ${dataDir} (control plane pid ${owner.pid}; ${where}). Use that one, stop it first (\`berth stop\`), or give this one another --data-dir`;
}
