// A real ACME CA for tests: Debian's pebble on 127.0.0.1, its own config and ports, names resolved by a tiny DNS.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DnsResponder } from './dns-responder.js';
import { proxyUnavailable } from './proxy-harness.js';
import { requireTool } from './require-tool.js';
import { waitFor, withDeadline } from './wait.js';

/** Why an ACME test is skipped, or false: pebble (Debian package `pebble`) and openssl must be on PATH. */
export const pebbleUnavailable = requireTool('pebble', 'pebble') || proxyUnavailable;

export interface PebbleOptions {
  /** Where pebble sends HTTP-01 validations: Berth's HTTP listener. */
  httpPort: number;
  /** Lifetime of the certificates it issues, in seconds (pebble's default is years). */
  validitySeconds?: number;
  /** External account binding: new accounts must present one of these MAC keys (base64url) by key id. */
  eab?: Record<string, string>;
}

/** What a client must know before pebble runs: its directory URL and the CA of its HTTPS listener. */
export interface PebbleSetup {
  dir: string;
  ports: { acme: number; management: number; tls: number };
  /** `https://127.0.0.1:<port>/dir` */
  directory: string;
  /** PEM of pebble's own HTTPS listener certificate (give it to the ACME client: NODE_EXTRA_CA_CERTS). */
  listenerCaFile: string;
  listenerKeyFile: string;
  /** Where a DNS-01 hook writes TXT records for the DNS responder to serve (one file per name). */
  txtDir: string;
}

export interface Pebble extends PebbleSetup {
  dns: DnsResponder;
  /** The root that issued certificates chain to (regenerated at each pebble start). */
  root(): Promise<string>;
  /** `Valid` or `Revoked`, from pebble's management interface. */
  certStatus(serial: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * A port that was free a moment ago, for pebble (it cannot listen on port 0 and say which port it got). Taken
 * below the kernel's ephemeral range, so that no `listen(0)` or outgoing connection on this busy machine (the
 * control plane started next, other test files) can be given it before pebble binds it.
 */
export async function freePort(): Promise<number> {
  const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  const below = Number.isInteger(low) && low > 11_000 ? low : 32_768;
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 10_000 + Math.floor(Math.random() * (below - 10_000));
    const server = net.createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (bound) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      return port;
    }
  }
  throw new Error('no free port below the ephemeral range after 100 tries');
}

/** Ports and the listener's certificate, before pebble starts (a control plane must trust it from its start). */
export async function preparePebble(dir: string): Promise<PebbleSetup> {
  mkdirSync(dir, { recursive: true });
  const txtDir = join(dir, 'txt');
  mkdirSync(txtDir, { recursive: true });
  const listenerKeyFile = join(dir, 'listener.key');
  const listenerCaFile = join(dir, 'listener.crt');
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
      listenerKeyFile,
      '-out',
      listenerCaFile,
      '-days',
      '2',
      '-subj',
      '/CN=pebble test listener',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'ignore' },
  );
  const ports = { acme: await freePort(), management: await freePort(), tls: await freePort() };
  return {
    dir,
    ports,
    directory: `https://127.0.0.1:${ports.acme}/dir`,
    listenerCaFile,
    listenerKeyFile,
    txtDir,
  };
}

/** Starts pebble (no validation sleeps, no authorization reuse) with its DNS pointed at a fresh responder; resolves once it listens. */
export async function startPebble(setup: PebbleSetup, options: PebbleOptions): Promise<Pebble> {
  const dns = await DnsResponder.start({ txtDir: setup.txtDir });
  const config = join(setup.dir, 'pebble-config.json');
  writeFileSync(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${setup.ports.acme}`,
        managementListenAddress: `127.0.0.1:${setup.ports.management}`,
        certificate: setup.listenerCaFile,
        privateKey: setup.listenerKeyFile,
        httpPort: options.httpPort,
        tlsPort: setup.ports.tls,
        ocspResponderURL: '',
        externalAccountBindingRequired: options.eab !== undefined,
        ...(options.eab === undefined ? {} : { externalAccountMACKeys: options.eab }),
        ...(options.validitySeconds === undefined
          ? {}
          : { certificateValidityPeriod: options.validitySeconds }),
      },
    }),
  );
  const child = spawn('pebble', ['-config', config, '-dnsserver', dns.address, '-strict', 'false'], {
    // Orders validate (pebble would reuse a valid authorization half the time, as Let's Encrypt does for 30 days):
    // a test that breaks validation must see it fail. Pebble 2.4 still reuses 1 time in 100 at 0 (wfe.go:
    // `rand.Intn(100) > percent`); a test that needs a validation checks that the DNS was asked (acme.test.ts).
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_AUTHZREUSE: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const listening = new Promise<void>((resolve, reject) => {
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        output = `${output}${line}\n`.slice(-20_000);
        if (line.includes('ACME directory available at')) resolve();
      });
    }
    child.once('exit', (code) => reject(new Error(`pebble exited with ${code}: ${output}`)));
  });
  try {
    await withDeadline(listening, 20_000, 'pebble to listen');
  } catch (error) {
    child.kill('SIGKILL');
    await dns.close();
    throw new Error(`${String(error)}; pebble said: ${output}`);
  }
  const ca = readFileSync(setup.listenerCaFile);
  const management = `https://127.0.0.1:${setup.ports.management}`;
  // pebble logs both of its listeners before they are bound (goroutines): ask each until it answers.
  try {
    await waitFor(
      'pebble to answer',
      async () => {
        await get(setup.directory, ca);
        return get(`${management}/roots/0`, ca);
      },
      20_000,
    );
  } catch (error) {
    child.kill('SIGKILL');
    await dns.close();
    throw new Error(`${String(error)}; pebble said: ${output}`);
  }
  return {
    ...setup,
    dns,
    root: () => get(`${management}/roots/0`, ca),
    async certStatus(serial) {
      const body = await get(`${management}/cert-status-by-serial/${serial}`, ca);
      return (JSON.parse(body) as { Status: string }).Status;
    },
    async stop() {
      await dns.close();
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await withDeadline(once(child as ChildProcess, 'exit'), 10_000, 'pebble to exit');
    },
  };
}

function get(url: string, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, timeout: 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () =>
          (res.statusCode ?? 0) < 300
            ? resolve(body)
            : reject(new Error(`${url}: ${res.statusCode} ${body}`)),
        );
      })
      .on('timeout', function (this: { destroy(e: Error): void }) {
        this.destroy(new Error(`${url}: no answer within 5 s`));
      })
      .on('error', reject);
  });
}
