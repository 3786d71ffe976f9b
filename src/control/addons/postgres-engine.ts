// PostgreSQL add-ons: a cluster per add-on (initdb), SCRAM logins that alternate on rotation, pg_dump backups.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { shellCommand } from '../../lib/shell-quote.js';
import { type AddonEngine, type ServerContext, TOOL_TIMEOUT_MS } from './addon-engine.js';
import type { AddonRotation } from './addon-store.js';
import { runTool } from './run-tool.js';
import { ensureServerDir, giveToServer } from './server-user.js';

/** The longest path a Unix socket can have on Linux (`sun_path` is 108 bytes with its terminating NUL). */
const MAX_SOCKET_PATH = 107;

/**
 * The directory of the server's Unix socket (Berth's own admin login connects through it, by peer authentication):
 * the server's `run` directory, or a short one in /tmp named after it when a deep data directory would make the
 * socket's path too long for Linux; PostgreSQL then refuses to start.
 */
export function socketDirectory(serverDir: string): string {
  const own = join(serverDir, 'run');
  if (Buffer.byteLength(join(own, '.s.PGSQL.65535')) <= MAX_SOCKET_PATH) return own;
  return join('/tmp', `berth-pg-${createHash('sha256').update(serverDir).digest('hex').slice(0, 16)}`);
}

const INSTALL_ROOT = '/usr/lib/postgresql';

/** Berth's superuser: reachable only through the server's socket directory (0700), by peer authentication. */
export const POSTGRES_ADMIN = 'berth_admin';
/** The database the app uses, and the role that owns it and everything in it. */
export const POSTGRES_DATABASE = 'app';
/**
 * The two login roles of the app (AWS Secrets Manager's alternating users): both members of `app` and set to act
 * as it, so whatever one creates the other can use. A rotation gives the idle one a new password while the other
 * keeps working, then retires the other.
 */
export const POSTGRES_LOGINS = ['app_blue', 'app_green'] as const;

