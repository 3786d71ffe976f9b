// The master key: from BERTH_MASTER_KEY, or a key file readable by its owner only, created on first start.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../../domain/errors.js';
import { KEY_BYTES } from './envelope.js';

export const MASTER_KEY_ENV = 'BERTH_MASTER_KEY';

/** `<data-dir>/master.key`: base64 of 32 random bytes, mode 0600. */
export function masterKeyPath(dataDir: string): string {
  return join(dataDir, 'master.key');
}

export interface MasterKey {
  key: Buffer;
  /** Where it came from; rotation rewrites a key file but cannot change the environment of the caller. */
  source: 'env' | 'file';
  path: string;
}

function decodeKey(text: string, where: string): Buffer {
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== KEY_BYTES || key.toString('base64') !== text.trim()) {
    throw new BerthError(
      'runtime_failure',
      `${where} must be the base64 of ${KEY_BYTES} bytes (e.g. \`openssl rand -base64 32\`), got ${key.length} bytes`,
    );
  }
  return key;
}

/** Refuses a key file that anyone but its owner could read: the key opens every secret. */
export function checkKeyFilePermissions(path: string): void {
  const stat = statSync(path);
  if ((stat.mode & 0o077) !== 0) {
    const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
    throw new BerthError(
      'runtime_failure',
      `refusing to start: the master key file ${path} is readable by group or others (mode ${mode}); ` +
        `run \`chmod 600 ${path}\` and start again`,
    );
  }
  if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) {
    throw new BerthError(
      'runtime_failure',
      `refusing to start: the master key file ${path} belongs to uid ${stat.uid}, not to this user (uid ${process.getuid()})`,
    );
  }
}

/** Writes a key file with mode 0600 through a temporary file and a rename, so it is never seen half-written. */
export function writeKeyFile(path: string, key: Buffer, exclusive: boolean): void {
  const temporary = `${path}.tmp-${process.pid}`;
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    writeSync(fd, `${key.toString('base64')}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  if (exclusive && existsSync(path)) throw new BerthError('conflict', `${path} appeared while creating it`);
  renameSync(temporary, path);
}

export function readKeyFile(path: string): Buffer {
  checkKeyFilePermissions(path);
  return decodeKey(readFileSync(path, 'utf8'), path);
}

/**
 * The master key: `BERTH_MASTER_KEY` when set, else the key file. A missing file is created only when
 * `mayCreate` (no secret exists yet): creating a new key beside existing secrets would lock them away.
 */
export function loadMasterKey(options: {
  dataDir: string;
  env?: string | undefined;
  mayCreate: boolean;
}): MasterKey {
  const path = masterKeyPath(options.dataDir);
  if (options.env !== undefined && options.env !== '') {
    return { key: decodeKey(options.env, MASTER_KEY_ENV), source: 'env', path };
  }
  if (existsSync(path)) return { key: readKeyFile(path), source: 'file', path };
  if (!options.mayCreate) {
    throw new BerthError(
      'runtime_failure',
      `refusing to start: secrets exist but the master key file ${path} is missing; ` +
        `restore it from your backup or set ${MASTER_KEY_ENV}`,
    );
  }
  const key = randomBytes(KEY_BYTES);
  writeKeyFile(path, key, true);
  return { key, source: 'file', path };
}
