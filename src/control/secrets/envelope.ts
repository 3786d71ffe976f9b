// Envelope encryption with node:crypto: each secret version under its own data key, data keys under the master key.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { BerthError } from '../../domain/errors.js';

const ALGORITHM = 'aes-256-gcm';
export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** What a secret version's row holds: the value sealed with the data key, and the data key sealed with the master. */
export interface SealedVersion {
  nonce: Buffer;
  /** Ciphertext with the 16-byte GCM tag appended. */
  ciphertext: Buffer;
  /** `nonce ‖ ciphertext ‖ tag` of the data key under the master key. */
  sealedKey: Buffer;
}

/** Which secret version a ciphertext belongs to: bound as associated data, so it cannot be moved to another. */
export interface SecretAddress {
  app: string;
  name: string;
  version: number;
}

function associatedData(purpose: string, address: SecretAddress): Buffer {
  // NUL separators: app and secret names cannot hold NUL, so two addresses never encode the same.
  return Buffer.from(`berth/${purpose}/v1\0${address.app}\0${address.name}\0${address.version}`, 'utf8');
}

/** AES-256-GCM: returns `{ nonce, ciphertext ‖ tag }`. */
export function encrypt(key: Buffer, plaintext: Buffer, aad: Buffer): { nonce: Buffer; ciphertext: Buffer } {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv(ALGORITHM, key, nonce);
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { nonce, ciphertext };
}

/** Opens what `encrypt` sealed; throws when the key, nonce, data or associated data differ in any bit. */
export function decrypt(key: Buffer, nonce: Buffer, ciphertextAndTag: Buffer, aad: Buffer): Buffer {
  if (nonce.length !== NONCE_BYTES || ciphertextAndTag.length < TAG_BYTES)
    throw new Error('malformed sealed data');
  const decipher = createDecipheriv(ALGORITHM, key, nonce);
  decipher.setAAD(aad);
  decipher.setAuthTag(ciphertextAndTag.subarray(ciphertextAndTag.length - TAG_BYTES));
  return Buffer.concat([
    decipher.update(ciphertextAndTag.subarray(0, ciphertextAndTag.length - TAG_BYTES)),
    decipher.final(),
  ]);
}

/** Seals one data key under the master key, bound to its secret version. */
export function sealDataKey(masterKey: Buffer, dataKey: Buffer, address: SecretAddress): Buffer {
  const { nonce, ciphertext } = encrypt(masterKey, dataKey, associatedData('data-key', address));
  return Buffer.concat([nonce, ciphertext]);
}

export function openDataKey(masterKey: Buffer, sealedKey: Buffer, address: SecretAddress): Buffer {
  return decrypt(
    masterKey,
    sealedKey.subarray(0, NONCE_BYTES),
    sealedKey.subarray(NONCE_BYTES),
    associatedData('data-key', address),
  );
}

/** Seals a value with a fresh random data key, and that key with the master key. */
export function sealValue(masterKey: Buffer, value: string, address: SecretAddress): SealedVersion {
  const dataKey = randomBytes(KEY_BYTES);
  try {
    const { nonce, ciphertext } = encrypt(
      dataKey,
      Buffer.from(value, 'utf8'),
      associatedData('value', address),
    );
    return { nonce, ciphertext, sealedKey: sealDataKey(masterKey, dataKey, address) };
  } finally {
    dataKey.fill(0);
  }
}

/** Opens a secret version; any tampering (or the wrong key, or a row moved to another address) is an error. */
export function openValue(masterKey: Buffer, sealed: SealedVersion, address: SecretAddress): string {
  let dataKey: Buffer | undefined;
  try {
    dataKey = openDataKey(masterKey, sealed.sealedKey, address);
    return decrypt(dataKey, sealed.nonce, sealed.ciphertext, associatedData('value', address)).toString(
      'utf8',
    );
  } catch (error) {
    throw new BerthError(
      'internal',
      `secret ${address.app}/${address.name} v${address.version} cannot be decrypted: it was altered, moved, or sealed with another master key`,
      { cause: error },
    );
  } finally {
    dataKey?.fill(0);
  }
}

/** Re-seals a data key under a new master key without ever touching the value it protects. */
export function resealDataKey(
  oldMaster: Buffer,
  newMaster: Buffer,
  sealedKey: Buffer,
  address: SecretAddress,
): Buffer {
  const dataKey = openDataKey(oldMaster, sealedKey, address);
  try {
    return sealDataKey(newMaster, dataKey, address);
  } finally {
    dataKey.fill(0);
  }
}

const CHECK_PLAINTEXT = Buffer.from('berth master key check', 'utf8');
const CHECK_AAD = Buffer.from('berth/master-key-check/v1', 'utf8');

/** A key check value: proves a key is the one the secrets were sealed with, without opening any of them. */
export function makeKeyCheck(masterKey: Buffer): Buffer {
  const { nonce, ciphertext } = encrypt(masterKey, CHECK_PLAINTEXT, CHECK_AAD);
  return Buffer.concat([nonce, ciphertext]);
}

export function keyMatchesCheck(masterKey: Buffer, check: Buffer): boolean {
  try {
    return decrypt(masterKey, check.subarray(0, NONCE_BYTES), check.subarray(NONCE_BYTES), CHECK_AAD).equals(
      CHECK_PLAINTEXT,
    );
  } catch {
    return false;
  }
}
