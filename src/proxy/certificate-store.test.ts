import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type tls from 'node:tls';
import { CertificateStore } from './certificate-store.js';
import { LocalCa } from './local-ca.js';

describe('CertificateStore on-demand certificates (real openssl)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-certs-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const served = new Set(['a.localhost', 'b.localhost', 'c.localhost']);
  const store = (maxIssued: number) =>
    new CertificateStore(new LocalCa(join(dir, 'ca')), join(dir, 'certs'), {
      servesHost: (host) => served.has(host),
      maxIssued,
    });
  const sni = (s: CertificateStore, name: string) =>
    new Promise<tls.SecureContext | undefined>((resolve, reject) =>
      s.sniCallback(name, (err, ctx) => (err ? reject(err) : resolve(ctx))),
    );
  const files = () => readdirSync(join(dir, 'certs', 'auto')).sort();

  it('issues only for served names, keeps at most maxIssued, and prunes older files at start', async () => {
    const s = store(2);
    await s.init();
    assert.equal(await sni(s, 'unknown.localhost'), s.defaultContext);
    assert.equal(await sni(s, 'example.com'), s.defaultContext);
    assert.deepEqual(files(), []);
    for (const name of ['a.localhost', 'b.localhost', 'c.localhost']) {
      const ctx = await sni(s, name);
      assert.ok(ctx !== undefined && ctx !== s.defaultContext, name);
    }
    // a.localhost was the least recently used: its files go once c's certificate is issued.
    for (let i = 0; i < 100 && files().includes('a.localhost.crt'); i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(files(), ['b.localhost.crt', 'b.localhost.key', 'c.localhost.crt', 'c.localhost.key']);
    const restarted = store(1);
    await restarted.init();
    assert.equal(files().length, 2, 'a restart keeps only maxIssued certificates');
  });
});
