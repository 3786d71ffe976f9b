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

/** scrypt cost: N = 2^15, r = 8 (32 MiB, ~0.1 s): slow enough to make guessing a passphrase expensive. */
const SCRYPT = { N: 1 << 15, r: 8, p: 1 };
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
  if (![N, r, p].every((n) => Number.isInteger(n) && n > 0) || N > 1 << 20 || r > 32 || p > 16) {
    throw new BerthError('invalid_request', 'the bundle asks for unreasonable key-derivation parameters');
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
