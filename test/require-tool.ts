// Skips a test whose external tool is missing, with a one-line reason naming the Debian package that provides it.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const found = new Map<string, boolean>();

function onPath(command: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // Not in this directory.
    }
  }
  return false;
}

/**
 * `false` when `command` is on PATH, else the reason to skip: `it('…', { skip: requireTool('promtool', 'prometheus') })`.
 * Tests spawn the tool by name, so PATH is what counts (Debian keeps daemons in /usr/sbin, on root's PATH).
 */
export function requireTool(command: string, debianPackage: string): string | false {
  if (!found.has(command)) found.set(command, onPath(command));
  return found.get(command) ? false : `${command} not found on PATH (Debian package ${debianPackage})`;
}
