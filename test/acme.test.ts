// Integration: certificates from a real ACME CA (pebble) for a real control plane and proxy, verified by real TLS
// clients against pebble's root: issue, serve, renew under load, revoke, a failed challenge, DNS-01, ownership.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { promisify } from 'node:util';
import type { DomainInfo, DomainsView } from '../src/domain/certificate.js';
import type { BerthEvent } from '../src/domain/event.js';
import { ProxyAdminClient } from '../src/domain/proxy-admin-client.js';
import { proxyPaths } from '../src/domain/proxy-paths.js';
import {
  type ControlPlaneProcess,
  FIXTURE_APP,
  runCli,
  shutDown,
  startControlPlane,
  tempDir,
  waitFor,
  writeApp,
} from './control-harness.js';
import { LoadClient } from './load-client.js';
import { type Pebble, pebbleUnavailable, preparePebble, startPebble } from './pebble-harness.js';
import { withDeadline } from './wait.js';

const run = promisify(execFile);

function spec(app: string, routes: string[]): string {
  return [
    `app: ${app}`,
    'routes:',
    ...routes,
    'services:',
    '  web:',
    `    run: node ${FIXTURE_APP}/server.js`,
    '    health: { path: /health, interval: 200ms, timeout: 150ms, healthy: 1, unhealthy: 2, grace: 1s }',
    '    deploy: { drain: 2s, stopTimeout: 5s }',
  ].join('\n');
}

/** The certificate a verifying TLS client gets for `servername` (rejects if the chain or name does not verify). */
function handshake(
  port: number,
  servername: string,
  ca: string,
): Promise<{ serial: string; issuer: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca, timeout: 5000 }, () => {
      const peer = socket.getPeerCertificate();
      socket.destroy();
      resolve({ serial: peer.serialNumber.toLowerCase(), issuer: String(peer.issuer.CN) });
    });
    socket.on('timeout', () => socket.destroy(new Error(`no handshake with ${servername} within 5 s`)));
    socket.on('error', reject);
  });
}

/** A client context trusting `ca`, built once: parsing the CA for every new connection cost more than the handshake. */
const clientContexts = new Map<string, tls.SecureContext>();
function trusting(ca: string): tls.SecureContext {
  let context = clientContexts.get(ca);
  if (context === undefined) {
    context = tls.createSecureContext({ ca });
    clientContexts.set(ca, context);
  }
  return context;
}

/** One request on a new TLS connection (a new handshake each time), verified against `ca`. */
function freshGet(port: number, host: string, ca: string): Promise<{ status: number; serial: string }> {
  return new Promise((resolve, reject) => {
    // secureContext goes through to tls.connect (node's https types leave it out).
    const options: https.RequestOptions & { secureContext: tls.SecureContext } = {
      host: '127.0.0.1',
      port,
      servername: host,
      headers: { host },
      secureContext: trusting(ca),
      agent: false,
      timeout: 10_000,
    };
    const req = https.request(options, (res) => {
      // The X509Certificate view: getPeerCertificate() decodes every field of the chain, serial alone is wanted.
      const peer = (res.socket as tls.TLSSocket).getPeerX509Certificate();
      const serial = peer?.serialNumber.toLowerCase() ?? '';
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, serial }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Keep-alive HTTPS load on `host` and, beside it, a loop of new connections (each a full handshake that reports the
 * certificate's serial) while `work` runs; `work` sees the serials seen so far. Failures of both are collected;
 * `first` is the serial the first new handshake got.
 */
async function underHandshakeLoad(
  port: number,
  host: string,
  caPath: string,
  root: string,
  work: (serials: Set<string>) => Promise<void>,
): Promise<{
  keepAlive: number;
  fresh: number;
  first: string | undefined;
  serials: Set<string>;
  failures: string[];
}> {
  const load = new LoadClient(port, host, caPath);
  const serials = new Set<string>();
  let first: string | undefined;
  const failures: string[] = [];
  let fresh = 0;
  try {
    // A keep-alive request is in flight at every moment (LoadClient.during); the other connections pause 10 ms
    // between requests, as the handshake loop beside them already keeps the proxy busy with new connections.
    const result = await load.during(
      async () => {
        let running = true;
        const handshakes = (async () => {
          while (running) {
            try {
              const answer = await freshGet(port, host, root);
              fresh++;
              first ??= answer.serial;
              serials.add(answer.serial);
              if (answer.status !== 200) failures.push(`status ${answer.status}`);
            } catch (error) {
              failures.push(String(error));
            }
          }
        })();
        try {
          await work(serials);
        } finally {
          running = false;
          await handshakes;
        }
      },
      4,
      10,
    );
    return {
      keepAlive: result.answers.length,
      fresh,
      first,
      serials,
      failures: [...result.failures, ...failures],
    };
  } finally {
    load.close();
  }
}

function plainGet(port: number, host: string, path: string): Promise<{ status: number; location?: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, headers: { host }, timeout: 5000 }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location }));
      })
      .on('error', reject);
  });
}

