// What the engines write: Redis ACLs with password hashes only, PostgreSQL's access rules and SCRAM verifiers.
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { hbaConfig, POSTGRES_ADMIN, scramVerifier } from './postgres-engine.js';
import { aclFile, aclHash, redisConfig } from './redis-engine.js';

describe('Redis engine files', () => {
  it('writes ACL users with SHA-256 hashes, never a password; the app user gets all but @admin', () => {
    const file = aclFile('app-secret', 'admin-secret');
    assert.ok(!file.includes('app-secret') && !file.includes('admin-secret'));
    assert.equal(aclHash('app-secret'), createHash('sha256').update('app-secret').digest('hex'));
    assert.deepEqual(file.trim().split('\n'), [
      `user default on #${aclHash('app-secret')} ~* &* +@all -@admin`,
      `user berth on #${aclHash('admin-secret')} ~* &* +@all`,
    ]);
  });

  it('listens on loopback only, with AOF on and the ACL file', () => {
    const config = redisConfig('/data/server', 41234);
    for (const line of ['bind 127.0.0.1', 'port 41234', 'appendonly yes', 'aclfile /data/server/users.acl'])
      assert.ok(config.split('\n').includes(line), line);
  });
});

describe('PostgreSQL engine files', () => {
  it('computes a SCRAM-SHA-256 verifier that checks the proof of RFC 7677 as a server does', () => {
    // RFC 7677, section 3: user "user", password "pencil"; the exchange's AuthMessage, client proof and server signature.
    const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
    const authMessage =
      'n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
    const proof = Buffer.from('dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=', 'base64');
    const verifier = scramVerifier('pencil', salt, 4096);
    const match = /^SCRAM-SHA-256\$4096:([^$]+)\$([^:]+):(.+)$/.exec(verifier);
    assert.ok(match, verifier);
    assert.equal(match[1], 'W22ZaJ0SNY7soEsUEjb6gQ==');
    const storedKey = Buffer.from(match[2]!, 'base64');
    const serverKey = Buffer.from(match[3]!, 'base64');
    // The server's check: ClientKey = proof XOR HMAC(StoredKey, AuthMessage) must hash to StoredKey.
    const signature = createHmac('sha256', storedKey).update(authMessage).digest();
    const clientKey = Buffer.from(proof.map((byte, i) => byte ^ signature[i]!));
    assert.deepEqual(createHash('sha256').update(clientKey).digest(), storedKey);
    assert.equal(
      createHmac('sha256', serverKey).update(authMessage).digest('base64'),
      '6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
    );
    assert.ok(!verifier.includes('pencil'));
    assert.notEqual(scramVerifier('pencil'), scramVerifier('pencil'), 'a fresh salt each time');
  });

  it("lets Berth's superuser in by its socket only, and the app by SCRAM on loopback", () => {
    assert.deepEqual(hbaConfig().trim().split('\n').slice(1), [
      `local all ${POSTGRES_ADMIN} peer map=berth`,
      `host all ${POSTGRES_ADMIN} 127.0.0.1/32 reject`,
      'host app all 127.0.0.1/32 scram-sha-256',
    ]);
  });
});
