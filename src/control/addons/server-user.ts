// Who add-on servers run as: Berth's own user, or (Berth running as root) a dedicated unprivileged system user.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, resolve } from 'node:path';
import { BerthError } from '../../domain/errors.js';

/** The system user a root Berth runs add-on servers as; `BERTH_ADDON_USER` names another. */
export const DEFAULT_ADDON_USER = 'berth-addons';
export const ADDON_USER_ENV = 'BERTH_ADDON_USER';

/** util-linux's `setpriv` (Debian: essential), which drops to the server user and keeps the parent-death signal. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((path) => existsSync(path));

export interface ServerUser {
  name: string;
  uid: number;
  gid: number;
  /** True when servers run as another user than Berth (Berth is root). */
  dropsPrivileges: boolean;
  /**
   * The argv prefix that runs a program as this user: `setpriv --reuid … --pdeathsig KILL --`, or nothing. The
   * parent-death signal is set again after the change of user (which clears it), so a server still dies with its
   * supervising shim.
   */
  prefix: string[];
}

/**
 * PostgreSQL refuses to run as root, and a database server should not have root's rights anyway: a root Berth runs
 * every add-on server as `berth-addons` (created with `useradd --system` on first use), a non-root Berth as itself.
 */
export function resolveServerUser(env: NodeJS.ProcessEnv = process.env): ServerUser {
  const self = userInfo();
  if (self.uid !== 0) {
    return { name: self.username, uid: self.uid, gid: self.gid, dropsPrivileges: false, prefix: [] };
  }
  const name = env[ADDON_USER_ENV] ?? DEFAULT_ADDON_USER;
  let entry = lookUpUser(name);
  if (entry === undefined) {
    try {
      execFileSync(
        'useradd',
        [
          '--system',
          '--user-group',
          '--no-create-home',
          '--home-dir',
          '/nonexistent',
          '--shell',
          '/usr/sbin/nologin',
          name,
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
    } catch (error) {
      throw new BerthError(
        'runtime_failure',
        `add-on servers run as the unprivileged user ${name} when Berth runs as root, and it could not be created (useradd: ${String((error as { stderr?: Buffer }).stderr ?? (error as Error).message).trim()}); create it, or name another with ${ADDON_USER_ENV}`,
        { cause: error },
      );
    }
    entry = lookUpUser(name);
  }
  if (entry === undefined || entry.uid === 0) {
    throw new BerthError('runtime_failure', `${ADDON_USER_ENV}=${name} must name an unprivileged user`);
  }
  if (SETPRIV === undefined) {
    throw new BerthError(
      'runtime_failure',
      'add-on servers need setpriv (Debian package util-linux) to run as an unprivileged user',
    );
  }
  return {
    name,
    uid: entry.uid,
    gid: entry.gid,
    dropsPrivileges: true,
    prefix: [
      SETPRIV,
      `--reuid=${entry.uid}`,
      `--regid=${entry.gid}`,
      '--init-groups',
      '--inh-caps=-all',
      '--pdeathsig',
      'KILL',
      '--',
    ],
  };
}

function lookUpUser(name: string): { uid: number; gid: number } | undefined {
  try {
    const line = execFileSync('getent', ['passwd', name], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const [, , uid, gid] = line.trim().split(':');
    return { uid: Number(uid), gid: Number(gid) };
  } catch {
    return undefined;
  }
}

/** Creates `path` (mode 0700) owned by the server user: its data, config and sockets. */
export function ensureServerDir(user: ServerUser, path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  chmodSync(path, 0o700);
  if (user.dropsPrivileges) chownSync(path, user.uid, user.gid);
}

/** Hands a file Berth wrote to the server user (a config it reads). */
export function giveToServer(user: ServerUser, path: string): void {
  if (user.dropsPrivileges) chownSync(path, user.uid, user.gid);
}

/**
 * Makes sure the server user can reach `target` (a directory inside Berth's data dir) by path. Directories from
 * `from` (Berth's own, e.g. `<data-dir>/addons`) down are made passable for the server user's group only (0710,
 * group: the server user's); the data directory and everything above it must already let it through, else the
 * refusal names the directory that does not and how to fix it. A non-root Berth runs servers as itself: nothing to do.
 */
export function ensurePassage(user: ServerUser, dataDir: string, owned: readonly string[]): void {
  if (!user.dropsPrivileges) return;
  for (const dir of owned) {
    mkdirSync(dir, { recursive: true, mode: 0o710 });
    const stat = statSync(dir);
    if (stat.gid !== user.gid) chownSync(dir, stat.uid, user.gid);
    chmodSync(dir, (stat.mode & 0o700) | 0o010);
  }
  // The data directory itself is Berth's: when only its owner may pass, its group becomes the server user's.
  const data = resolve(dataDir);
  if (!passable(user, data)) {
    const stat = statSync(data);
    if (stat.uid === process.getuid?.()) {
      chownSync(data, stat.uid, user.gid);
      chmodSync(data, (stat.mode & 0o7777) | 0o010);
    }
  }
  for (let dir = data; ; dir = dirname(dir)) {
    if (!passable(user, dir)) {
      const mode = (statSync(dir).mode & 0o777).toString(8).padStart(4, '0');
      throw new BerthError(
        'runtime_failure',
        `add-on servers run as the unprivileged user ${user.name}, which cannot reach Berth's data directory ${data}: ${dir} (mode ${mode}) does not let it through. ` +
          `Use a data directory it can reach (e.g. BERTH_HOME=/var/lib/berth, as a systemd install does), let it pass (setfacl -m u:${user.name}:x ${dir}), or run Berth as an unprivileged user`,
      );
    }
    if (dir === dirname(dir)) break;
  }
}

/** Whether `user` may search (traverse) directory `dir`, judged by its owner, group and mode bits. */
function passable(user: ServerUser, dir: string): boolean {
  const stat = statSync(dir);
  if (stat.uid === user.uid) return (stat.mode & 0o100) !== 0;
  if (stat.gid === user.gid || groupsOf(user).includes(stat.gid)) return (stat.mode & 0o010) !== 0;
  return (stat.mode & 0o001) !== 0;
}

const groupCache = new Map<string, number[]>();

function groupsOf(user: ServerUser): number[] {
  let groups = groupCache.get(user.name);
  if (groups === undefined) {
    try {
      groups = execFileSync('id', ['-G', user.name], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
    } catch {
      groups = [user.gid];
    }
    groupCache.set(user.name, groups);
  }
  return groups;
}
