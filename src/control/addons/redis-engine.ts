// Redis add-ons: redis-server with AOF persistence, ACL users with hashed passwords, BGSAVE backups.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError } from '../../domain/errors.js';
import { shellCommand } from '../../lib/shell-quote.js';
import { type AddonEngine, pause, type ServerContext, TOOL_TIMEOUT_MS } from './addon-engine.js';
import type { AddonRotation } from './addon-store.js';
import { parseInfo, RedisConnection, RedisReplyError } from './redis-connection.js';
import { ensureServerDir, giveToServer } from './server-user.js';

/** Berth's own ACL user: the app's `default` user gets everything but the administrative commands. */
export const REDIS_ADMIN_USER = 'berth';

const REDIS_SERVER = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((path) =>
  existsSync(path),
);

/** SHA-256 of a password, as Redis's ACL file keeps it (`#<hex>`): the file never holds a password. */
export function aclHash(password: string): string {
  return createHash('sha256').update(password).digest('hex');
}

/**
 * The ACL file: the app's `default` user (everything except `@admin`: CONFIG, ACL, SHUTDOWN, DEBUG, BGSAVE...)
 * and Berth's `berth` user. Only password hashes are written.
 */
export function aclFile(appPassword: string, adminPassword: string): string {
  return [
    `user default on #${aclHash(appPassword)} ~* &* +@all -@admin`,
    `user ${REDIS_ADMIN_USER} on #${aclHash(adminPassword)} ~* &* +@all`,
    '',
  ].join('\n');
}

/** The configuration Berth writes before each start: loopback only, AOF on, ACLs from their file. */
export function redisConfig(dir: string, port: number): string {
  return [
    '# Written by Berth before each start of this add-on; edits are overwritten.',
    'bind 127.0.0.1',
    `port ${port}`,
    'protected-mode yes',
    `dir ${dir}`,
    'dbfilename dump.rdb',
    'appendonly yes',
    'appenddirname appendonlydir',
    'appendfsync everysec',
    `aclfile ${join(dir, 'users.acl')}`,
    'daemonize no',
    'supervised no',
    'logfile ""',
    'always-show-logo no',
    '',
  ].join('\n');
}

export class RedisEngine implements AddonEngine {
  readonly kind = 'redis' as const;
  readonly debianPackage = 'redis-server';
  readonly backupExtension = 'rdb';
  readonly initialLogin = 'default';
  #versions: string[] | undefined;

  versions(): string[] {
    if (this.#versions === undefined) {
      this.#versions = [];
      if (REDIS_SERVER !== undefined) {
        try {
          const text = execFileSync(REDIS_SERVER, ['--version'], { encoding: 'utf8' });
          const major = /v=(\d+)\./.exec(text)?.[1];
          if (major !== undefined) this.#versions = [major];
        } catch {
          // Not runnable: not installed as far as Berth is concerned.
        }
      }
    }
    return this.#versions;
  }

  async initialise(ctx: ServerContext, seed: string | undefined): Promise<void> {
    ensureServerDir(ctx.user, ctx.dir);
    const acl = join(ctx.dir, 'users.acl');
    writeFileSync(acl, aclFile(ctx.password, ctx.admin), { mode: 0o600 });
    giveToServer(ctx.user, acl);
    if (seed === undefined) return;
    // Redis 7's multi-part AOF: a manifest naming an RDB file as the base is loaded as the dataset, and the
    // server goes on appending to it. (An RDB beside an empty AOF would be ignored: AOF takes precedence.)
    const aofDir = join(ctx.dir, 'appendonlydir');
    ensureServerDir(ctx.user, aofDir);
    const base = join(aofDir, 'appendonly.aof.1.base.rdb');
    copyFileSync(seed, base);
    const manifest = join(aofDir, 'appendonly.aof.manifest');
    writeFileSync(manifest, 'file appendonly.aof.1.base.rdb seq 1 type b\n', { mode: 0o600 });
    for (const file of [base, manifest]) giveToServer(ctx.user, file);
  }

