// A local certificate authority (made with openssl on first start) that signs certificates for *.localhost.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, link, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where the CA lives: `ca.crt` (give it to clients: `curl --cacert`) and `ca.key` (owner-only). */
export interface LocalCaPaths {
  dir: string;
  cert: string;
  key: string;
}

const CA_CONFIG = `[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = Berth local CA
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
`;

function leafConfig(commonName: string, altNames: string[]): string {
  return `[req]
distinguished_name = dn
prompt = no
[dn]
CN = ${commonName}
[ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = ${altNames.join(',')}
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash
`;
}

/** Creates (once) and uses a local CA. Needs `openssl` (3.x) on PATH or at `openssl`. */
export class LocalCa {
  readonly paths: LocalCaPaths;
  readonly #openssl: string;

  constructor(dir: string, openssl = 'openssl') {
    this.paths = { dir, cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
    this.#openssl = openssl;
  }

  /** Creates the CA unless it exists. Files are written under temporary names and renamed, so a crash leaves none. */
  async ensure(): Promise<void> {
    if (existsSync(this.paths.cert) && existsSync(this.paths.key)) return;
    await mkdir(this.paths.dir, { recursive: true, mode: 0o700 });
    const tmp = join(this.paths.dir, `.tmp-${randomBytes(4).toString('hex')}`);
    await mkdir(tmp, { mode: 0o700 });
    try {
      await writeFile(join(tmp, 'ca.cnf'), CA_CONFIG);
      await run(this.#openssl, [
        'req',
        '-x509',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(tmp, 'ca.key'),
        '-out',
        join(tmp, 'ca.crt'),
        '-days',
        '3650',
        '-config',
        join(tmp, 'ca.cnf'),
      ]);
      await chmod(join(tmp, 'ca.key'), 0o600);
      await rename(join(tmp, 'ca.key'), this.paths.key);
      await rename(join(tmp, 'ca.crt'), this.paths.cert);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  /**
   * Issues a server certificate for `names` (DNS names or IP addresses) into `<outBase>.crt` / `<outBase>.key`,
   * unless both exist already.
   */
  async issue(outBase: string, names: string[]): Promise<{ cert: string; key: string }> {
    const cert = `${outBase}.crt`;
    const key = `${outBase}.key`;
    if (existsSync(cert) && existsSync(key)) return { cert, key };
    const tmp = `${outBase}.tmp-${randomBytes(4).toString('hex')}`;
    const alt = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`));
    await writeFile(`${tmp}.cnf`, leafConfig(names[0] ?? 'localhost', alt));
    try {
      await run(this.#openssl, [
        'req',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        `${tmp}.key`,
        '-out',
        `${tmp}.csr`,
        '-config',
        `${tmp}.cnf`,
      ]);
      await run(this.#openssl, [
        'x509',
        '-req',
        '-in',
        `${tmp}.csr`,
        '-CA',
        this.paths.cert,
        '-CAkey',
        this.paths.key,
        '-set_serial',
        `0x${randomBytes(8).toString('hex')}`,
        '-days',
        '825',
        '-out',
        `${tmp}.crt`,
        '-extfile',
        `${tmp}.cnf`,
        '-extensions',
        'ext',
      ]);
      await chmod(`${tmp}.key`, 0o600);
      // Two proxy workers may issue the same name at once. The first to link its key wins; its certificate follows
      // and neither is replaced, so whoever sees both files sees a matching pair.
      try {
        await link(`${tmp}.key`, key);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        if (await appears(cert, 5000)) return { cert, key };
        await rename(`${tmp}.key`, key); // the other issuer died between its key and its certificate
      }
      await rename(`${tmp}.crt`, cert);
    } finally {
      await rm(`${tmp}.cnf`, { force: true });
      await rm(`${tmp}.csr`, { force: true });
      await rm(`${tmp}.key`, { force: true });
      await rm(`${tmp}.crt`, { force: true });
    }
    return { cert, key };
  }
}

/** Waits (polling, up to `timeoutMs`) for a file another process is about to put in place. */
async function appears(path: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}