/** The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677): the password itself never leaves. */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = 4096): string {
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** An SQL string literal. */
function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** Who may connect how: Berth's superuser only by the socket and as Berth's own OS user; the app by SCRAM. */
export function hbaConfig(): string {
  return [
    '# Written by Berth before each start of this add-on; edits are overwritten.',
    `local all ${POSTGRES_ADMIN} peer map=berth`,
    `host all ${POSTGRES_ADMIN} 127.0.0.1/32 reject`,
    `host ${POSTGRES_DATABASE} all 127.0.0.1/32 scram-sha-256`,
    '',
  ].join('\n');
}

export class PostgresEngine implements AddonEngine {
  readonly kind = 'postgres' as const;
  readonly debianPackage = 'postgresql';
  // SIGINT is PostgreSQL's "fast" shutdown (pg_ctl's default): it disconnects the clients, writes a checkpoint and
  // exits. SIGTERM is its "smart" one, which waits for every client to leave: with an app connected, the 30 s stop
  // timeout then ended in SIGKILL and crash recovery at the next start.
  readonly stopSignal = 'SIGINT';
  readonly backupExtension = 'dump';
  readonly initialLogin = POSTGRES_LOGINS[0];

  versions(): string[] {
    if (!existsSync(INSTALL_ROOT)) return [];
    return readdirSync(INSTALL_ROOT)
      .filter((v) => /^\d+$/.test(v) && existsSync(join(INSTALL_ROOT, v, 'bin', 'postgres')))
      .sort((a, b) => Number(b) - Number(a));
  }

  async initialise(ctx: ServerContext, _seed: string | undefined, signal: AbortSignal): Promise<void> {
    ensureServerDir(ctx.user, ctx.dir);
    ensureServerDir(ctx.user, socketDirectory(ctx.dir));
    // initdb refuses root like the server does: it runs as the server user. Auth is set by pg_hba.conf at start.
    await runTool(
      [
        ...ctx.user.prefix,
        this.#bin(ctx, 'initdb'),
        '--pgdata',
        join(ctx.dir, 'data'),
        '--username',
        POSTGRES_ADMIN,
        '--auth-local=peer',
        '--auth-host=reject',
        '--encoding=UTF8',
        '--locale=C.UTF-8',
        '--no-instructions',
      ],
      { cwd: ctx.dir, timeoutMs: 120_000, signal },
    );
  }

  prepareStart(ctx: ServerContext): string {
    // Made again at every start: a socket directory in /tmp does not survive a reboot.
    ensureServerDir(ctx.user, socketDirectory(ctx.dir));
    const data = join(ctx.dir, 'data');
    const hba = join(data, 'pg_hba.conf');
    const ident = join(data, 'pg_ident.conf');
    writeFileSync(hba, hbaConfig(), { mode: 0o600 });
    // Peer authentication maps the OS user Berth runs as (root, or its own user) to its superuser.
    writeFileSync(ident, `berth ${userInfo().username} ${POSTGRES_ADMIN}\n`, { mode: 0o600 });
    for (const file of [hba, ident]) giveToServer(ctx.user, file);
    return shellCommand([
      ...ctx.user.prefix,
      this.#bin(ctx, 'postgres'),
      '-D',
      data,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `port=${ctx.port}`,
      '-c',
      `unix_socket_directories=${socketDirectory(ctx.dir)}`,
      '-c',
      'unix_socket_permissions=0700',
      '-c',
      'password_encryption=scram-sha-256',
    ]);
  }

  async probe(ctx: ServerContext): Promise<boolean> {
    try {
      return (await this.#psql(ctx, 'postgres', 'SELECT 1', 2000)).trim() === '1';
    } catch {
      return false;
    }
  }

  async setUp(ctx: ServerContext, seed: string | undefined, signal: AbortSignal): Promise<void> {
    const [blue, green] = POSTGRES_LOGINS;
    const statements = [
      `CREATE ROLE ${POSTGRES_DATABASE} NOLOGIN`,
      ...[blue, green].map((login) =>
        login === ctx.login
          ? `CREATE ROLE ${login} LOGIN PASSWORD ${literal(scramVerifier(ctx.password))} IN ROLE ${POSTGRES_DATABASE}`
          : `CREATE ROLE ${login} NOLOGIN IN ROLE ${POSTGRES_DATABASE}`,
      ),
      // Sessions of either login act as the owner role: what one creates, the other owns as well.
      ...[blue, green].map((login) => `ALTER ROLE ${login} SET role = ${literal(POSTGRES_DATABASE)}`),
      `CREATE DATABASE ${POSTGRES_DATABASE} OWNER ${POSTGRES_DATABASE}`,
    ];
    // One statement per line, each in its own transaction (CREATE DATABASE cannot run in one); the verifier goes
    // over stdin, never on a command line.
    await this.#psql(ctx, 'postgres', `${statements.join(';\n')};\n`, TOOL_TIMEOUT_MS, signal);
    await this.#psql(
      ctx,
      POSTGRES_DATABASE,
      `ALTER SCHEMA public OWNER TO ${POSTGRES_DATABASE};\nREVOKE ALL ON DATABASE ${POSTGRES_DATABASE} FROM PUBLIC;\n`,
      TOOL_TIMEOUT_MS,
      signal,
    );
    if (seed === undefined) return;
    // Objects are created as the owner role (not the superuser), whoever owned them where the dump was taken;
    // one transaction, so a dump that does not load leaves nothing half loaded.
    await runTool(
      [
        this.#bin(ctx, 'pg_restore'),
        ...this.#connection(ctx),
        '--dbname',
        POSTGRES_DATABASE,
        '--no-owner',
        '--no-acl',
        '--role',
        POSTGRES_DATABASE,
        '--single-transaction',
        '--exit-on-error',
        seed,
      ],
      { timeoutMs: TOOL_TIMEOUT_MS, signal },
    );
  }

  url(port: number, login: string, password: string): string {
    return `postgres://${login}:${password}@127.0.0.1:${port}/${POSTGRES_DATABASE}`;
  }

  async beginRotation(
    ctx: ServerContext,
    password: string,
  ): Promise<{ login: string; retiring: Omit<AddonRotation, 'since'> }> {
    const next = ctx.login === POSTGRES_LOGINS[0] ? POSTGRES_LOGINS[1] : POSTGRES_LOGINS[0];
    await this.#psql(
      ctx,
      'postgres',
      `ALTER ROLE ${next} LOGIN PASSWORD ${literal(scramVerifier(password))};\n`,
      TOOL_TIMEOUT_MS,
    );
    return { login: next, retiring: { login: ctx.login } };
  }

  async endRotation(ctx: ServerContext, retiring: Omit<AddonRotation, 'since'>): Promise<void> {
    const login = POSTGRES_LOGINS.find((name) => name === retiring.login);
    if (login === undefined) return;
    await this.#psql(
      ctx,
      'postgres',
      `ALTER ROLE ${login} NOLOGIN PASSWORD NULL;\nSELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = ${literal(login)};\n`,
      TOOL_TIMEOUT_MS,
    );
  }

  forget(serverDir: string): void {
    const sockets = socketDirectory(serverDir);
    if (!sockets.startsWith(serverDir)) rmSync(sockets, { recursive: true, force: true });
  }

  async backup(ctx: ServerContext, file: string, signal: AbortSignal): Promise<void> {
    await runTool(
      [
        this.#bin(ctx, 'pg_dump'),
        ...this.#connection(ctx),
        '--format=custom',
        '--file',
        file,
        POSTGRES_DATABASE,
      ],
      { timeoutMs: TOOL_TIMEOUT_MS, signal },
    );
  }

  #connection(ctx: ServerContext): string[] {
    return [
      '--host',
      socketDirectory(ctx.dir),
      '--port',
      String(ctx.port),
      '--username',
      POSTGRES_ADMIN,
      '--no-password',
    ];
  }

  #psql(
    ctx: ServerContext,
    database: string,
    sql: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<string> {
    return runTool(
      [
        this.#bin(ctx, 'psql'),
        ...this.#connection(ctx),
        '--dbname',
        database,
        '--no-psqlrc',
        '--quiet',
        '--tuples-only',
        '--no-align',
        '--set',
        'ON_ERROR_STOP=1',
      ],
      { input: sql, timeoutMs, ...(signal === undefined ? {} : { signal }) },
    );
  }

  #bin(ctx: ServerContext, tool: string): string {
    return join(INSTALL_ROOT, ctx.version, 'bin', tool);
  }
}