describe('certificates from an ACME CA (pebble)', { skip: pebbleUnavailable }, () => {
  const dir = tempDir('berth-acme-');
  const dataDir = join(dir, 'data');
  let plane: ControlPlaneProcess;
  let pebble: Pebble;
  let root: string;
  let https443: number;
  let http80: number;
  let planeOptions: { args: string[]; env: Record<string, string> };

  const domains = async (app?: string): Promise<DomainsView> =>
    plane.client.request('GET', `/v1/domains${app === undefined ? '' : `?app=${app}`}`);
  const domain = async (host: string): Promise<DomainInfo | undefined> =>
    (await domains()).domains.find((d) => d.host === host);
  const active = (host: string, not?: string) =>
    waitFor(
      `${host} to have an active certificate${not === undefined ? '' : ` other than ${not}`}`,
      async () => {
        const cert = (await domain(host))?.certificate;
        return cert?.state === 'active' &&
          cert.serial !== null &&
          cert.serial !== not &&
          cert.lastError === null
          ? cert
          : undefined;
      },
      30_000,
    );
  /** The handshake for `sni` once the proxy serves `serial` (it applies the table naming the files after the row). */
  const servedWith = (sni: string, serial: string | null) =>
    waitFor(`the proxy to serve certificate ${serial} for ${sni}`, async () => {
      const served = await handshake(https443, sni, root).catch(() => undefined);
      return served?.serial === serial ? served : undefined;
    });
  const events = async (kind: string): Promise<BerthEvent[]> =>
    (await plane.client.events({ limit: 1000 })).filter((e) => e.kind === kind);
  /**
   * `berth domains renew` for `host`, and whether pebble reused a valid authorization for it: the renewal
   * succeeded and pebble asked the DNS for no address of `host` (it validates nothing then).
   */
  const renewValidating = async (host: string) => {
    const asked = pebble.dns.queries.length;
    const renew = await runCli(dataDir, ['domains', 'renew', 'shop', host]);
    const resolved = pebble.dns.queries.slice(asked).some((q) => q.name === host);
    return { ...renew, reusedAuthorization: renew.code === 0 && !resolved };
  };

  before(async () => {
    const setup = await preparePebble(join(dir, 'pebble'));
    // The DNS-01 hook: TXT records as files the test's DNS responder serves (one value per line).
    const hook = join(dir, 'dns-hook.sh');
    writeFileSync(
      hook,
      [
        'set -e',
        // While the test holds it, a `set` says so and waits (the control plane is killed meanwhile).
        `if [ "$BERTH_ACME_ACTION" = set ] && [ -e "${dir}/hold" ]; then touch "${dir}/held"; while [ -e "${dir}/hold" ]; do sleep 0.05; done; fi`,
        `f="${setup.txtDir}/$BERTH_ACME_NAME"`,
        'if [ "$BERTH_ACME_ACTION" = set ]; then echo "$BERTH_ACME_VALUE" >> "$f"',
        'else grep -vx "$BERTH_ACME_VALUE" "$f" > "$f.tmp" || true; mv "$f.tmp" "$f"; fi',
      ].join('\n'),
    );
    // Berth first (pebble needs its HTTP port), told where pebble will be and to trust pebble's listener.
    planeOptions = {
      args: ['--acme-directory', setup.directory, '--acme-dns-hook', `sh ${hook}`],
      env: { NODE_EXTRA_CA_CERTS: setup.listenerCaFile, BERTH_ACME_EMAIL: 'ops@example.com' },
    };
    plane = await startControlPlane(dataDir, undefined, planeOptions);
    https443 = plane.proxyPorts.https;
    http80 = plane.proxyPorts.http;
    pebble = await startPebble(setup, { httpPort: http80 });
    root = await pebble.root();
    writeFileSync(join(dir, 'root.pem'), root);
    const result = await runCli(
      dataDir,
      ['apply'],
      writeApp({
        'berth.yaml': spec('shop', [
          '  - host: shop.example.com',
          '    service: web',
          '    hsts: { maxAge: 365d, includeSubDomains: true }',
          '  - host: "*.wild.example.com"',
          '    service: web',
        ]),
      }),
    );
    assert.equal(result.code, 0, result.stderr);
  });

  after(async () => {
    await shutDown(plane, dataDir);
    await pebble?.stop();
  });

  it("issues a certificate for a host in berth.yaml and serves it: the chain verifies against pebble's root", async () => {
    const cert = await active('shop.example.com');
    assert.match(cert.issuer ?? '', /^Pebble Intermediate CA/);
    const served = await servedWith('shop.example.com', cert.serial);
    assert.equal(served.serial, cert.serial);
    // curl, verifying against pebble's root (no -k), through Berth's HTTPS listener to the app.
    const curl = await run('curl', [
      '--silent',
      '--show-error',
      '--fail',
      '--cacert',
      join(dir, 'root.pem'),
      '--resolve',
      `shop.example.com:${https443}:127.0.0.1`,
      '--dump-header',
      '-',
      `https://shop.example.com:${https443}/`,
    ]);
    assert.match(curl.stdout, /^strict-transport-security: max-age=31536000; includeSubDomains\r$/m);
    assert.match(curl.stdout, /"instance":/);
    const issued = await events('certificate.issued');
    assert.ok(issued.some((e) => e.data['host'] === 'shop.example.com' && e.data['serial'] === cert.serial));
    assert.equal((await events('acme.account_created')).length, 1);
  });

  it('renews at two thirds of the lifetime, and the account key is sealed (no PEM key in the database)', async () => {
    const cert = await active('shop.example.com');
    assert.equal(cert.renewAt, cert.notBefore! + Math.floor(((cert.notAfter! - cert.notBefore!) * 2) / 3));
    assert.equal(cert.renewalInfo, false, 'pebble 2.4 offers no ARI');
    // The account key is sealed under the master key: no PEM private key in the database or its WAL.
    const files = ['state.db', 'state.db-wal'].map((f) => join(dataDir, f)).filter((f) => existsSync(f));
    const found = await run('grep', ['-l', 'PRIVATE KEY', ...files]).catch(
      (error: { stdout: string }) => error,
    );
    assert.equal(found.stdout.trim(), '');
  });

  it('answers HTTP-01 challenges on the HTTP listener while redirecting everything else', async () => {
    // Pebble's validations of the orders above came through this listener: the certificate exists because of it.
    const redirected = await plainGet(http80, 'shop.example.com', '/some/page');
    assert.equal(redirected.status, 301);
    assert.equal(redirected.location, `https://shop.example.com:${https443}/some/page`);
    // A token nobody asked for is not answered by the proxy: reserved paths go to the app over plain HTTP.
    const unknown = await plainGet(http80, 'shop.example.com', '/.well-known/acme-challenge/nope');
    assert.equal(unknown.status, 200);
    const metrics = await new ProxyAdminClient(proxyPaths(dataDir).adminSocket).metrics();
    assert.ok(metrics.unrouted.challenges >= 1, 'the proxy counted the challenges it answered');
  });

  it('issues a wildcard through DNS-01 with the hook command', async () => {
    const cert = await active('*.wild.example.com');
    assert.equal(cert.challenge, 'dns-01');
    const served = await servedWith('a.wild.example.com', cert.serial);
    assert.equal(served.serial, cert.serial);
    // The hook cleared its record after the order.
    const record = join(pebble.txtDir, '_acme-challenge.wild.example.com');
    assert.ok(!existsSync(record) || (await run('cat', [record])).stdout.trim() === '');
  });

  it('renews on demand under HTTPS load (keep-alive and new handshakes) without failing a request', async () => {
    const first = await active('shop.example.com');
    const { keepAlive, fresh, serials, failures } = await underHandshakeLoad(
      https443,
      'shop.example.com',
      join(dir, 'root.pem'),
      root,
      async (seen) => {
        let previous = first.serial!;
        for (let i = 0; i < 3; i++) {
          const renewed = await runCli(dataDir, ['domains', 'renew', 'shop', 'shop.example.com']);
          assert.equal(renewed.code, 0, renewed.stderr);
          assert.match(renewed.stdout, /certificate [0-9a-f]+ renewed by Pebble Intermediate CA/);
          const cert = await active('shop.example.com', previous);
          previous = cert.serial!;
          await waitFor('a new handshake to get the new certificate', () =>
            seen.has(previous) ? true : undefined,
          );
        }
      },
    );
    assert.deepEqual(failures, []);
    assert.ok(keepAlive > 50, `only ${keepAlive} keep-alive requests`);
    assert.ok(fresh > 20, `only ${fresh} new connections`);
    assert.ok(serials.size >= 4, `new handshakes saw ${serials.size} certificates`);
    assert.ok((await events('certificate.renewed')).length >= 3);
  });

  it('revokes: pebble reports the serial revoked, the proxy stops serving it and serves a new certificate', async () => {
    const before = await active('shop.example.com');
    const revoked = await runCli(dataDir, [
      'domains',
      'revoke',
      'shop',
      'shop.example.com',
      '--reason',
      'keyCompromise',
    ]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, new RegExp(`certificate ${before.serial} revoked`));
    assert.equal(await pebble.certStatus(before.serial!), 'Revoked');
    const next = await active('shop.example.com', before.serial!);
    assert.equal((await servedWith('shop.example.com', next.serial)).serial, next.serial);
    const recorded = await events('certificate.revoked');
    assert.ok(
      recorded.some((e) => e.data['serial'] === before.serial && e.data['reason'] === 'keyCompromise'),
    );
  });

  it("shows a failed challenge with the CA's problem document and keeps serving the certificate it had", async () => {
    const serving = await active('shop.example.com');
    // The name stops resolving: pebble cannot reach the HTTP listener to validate.
    pebble.dns.nxdomain.add('shop.example.com');
    try {
      let renew = await renewValidating('shop.example.com');
      // pebble 2.4 reuses a valid authorization 1 time in 100 even at PEBBLE_AUTHZREUSE=0 (wfe.go:
      // `rand.Intn(100) > percent`): that renewal validates nothing and succeeds. Only then is it asked again.
      for (let attempt = 1; attempt < 3 && renew.reusedAuthorization; attempt++) {
        renew = await renewValidating('shop.example.com');
      }
      assert.equal(renew.code, 1, renew.stdout);
      assert.match(
        renew.stderr,
        /the order failed: urn:ietf:params:acme:error:\w+ \(400\): .*shop\.example\.com/,
      );
      assert.match(renew.stderr, new RegExp(`certificate ${serving.serial} keeps serving`));
      // The certificate that was valid still serves, and verifies.
      assert.equal((await handshake(https443, 'shop.example.com', root)).serial, serving.serial);
      const listed = await runCli(dataDir, ['domains', 'list', 'shop']);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(
        listed.stdout,
        /shop\.example\.com\s+shop\s+berth\.yaml\s+active\s+Pebble Intermediate CA \w+\s+\d{4}-/,
      );
      assert.match(listed.stdout, /ago failed/);
      assert.match(
        listed.stdout,
        /\nshop\.example\.com: urn:ietf:params:acme:error:\w+ \(400\): .+; next attempt in /,
      );
      const failed = await events('certificate.renewal_failed');
      assert.ok(
        failed.some((e) =>
          (e.data['problem'] as { type: string }).type.startsWith('urn:ietf:params:acme:error:'),
        ),
      );
    } finally {
      pebble.dns.nxdomain.delete('shop.example.com');
    }
    const renewed = await runCli(dataDir, ['domains', 'renew', 'shop', 'shop.example.com']);
    assert.equal(renewed.code, 0, renewed.stderr);
    assert.equal((await domain('shop.example.com'))?.certificate?.lastError, null);
  });

  it('adds a domain as an alias of the app; a first order that fails leaves it on the default certificate', async () => {
    pebble.dns.nxdomain.add('www.example.net');
    const added = await runCli(dataDir, ['domains', 'add', 'shop', 'www.example.net']);
    assert.equal(added.code, 0, added.stderr);
    const failed = await waitFor('the first order of www.example.net to fail', async () => {
      const cert = (await domain('www.example.net'))?.certificate;
      return cert?.state === 'failed' ? cert : undefined;
    });
    assert.match(failed.lastError?.type ?? '', /^urn:ietf:params:acme:error:/);
    assert.ok(failed.nextAttemptAt! > failed.lastAttemptAt!);
    // Routed (to the same app), served with the default certificate meanwhile: a client that does not verify gets
    // the app, one that verifies against pebble's root refuses.
    await assert.rejects(handshake(https443, 'www.example.net', root));
    pebble.dns.nxdomain.delete('www.example.net');
    const renewed = await runCli(dataDir, ['domains', 'renew', 'shop', 'www.example.net']);
    assert.equal(renewed.code, 0, renewed.stderr);
    assert.match(renewed.stdout, /certificate [0-9a-f]+ issued/);
    const answer = await freshGet(https443, 'www.example.net', root);
    assert.equal(answer.status, 200);
    const removed = await runCli(dataDir, ['domains', 'remove', 'shop', 'www.example.net']);
    assert.equal(removed.code, 0, removed.stderr);
    await waitFor('the removed domain to leave the list', async () =>
      (await domain('www.example.net')) === undefined ? true : undefined,
    );
    const files = join(dataDir, 'proxy', 'certs', 'acme');
    await waitFor('its files to be removed', () =>
      readdirSync(files).some((f) => f.startsWith('www.example.net.')) ? undefined : true,
    );
  });

  it('recovers an order cut by kill -9 of the control plane: ordered again at the next start, nothing half-written', async () => {
    writeFileSync(join(dir, 'hold'), '');
    const added = await runCli(dataDir, ['domains', 'add', 'shop', '*.held.example.com']);
    assert.equal(added.code, 0, added.stderr);
    await waitFor('the DNS hook to be held mid-order', () =>
      existsSync(join(dir, 'held')) ? true : undefined,
    );
    assert.equal((await domain('*.held.example.com'))?.certificate?.state, 'ordering');
    const exited = once(plane.child, 'exit');
    plane.child.kill('SIGKILL');
    await withDeadline(exited, 10_000, 'the control plane to die');
    rmSync(join(dir, 'hold'));
    // The proxy kept serving without its control plane.
    assert.equal((await freshGet(https443, 'shop.example.com', root)).status, 200);
    plane = await startControlPlane(dataDir, undefined, planeOptions);
    const cert = await active('*.held.example.com');
    // Active in the store first, then in the proxy once it has applied the table naming the new files.
    await servedWith('x.held.example.com', cert.serial);
    const interrupted = await events('certificate.interrupted');
    assert.ok(interrupted.some((e) => e.data['host'] === '*.held.example.com'));
    // Only files of certificates that exist remain (a killed write leaves at most a temporary file, collected).
    const files = readdirSync(join(dataDir, 'proxy', 'certs', 'acme'));
    const serials = new Set((await domains()).domains.map((d) => d.certificate?.serial).filter(Boolean));
    for (const file of files) assert.ok(serials.has(file.split('.').at(-2)), `stray file ${file}`);
    // Clean-up, not under test: through the API.
    await plane.client.request('DELETE', `/v1/apps/shop/domains/${encodeURIComponent('*.held.example.com')}`);
  });

  it('refuses a host another app owns (naming it), IP literals and reserved names, with the reason', async () => {
    const taken = await runCli(
      dataDir,
      ['apply'],
      writeApp({ 'berth.yaml': spec('other', ['  - host: shop.example.com', '    service: web']) }),
    );
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /shop\.example\.com belongs to app shop \(a route in its berth\.yaml\)/);
    const add = await runCli(dataDir, ['domains', 'add', 'shop', 'a.wild.example.com']);
    assert.equal(add.code, 0, add.stderr);
    const again = await runCli(
      dataDir,
      ['apply'],
      writeApp({ 'berth.yaml': spec('other', ['  - host: a.wild.example.com', '    service: web']) }),
    );
    assert.match(
      again.stderr,
      /a\.wild\.example\.com belongs to app shop \(added with `berth domains add`\)/,
    );
    for (const [host, reason] of [
      ['203.0.113.7', /an IP address, not a host name/],
      ['shop.test', /\.test is reserved for testing \(RFC 6761\)/],
      ['intranet', /a single label is not a public DNS name/],
      ['*.com', /a wildcard needs two labels under it/],
      ['bad_name.example.com', /may hold only letters, digits and dashes/],
    ] as const) {
      const refused = await runCli(dataDir, ['domains', 'add', 'shop', host]);
      assert.equal(refused.code, 1, host);
      assert.match(refused.stderr, reason, host);
    }
    const spec1 = await runCli(
      dataDir,
      ['apply'],
      writeApp({ 'berth.yaml': spec('other', ['  - host: 10.0.0.1', '    service: web']) }),
    );
    assert.equal(spec1.code, 1);
    assert.match(
      spec1.stderr,
      /routes\[0\]\.host: expected a host name .*got "10\.0\.0\.1" \(an IP address, not a host name/,
    );
    await plane.client.request('DELETE', '/v1/apps/shop/domains/a.wild.example.com');
  });
});

