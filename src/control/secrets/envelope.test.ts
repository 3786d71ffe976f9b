// Unit tests of envelope encryption: round trip, tampering, rows moved between secrets, key checks, bundles.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { openBundle, sealBundle } from './bundle.js';
import {
  keyMatchesCheck,
  makeKeyCheck,
  openValue,
  resealDataKey,
  type SealedVersion,
  sealValue,
} from './envelope.js';

const master = randomBytes(32);
const address = { app: 'shop', name: 'DATABASE_URL', version: 1 };

function flipped(buffer: Buffer, index: number): Buffer {
  const copy = Buffer.from(buffer);
  copy[index] = (copy[index] ?? 0) ^ 0x01;
  return copy;
}

describe('envelope encryption', () => {
  it('opens what it sealed, with a fresh data key and nonce each time', () => {
    const a = sealValue(master, 'postgres://u:p@db/shop', address);
    const b = sealValue(master, 'postgres://u:p@db/shop', address);
    assert.equal(openValue(master, a, address), 'postgres://u:p@db/shop');
    assert.notDeepEqual(a.nonce, b.nonce);
    assert.notDeepEqual(a.sealedKey, b.sealedKey);
    assert.notDeepEqual(a.ciphertext, b.ciphertext);
    assert.ok(!a.ciphertext.includes(Buffer.from('postgres')));
  });

  it('refuses to open when any byte of the ciphertext, nonce or sealed key is changed', () => {
    const sealed = sealValue(master, 'a secret value', address);
    for (const field of ['ciphertext', 'nonce', 'sealedKey'] as const) {
      for (let i = 0; i < sealed[field].length; i++) {
        const tampered: SealedVersion = { ...sealed, [field]: flipped(sealed[field], i) };
        assert.throws(() => openValue(master, tampered, address), /cannot be decrypted/, `${field}[${i}]`);
      }
    }
  });

  it('refuses a ciphertext copied onto another secret, app or version', () => {
    const sealed = sealValue(master, 'value of DATABASE_URL', address);
    for (const other of [
      { ...address, name: 'API_KEY' },
      { ...address, app: 'blog' },
      { ...address, version: 2 },
    ]) {
      assert.throws(() => openValue(master, sealed, other), /cannot be decrypted/);
    }
    // Value moved but the other row's own data key kept: the data key does not fit.
    const other = { ...address, name: 'API_KEY' };
    const otherSealed = sealValue(master, 'value of API_KEY', other);
    assert.throws(() => openValue(master, { ...sealed, sealedKey: otherSealed.sealedKey }, other));
  });

  it('refuses the wrong master key', () => {
    const sealed = sealValue(master, 'v', address);
    assert.throws(() => openValue(randomBytes(32), sealed, address), /cannot be decrypted/);
  });

  it('re-seals a data key under a new master key without changing the value ciphertext', () => {
    const sealed = sealValue(master, 'stays the same', address);
    const next = randomBytes(32);
    const resealed = { ...sealed, sealedKey: resealDataKey(master, next, sealed.sealedKey, address) };
    assert.equal(openValue(next, resealed, address), 'stays the same');
    assert.throws(() => openValue(master, resealed, address));
  });

  it('has a key check value that only the same key passes', () => {
    const check = makeKeyCheck(master);
    assert.equal(keyMatchesCheck(master, check), true);
    assert.equal(keyMatchesCheck(randomBytes(32), check), false);
    assert.equal(keyMatchesCheck(master, flipped(check, 20)), false);
  });
});

describe('export bundles', () => {
  const contents = { app: 'shop', exportedAt: 1, secrets: { API_KEY: 'k-1' }, config: { MODE: 'x' } };
  // Each derivation runs at the production cost (~0.3 s of CPU), so one bundle sealed here serves every test.
  const bundle = sealBundle(contents, 'correct horse');

  it('round-trips through a passphrase', () => {
    assert.deepEqual(openBundle(bundle, 'correct horse'), contents);
  });

  it('seals with scrypt N of at least 2^17 and refuses costlier parameters before deriving anything', () => {
    assert.ok(bundle.kdf.N >= 2 ** 17, `N = ${bundle.kdf.N}`);
    for (const kdf of [
      { N: 2 ** 20, r: 8, p: 1 },
      { N: 2 ** 17, r: 64, p: 1 },
      { N: 2 ** 17, r: 8, p: 1000 },
      { N: 3 * 2 ** 16, r: 8, p: 1 },
    ]) {
      const started = process.hrtime.bigint();
      assert.throws(() => openBundle({ ...bundle, kdf: { ...bundle.kdf, ...kdf } }, 'correct horse'), {
        message: /beyond what Berth accepts.*nothing was imported/,
      });
      // Refused up front: no key derivation (which takes ~0.1 s even at today's cost) ran.
      assert.ok(process.hrtime.bigint() - started < 20_000_000n, `refused quickly: ${JSON.stringify(kdf)}`);
    }
  });

  it('fails cleanly on a wrong passphrase or an altered bundle', () => {
    assert.throws(() => openBundle(bundle, 'wrong horse'), {
      code: 'invalid_request',
      message: /wrong passphrase/,
    });
    assert.throws(() => openBundle({ ...bundle, app: 'blog' }, 'correct horse'), /wrong passphrase/);
    assert.throws(() => openBundle({ nope: 1 }, 'x'), /not a Berth secrets bundle/);
    assert.ok(!JSON.stringify(bundle).includes('k-1'));
  });
});