  prepareStart(ctx: ServerContext): string {
    if (REDIS_SERVER === undefined)
      throw new BerthError('runtime_failure', 'redis-server is not installed (Debian package redis-server)');
    const config = join(ctx.dir, 'redis.conf');
    writeFileSync(config, redisConfig(ctx.dir, ctx.port), { mode: 0o600 });
    giveToServer(ctx.user, config);
    return shellCommand([...ctx.user.prefix, REDIS_SERVER, config]);
  }

  async probe(ctx: ServerContext): Promise<boolean> {
    let connection: RedisConnection | undefined;
    try {
      connection = await this.#admin(ctx, 1000);
      return (await connection.command(['PING'])) === 'PONG';
    } catch {
      return false;
    } finally {
      connection?.close();
    }
  }

  async setUp(ctx: ServerContext): Promise<void> {
    // The users are in the ACL file from the start; check that the app's login works as the URL will say.
    const connection = await RedisConnection.open(ctx.port, { user: ctx.login, password: ctx.password });
    connection.close();
  }

  url(port: number, login: string, password: string): string {
    return `redis://${login}:${password}@127.0.0.1:${port}`;
  }

  async beginRotation(
    ctx: ServerContext,
    password: string,
  ): Promise<{ login: string; retiring: Omit<AddonRotation, 'since'> }> {
    // A user may have several passwords: the new one works beside the old until the old one is revoked.
    await this.#acl(ctx, ['ACL', 'SETUSER', ctx.login, `#${aclHash(password)}`]);
    return { login: ctx.login, retiring: { login: ctx.login, passwordHash: aclHash(ctx.password) } };
  }

  async endRotation(ctx: ServerContext, retiring: Omit<AddonRotation, 'since'>): Promise<void> {
    if (retiring.passwordHash === undefined) return;
    await this.#acl(ctx, ['ACL', 'SETUSER', retiring.login, `!${retiring.passwordHash}`]);
  }

  /** `BGSAVE`, wait for it to finish, copy the RDB it wrote. */
  async backup(ctx: ServerContext, file: string, signal: AbortSignal): Promise<void> {
    const connection = await this.#admin(ctx, 10_000);
    try {
      const info = async (): Promise<Record<string, string>> =>
        parseInfo(String(await connection.command(['INFO', 'persistence'])));
      const before = Number((await info())['rdb_saves'] ?? 0);
      // SCHEDULE: if an AOF rewrite is under way, the save starts when it ends instead of being refused.
      for (;;) {
        try {
          await connection.command(['BGSAVE', 'SCHEDULE']);
          break;
        } catch (error) {
          // Another save is under way (a scheduled one, or Redis's own `save` points): ours follows it.
          if (!(error instanceof RedisReplyError) || !/in progress/i.test(error.message)) throw error;
          await pause(50, signal);
        }
      }
      const deadline = Date.now() + TOOL_TIMEOUT_MS;
      for (;;) {
        const now = await info();
        if (now['rdb_bgsave_in_progress'] === '0' && now['aof_rewrite_scheduled'] !== '1') {
          if (Number(now['rdb_saves'] ?? 0) > before && now['rdb_last_bgsave_status'] === 'ok') break;
          if (now['rdb_last_bgsave_status'] === 'err')
            throw new BerthError('runtime_failure', 'BGSAVE failed; the server log says why');
        }
        if (Date.now() > deadline)
          throw new BerthError('runtime_failure', 'BGSAVE did not finish within 30 min');
        await pause(25, signal);
      }
    } finally {
      connection.close();
    }
    // Redis renames a finished save over dump.rdb: a copy reads one whole file, whatever happens meanwhile.
    await copyFile(join(ctx.dir, 'dump.rdb'), file);
  }

  async #acl(ctx: ServerContext, command: string[]): Promise<void> {
    const connection = await this.#admin(ctx, 10_000);
    try {
      await connection.command(command);
      await connection.command(['ACL', 'SAVE']);
    } finally {
      connection.close();
    }
  }

  #admin(ctx: ServerContext, timeoutMs: number): Promise<RedisConnection> {
    return RedisConnection.open(ctx.port, { user: REDIS_ADMIN_USER, password: ctx.admin, timeoutMs });
  }
}
