// Export bundles: an app's secrets sealed to a passphrase (scrypt → AES-256-GCM), to move them to another machine.
import { randomBytes, scryptSync } from 'node:crypto';
import { BerthError } from '../../domain/errors.js';
import { decrypt, encrypt, KEY_BYTES } from './envelope.js';

export const BUNDLE_FORMAT = 'berth-secrets-bundle';

/** The file `berth secrets export` writes: everything but the header is ciphertext. */
export interface SecretsBundle {
  format: typeof BUNDLE_FORMAT;
  version: 1;
  app: string;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  nonce: string;
  ciphertext: string;
}

/** What a bundle holds once opened. */
export interface BundleContents {
  app: string;
  exportedAt: number;
  secrets: Record<string, string>;
  config: Record<string, string>;
}

/**
 * scrypt cost of new bundles: N = 2^17, r = 8, p = 1 (128 MiB, about 0.3 s), OWASP's minimum for scrypt: slow
 * enough to make guessing a passphrase expensive.
 */
export const SCRYPT = { N: 1 << 17, r: 8, p: 1 };

/**
 * What an imported bundle may ask for, checked before any work: a bundle is input, and scrypt's memory
 * (128 × N × r bytes) and time grow with what it names. Twice today's cost is allowed, for bundles of a later
 * Berth that raised it.
 */
export const SCRYPT_LIMITS = { maxN: 1 << 18, maxR: 16, maxP: 4, maxMemoryBytes: 256 * 1024 * 1024 };
const MIN_PASSPHRASE_LENGTH = 8;

function deriveKey(passphrase: string, salt: Buffer, params: { N: number; r: number; p: number }): Buffer {
  return scryptSync(passphrase, salt, KEY_BYTES, { ...params, maxmem: 256 * params.N * params.r });
}

function aadOf(app: string): Buffer {
  return Buffer.from(`berth/secrets-bundle/v1\0${app}`, 'utf8');
}

export function sealBundle(contents: BundleContents, passphrase: string): SecretsBundle {
  if (passphrase.length < MIN_PASSPHRASE_LENGTH) {
    throw new BerthError(
      'invalid_request',
      `the passphrase must be at least ${MIN_PASSPHRASE_LENGTH} characters long`,
    );
  }
  const salt = randomBytes(16);
  const key = deriveKey(passphrase, salt, SCRYPT);
  try {
    const { nonce, ciphertext } = encrypt(
      key,
      Buffer.from(JSON.stringify(contents), 'utf8'),
      aadOf(contents.app),
    );
    return {
      format: BUNDLE_FORMAT,
      version: 1,
      app: contents.app,
      kdf: { name: 'scrypt', ...SCRYPT, salt: salt.toString('base64') },
      nonce: nonce.toString('base64'),
      ciphertext: ciphertext.toString('base64'),
    };
  } finally {
    key.fill(0);
  }
}

/** Opens a bundle; a wrong passphrase or any change to the file is one clear error. */
export function openBundle(bundle: unknown, passphrase: string): BundleContents {
  const b = bundle as Partial<SecretsBundle> | null;
  if (
    !b ||
    b.format !== BUNDLE_FORMAT ||
    b.version !== 1 ||
    typeof b.app !== 'string' ||
    b.kdf?.name !== 'scrypt' ||
    typeof b.nonce !== 'string' ||
    typeof b.ciphertext !== 'string'
  ) {
    throw new BerthError('invalid_request', 'not a Berth secrets bundle (made by `berth secrets export`)');
  }
  const { N, r, p, salt } = b.kdf;
  const limits = SCRYPT_LIMITS;
  if (
    ![N, r, p].every((n) => Number.isInteger(n) && n > 0) ||
    (N & (N - 1)) !== 0 ||
    N > limits.maxN ||
    r > limits.maxR ||
    p > limits.maxP ||
    128 * N * r > limits.maxMemoryBytes ||
    typeof salt !== 'string'
  ) {
    throw new BerthError(
      'invalid_request',
      `the bundle asks for key-derivation parameters beyond what Berth accepts (scrypt N ≤ 2^18, r ≤ ${limits.maxR}, p ≤ ${limits.maxP}, at most ${limits.maxMemoryBytes / 1024 / 1024} MiB); nothing was imported`,
    );
  }
  const key = deriveKey(passphrase, Buffer.from(salt, 'base64'), { N, r, p });
  let plaintext: Buffer;
  try {
    plaintext = decrypt(
      key,
      Buffer.from(b.nonce, 'base64'),
      Buffer.from(b.ciphertext, 'base64'),
      aadOf(b.app),
    );
  } catch (error) {
    throw new BerthError(
      'invalid_request',
      'wrong passphrase, or the bundle was altered; nothing was imported',
      {
        cause: error,
      },
    );
  } finally {
    key.fill(0);
  }
  return JSON.parse(plaintext.toString('utf8')) as BundleContents;
}
