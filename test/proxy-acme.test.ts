// Integration: what the proxy does for public hosts, driven by the route table: HTTP-01 answers on the HTTP
// listener, redirects except where a route says `redirect: false`, HSTS on HTTPS only, certificate files reloaded.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import type { RouteTableInput } from '../src/domain/route-table.js';
import {
  type Backend,
  FAST_HEALTH,
  type ProxyProcess,
  proxyUnavailable,
  removeDir,
  request,
  startBackend,
  startProxy,
  waitHealthy,
} from './proxy-harness.js';
import { withDeadline } from './wait.js';

const TOKEN = 'evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA';
const KEY_AUTHORIZATION = `${TOKEN}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI`;

/** A self-signed certificate for `host` with serial `serial`, written to `<dir>/<name>.crt|.key`. */
function selfSigned(
  dir: string,
  name: string,
  host: string,
  serial: string,
): { certFile: string; keyFile: string } {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      `/CN=${host}`,
      '-set_serial',
      `0x${serial}`,
      '-addext',
      `subjectAltName=DNS:${host}`,
    ],
    { stdio: 'ignore' },
  );
  return { certFile, keyFile };
}

function servedSerial(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      const serial = socket.getPeerCertificate().serialNumber.toLowerCase();
      socket.destroy();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}

/**
 * One handshake (with `session`, if given): whether it resumed, and the session the proxy issued (TLS 1.3 sends it
 * after the handshake; a resumed TLS 1.2 handshake sends none: the client keeps the one it gave).
 */
function handshake(
  port: number,
  servername: string | undefined,
  maxVersion: tls.SecureVersion,
  session?: Buffer,
): Promise<{ reused: boolean; session: Buffer | undefined }> {
  const result = new Promise<{ reused: boolean; session: Buffer | undefined }>((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      rejectUnauthorized: false,
      maxVersion,
      ...(servername === undefined ? {} : { servername }),
      ...(session === undefined ? {} : { session }),
    });
    let issued: Buffer | undefined;
    socket.on('session', (ticket: Buffer) => {
      issued ??= ticket;
    });
    // The proxy sends nothing unasked: its end of the connection (after any tickets) answers ours.
    let reused = false;
    socket.once('secureConnect', () => {
      reused = socket.isSessionReused();
      socket.end();
    });
    socket.on('close', () => resolve({ reused, session: issued }));
    socket.on('error', reject);
  });
  return withDeadline(result, 10_000, `a TLS handshake (${maxVersion}, SNI ${servername ?? 'none'})`);
}

