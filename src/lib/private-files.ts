// Files and directories only their owner can read, whatever the umask and whatever mode they already had.
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';

/** Creates `path` (and its parents) if needed and makes it mode 0700. */
export function ensurePrivateDir(path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  chmodSync(path, 0o700);
}

/** Creates `path` empty if needed and makes it mode 0600; with `onlyIfExists`, only fixes the mode of a file that exists. */
export function ensurePrivateFile(path: string, options: { onlyIfExists?: boolean } = {}): void {
  if (options.onlyIfExists && !existsSync(path)) return;
  closeSync(openSync(path, 'a', 0o600));
  chmodSync(path, 0o600);
}