describe('short-lived certificates renew themselves at two thirds of their life', {
  skip: pebbleUnavailable,
}, () => {
  const dir = tempDir('berth-acme-short-');
  const dataDir = join(dir, 'data');
  const LIFETIME_S = 12;
  let plane: ControlPlaneProcess;
  let pebble: Pebble;
  let root: string;

  before(async () => {
    const setup = await preparePebble(join(dir, 'pebble'));
    plane = await startControlPlane(dataDir, undefined, {
      args: ['--acme-directory', setup.directory],
      env: { NODE_EXTRA_CA_CERTS: setup.listenerCaFile },
    });
    pebble = await startPebble(setup, { httpPort: plane.proxyPorts.http, validitySeconds: LIFETIME_S });
    root = await pebble.root();
    writeFileSync(join(dir, 'root.pem'), root);
    const result = await runCli(
      dataDir,
      ['apply'],
      writeApp({ 'berth.yaml': spec('api', ['  - host: api.example.org', '    service: web']) }),
    );
    assert.equal(result.code, 0, result.stderr);
  });

  after(async () => {
    await shutDown(plane, dataDir);
    await pebble?.stop();
  });

  it('renews each certificate after 2/3 of its life and before its end, under load, failing no request', async () => {
    const https443 = plane.proxyPorts.https;
    const certificate = async () => {
      const view: DomainsView = await plane.client.request('GET', '/v1/domains');
      return view.domains.find((d) => d.host === 'api.example.org')?.certificate ?? undefined;
    };
    const issued = await waitFor(
      'the first certificate',
      async () => {
        const cert = await certificate();
        return cert?.state === 'active' ? cert : undefined;
      },
      30_000,
    );
    const lifetime = issued.notAfter! - issued.notBefore!;
    assert.ok(
      lifetime >= (LIFETIME_S - 1) * 1000 && lifetime <= LIFETIME_S * 1000,
      `lifetime ${lifetime} ms`,
    );
    // The load runs around each renewal, not through the idle two thirds before it: from 1.5 s before the
    // certificate's renewal time (the loop starts a renewal at or after it, asserted below) until new handshakes get
    // the next certificate. Each window's first handshake must still get the old certificate, so every swap
    // happened under load (a window that started late fails instead of proving less).
    let fresh = 0;
    const serials = new Set<string>();
    const failures: string[] = [];
    let current = issued;
    for (let renewal = 1; renewal <= 2; renewal++) {
      const lead = current.renewAt! - 1500 - Date.now();
      if (lead > 0) await new Promise((resolve) => setTimeout(resolve, lead));
      const old = current.serial!;
      const window = await underHandshakeLoad(
        https443,
        'api.example.org',
        join(dir, 'root.pem'),
        root,
        async (seen) => {
          current = await waitFor(
            `automatic renewal ${renewal} served`,
            async () => {
              const cert = (await certificate())!;
              return cert.state === 'active' && cert.serial !== old && seen.has(cert.serial!)
                ? cert
                : undefined;
            },
            2 * LIFETIME_S * 1000,
          );
        },
      );
      assert.equal(window.first, old, `renewal ${renewal}: the load started after the certificate changed`);
      fresh += window.fresh;
      for (const serial of window.serials) serials.add(serial);
      failures.push(...window.failures);
    }
    assert.deepEqual(failures, []);
    assert.ok(fresh > 20, `only ${fresh} new connections`);
    assert.ok(serials.size >= 3, `new handshakes saw ${serials.size} certificates`);
    // Each renewal started at or after the renewal time of the certificate it replaced, and ended before it expired.
    const all = await plane.client.events({ app: 'api', limit: 1000 });
    const certificates = all.filter(
      (e) => e.kind === 'certificate.issued' || e.kind === 'certificate.renewed',
    );
    assert.ok(certificates.length >= 3, `${certificates.length} certificates issued or renewed`);
    const starts = all.filter((e) => e.kind === 'certificate.renewing');
    for (const [i, renewed] of certificates.slice(1).entries()) {
      const previous = certificates[i]!;
      const start = starts.find((e) => e.id > previous.id && e.id < renewed.id);
      assert.ok(start !== undefined, `a renewing event between ${previous.id} and ${renewed.id}`);
      assert.ok(
        start.at >= (previous.data['renewAt'] as number),
        'not renewed before two thirds of the life',
      );
      assert.ok(renewed.at < (previous.data['notAfter'] as number), 'renewed before the old one expired');
      assert.equal(renewed.data['previousSerial'], previous.data['serial']);
    }
    assert.deepEqual(
      all.filter((e) => e.kind === 'certificate.renewal_failed'),
      [],
    );
  });
});
