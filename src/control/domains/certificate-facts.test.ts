import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { authorityKeyId, certificateFacts, keyMatches } from './certificate-facts.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-cert-facts-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function openssl(...args: string[]): string {
  return execFileSync('openssl', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A CA and a leaf it signed (with an Authority Key Identifier), and a self-signed leaf without one. */
function issue(): { chain: string; leafKey: string; bare: string } {
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key');
  openssl(
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-subj',
    '/CN=Facts Test CA',
    '-days',
    '2',
    '-out',
    'ca.crt',
  );
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'leaf.key');
  openssl('req', '-new', '-key', 'leaf.key', '-subj', '/CN=api.example.com', '-out', 'leaf.csr');
  writeFileSync(join(dir, 'ext.cnf'), 'authorityKeyIdentifier=keyid\nsubjectAltName=DNS:api.example.com\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'leaf.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-set_serial',
    '0x9a0b',
    '-days',
    '1',
    '-extfile',
    'ext.cnf',
    '-out',
    'leaf.crt',
  );
  writeFileSync(
    join(dir, 'none.cnf'),
    '[req]\ndistinguished_name=dn\n[dn]\n[v3]\nbasicConstraints=CA:FALSE\n',
  );
  openssl(
    'req',
    '-x509',
    '-new',
    '-key',
    'leaf.key',
    '-subj',
    '/CN=bare',
    '-days',
    '1',
    '-config',
    'none.cnf',
    '-extensions',
    'v3',
    '-out',
    'bare.crt',
  );
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return { chain: read('leaf.crt') + read('ca.crt'), leafKey: read('leaf.key'), bare: read('bare.crt') };
}

describe('certificateFacts', () => {
  const { chain, leafKey, bare } = issue();

  it('reads the authority key identifier openssl printed, and the ARI id from it and the serial', () => {
    const text = openssl('x509', '-in', 'leaf.crt', '-noout', '-text');
    const printed = /Authority Key Identifier:\s*\n\s*(?:keyid:)?([0-9A-F:]+)/.exec(text)?.[1];
    assert.ok(printed, text);
    const expected = Buffer.from(printed.replaceAll(':', ''), 'hex');
    const raw = new X509Certificate(chain).raw;
    assert.deepEqual(authorityKeyId(raw), expected);
    const facts = certificateFacts(chain);
    assert.equal(facts.serial, '9a0b');
    assert.equal(facts.issuer, 'Facts Test CA');
    // The serial's DER content gets a leading zero byte: its high bit is set.
    assert.equal(
      facts.ariCertId,
      `${expected.toString('base64url')}.${Buffer.from('009a0b', 'hex').toString('base64url')}`,
    );
    assert.ok(facts.notAfter > facts.notBefore);
    assert.equal(keyMatches(chain, leafKey), true);
  });

  it('has no ARI id for a certificate without an authority key identifier, and refuses truncated DER', () => {
    assert.equal(authorityKeyId(new X509Certificate(bare).raw), undefined);
    assert.equal(certificateFacts(bare).ariCertId, undefined);
    const raw = new X509Certificate(chain).raw;
    assert.throws(() => authorityKeyId(raw.subarray(0, 40)), /truncated DER/);
  });
});