describe('proxy: ACME challenges, redirects, HSTS', { skip: proxyUnavailable }, () => {
  let proxy: ProxyProcess;
  let backend: Backend;
  const certs = mkdtempSync(join(tmpdir(), 'berth-proxy-acme-'));
  let table: RouteTableInput;

  before(async () => {
    proxy = await startProxy({ redirect: true });
    // The app sends its own HSTS header, which a route's setting replaces.
    backend = await startBackend((req, res) => {
      res.setHeader('strict-transport-security', 'max-age=60');
      res.end(`app ${req.url}`);
    });
    const group = {
      name: 'web',
      health: FAST_HEALTH,
      targets: [{ id: 'b1', host: '127.0.0.1', port: backend.port }],
    };
    table = {
      routes: [
        {
          host: 'shop.example.com',
          hsts: { maxAgeS: 31_536_000, includeSubDomains: true, preload: true },
          backends: [{ targetGroup: 'web' }],
        },
        { host: 'legacy.example.com', redirect: false, backends: [{ targetGroup: 'web' }] },
        { host: 'plain.example.com', backends: [{ targetGroup: 'web' }] },
      ],
      targetGroups: [group],
      challenges: [{ host: 'shop.example.com', token: TOKEN, keyAuthorization: KEY_AUTHORIZATION }],
    };
    await proxy.admin.putRouteTable(table);
    await waitHealthy(proxy.admin, 'web', 1);
  });

  after(async () => {
    await proxy?.stop();
    await backend?.close();
    if (proxy) removeDir(proxy.dataDir);
    rmSync(certs, { recursive: true, force: true });
  });

  it("answers a CA's HTTP-01 request on the HTTP listener with the key authorization, only for its host", async () => {
    const path = `/.well-known/acme-challenge/${TOKEN}`;
    const answer = await request(proxy.http, { host: 'shop.example.com', path });
    assert.equal(answer.status, 200);
    assert.equal(answer.body, KEY_AUTHORIZATION);
    assert.equal(answer.headers['content-type'], 'application/octet-stream');
    assert.equal(answer.headers['strict-transport-security'], undefined);
    // As pebble and Boulder send it: with the port in Host.
    const withPort = await request(proxy.http, { host: `shop.example.com:${proxy.http}`, path });
    assert.equal(withPort.body, KEY_AUTHORIZATION);
    const head = await request(proxy.http, { host: 'shop.example.com', path, method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(KEY_AUTHORIZATION.length));
    // Another host, or a token the table does not hold: not answered by the proxy (the reserved path goes on).
    const otherHost = await request(proxy.http, { host: 'plain.example.com', path });
    assert.equal(otherHost.body, `app ${path}`);
    const unknown = await request(proxy.http, {
      host: 'shop.example.com',
      path: '/.well-known/acme-challenge/x',
    });
    assert.equal(unknown.body, 'app /.well-known/acme-challenge/x');
    const metrics = await proxy.admin.metrics();
    assert.equal(metrics.unrouted.challenges, 3);
  });

  it('redirects every other plain HTTP request, and serves a `redirect: false` route over HTTP', async () => {
    const redirected = await request(proxy.http, { host: 'shop.example.com', path: '/cart?x=1' });
    assert.equal(redirected.status, 301);
    assert.equal(redirected.headers.location, `https://shop.example.com:${proxy.https}/cart?x=1`);
    const unknownHost = await request(proxy.http, { host: 'nobody.example.com', path: '/' });
    assert.equal(unknownHost.status, 301);
    const legacy = await request(proxy.http, { host: 'legacy.example.com', path: '/old' });
    assert.equal(legacy.status, 200);
    assert.equal(legacy.body, 'app /old');
    // HSTS never goes out over plain HTTP; the app's own header passes there untouched.
    assert.equal(legacy.headers['strict-transport-security'], 'max-age=60');
  });

  it("sends the route's HSTS on HTTPS in place of the app's own, and nothing on routes without it", async () => {
    const https = (host: string) =>
      new Promise<{ sts: string[] }>((resolve, reject) => {
        const socket = tls.connect(
          { host: '127.0.0.1', port: proxy.https, servername: host, rejectUnauthorized: false },
          () => {
            socket.write(`GET / HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`);
          },
        );
        let raw = '';
        socket.setEncoding('latin1');
        socket.on('data', (chunk: string) => {
          raw += chunk;
        });
        socket.on('end', () => {
          const head = raw.slice(0, raw.indexOf('\r\n\r\n'));
          resolve({ sts: head.split('\r\n').filter((l) => /^strict-transport-security:/i.test(l)) });
        });
        socket.on('error', reject);
      });
    assert.deepEqual((await https('shop.example.com')).sts, [
      'strict-transport-security: max-age=31536000; includeSubDomains; preload',
    ]);
    assert.deepEqual((await https('plain.example.com')).sts, ['strict-transport-security: max-age=60']);
  });

  it('refuses preload without a year and includeSubDomains, and a duplicate challenge token', async () => {
    await assert.rejects(
      proxy.admin.putRouteTable({
        ...table,
        routes: [
          {
            host: 'a.example.com',
            hsts: { maxAgeS: 86_400, preload: true },
            backends: [{ targetGroup: 'web' }],
          },
        ],
      }),
      /invalid route table/,
    );
    await assert.rejects(
      proxy.admin.putRouteTable({
        ...table,
        challenges: [table.challenges![0]!, { ...table.challenges![0]! }],
      }),
      /invalid route table/,
    );
  });

  it('resumes TLS 1.2 and 1.3 sessions whatever the SNI: a certificate host, a .localhost name, none, unknown', async () => {
    const shop = selfSigned(certs, 'resume', 'shop.example.com', 'c3');
    await proxy.admin.putRouteTable({ ...table, certificates: [{ host: 'shop.example.com', ...shop }] });
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      // No SNI is what a client connecting to an IP address sends.
      for (const servername of ['shop.example.com', 'localhost', undefined, 'unknown.example.org']) {
        const first = await handshake(proxy.https, servername, maxVersion);
        assert.equal(first.reused, false);
        assert.ok(first.session, `${maxVersion}, SNI ${servername ?? 'none'}: no session ticket`);
        const second = await handshake(proxy.https, servername, maxVersion, first.session);
        assert.equal(
          second.reused,
          true,
          `${maxVersion}, SNI ${servername ?? 'none'}: the ticket was refused`,
        );
      }
    }
    await proxy.admin.putRouteTable(table);
  });

  it('loads a certificate file again when it changes on disk, at the next table', async () => {
    const first = selfSigned(certs, 'shop', 'shop.example.com', 'a1');
    await proxy.admin.putRouteTable({ ...table, certificates: [{ host: 'shop.example.com', ...first }] });
    assert.equal(await servedSerial(proxy.https, 'shop.example.com'), 'a1');
    // The same paths, new contents (a renewal writing in place): the next table loads them.
    selfSigned(certs, 'shop', 'shop.example.com', 'b2');
    await proxy.admin.putRouteTable({ ...table, certificates: [{ host: 'shop.example.com', ...first }] });
    assert.equal(await servedSerial(proxy.https, 'shop.example.com'), 'b2');
    // Without the certificate: the default one again.
    await proxy.admin.putRouteTable(table);
    assert.notEqual(await servedSerial(proxy.https, 'shop.example.com'), 'b2');
  });
});
