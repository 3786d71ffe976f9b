// What one kind of add-on server must do for Berth: lay out its data, start, answer, rotate, back up and load.
import { randomBytes } from 'node:crypto';
import type { AddonKind } from '../../domain/addon.js';
import { BerthError } from '../../domain/errors.js';
import { systemClock } from '../../lib/clock.js';
import type { AddonRotation } from './addon-store.js';
import type { ServerUser } from './server-user.js';

/** One add-on's server as its engine sees it. */
export interface ServerContext {
  /** `<data-dir>/addons/<app>/<name>/server`: the server's own files, owned by `user`. */
  dir: string;
  port: number;
  version: string;
  user: ServerUser;
  /** The login the app's URL uses and its password; `admin`: Berth's own password, where the engine needs one. */
  login: string;
  password: string;
  admin: string;
}

export interface AddonEngine {
  readonly kind: AddonKind;
  /** The Debian package that installs the server, for messages. */
  readonly debianPackage: string;
  /**
   * The signal that shuts the server down cleanly without waiting for its clients to leave; SIGTERM unless said.
   */
  readonly stopSignal?: NodeJS.Signals;
  /** The extension of its backup files (`rdb`, `dump`). */
  readonly backupExtension: string;
  /** The login a new add-on's URL uses. */
  readonly initialLogin: string;
  /** Installed major versions, newest first; empty when the server is not installed. */
  versions(): string[];
  /**
   * Lays out fresh data in `ctx.dir` (owned by the server user). With `seed`, a backup of this kind, the data is
   * the backup's where the engine loads it from files (Redis); others load it in `setUp`.
   */
  initialise(ctx: ServerContext, seed: string | undefined, signal: AbortSignal): Promise<void>;
  /** Writes the configuration a start reads (ports, users, paths), and returns the command line to run. */
  prepareStart(ctx: ServerContext): string;
  /** One readiness probe: true once the server accepts Berth's own login. */
  probe(ctx: ServerContext): Promise<boolean>;
  /** After the first start of fresh data: databases and roles, and the seed where it is loaded over the wire. */
  setUp(ctx: ServerContext, seed: string | undefined, signal: AbortSignal): Promise<void>;
  /** The URL the app's services get. */
  url(port: number, login: string, password: string): string;
  /**
   * Makes `password` work beside the current credentials (`ctx.login` / `ctx.password`); returns the login it
   * works with and what `endRotation` revokes once no instance uses the old credentials.
   */
  beginRotation(
    ctx: ServerContext,
    password: string,
  ): Promise<{ login: string; retiring: Omit<AddonRotation, 'since'> }>;
  /** Revokes the retired credentials (and ends the sessions still using them). */
  endRotation(ctx: ServerContext, retiring: Omit<AddonRotation, 'since'>): Promise<void>;
  /** Writes a complete backup to `file` (the caller writes it under a temporary name and renames it). */
  backup(ctx: ServerContext, file: string, signal: AbortSignal): Promise<void>;
  /** Removes what the server kept outside `serverDir` (called after the server stopped for good). */
  forget?(serverDir: string): void;
}

/** A strong password: 256 random bits, URL-safe (it goes into URLs as it is). */
export function generatePassword(): string {
  return randomBytes(32).toString('base64url');
}

/** Deadline of one tool run against a server (psql, pg_restore, BGSAVE): long for big data, never forever. */
export const TOOL_TIMEOUT_MS = 30 * 60_000;

/** Waits `ms`; throws when `signal` aborts (the control plane is stopping), so the operation unwinds. */
export async function pause(ms: number, signal: AbortSignal): Promise<void> {
  await systemClock.sleep(ms, { signal });
  if (signal.aborted) throw new BerthError('runtime_failure', 'stopped: the control plane is stopping');
}
