// SNI certificate selection: certificates from files (ACME or the user's), the local CA's localhost certificate, and
// per-host certificates for the *.localhost names routes serve, issued on first use (clients refuse "*.localhost").
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
import { BerthError, type Issue } from '../domain/errors.js';
import type { CertificateConfig } from '../domain/route-table.js';
import type { LocalCa } from './local-ca.js';

/** How many on-demand certificates are kept (in memory and in `certs/auto/`); the least recently used go first. */
export const DEFAULT_MAX_ISSUED = 256;
/** openssl runs at once for on-demand certificates, and handshakes that may wait for one; beyond: the default. */
const MAX_ISSUING = 2;
const MAX_WAITING = 64;

interface LoadedFiles {
  stamp: string;
  context: tls.SecureContext;
}

/** Identity and version of a file: a rewrite (new inode, or new size or mtime) makes another stamp. */
function fileStamp(path: string): string {
  const stat = statSync(path);
  return `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
}

export interface CertificateStoreOptions {
  /** Whether a route serves this lower-case host name: only those get a certificate issued on demand. */
  servesHost: (host: string) => boolean;
  maxIssued?: number;
}

/**
 * Holds the secure contexts; `replace` swaps them atomically so a reload drops no connection. A certificate is
 * issued on demand only for a `*.localhost` name that a route serves (exactly or by a wildcard); every other name
 * gets the default certificate, as nginx answers unknown names with its default server. Issued certificates are a
 * bounded cache, so no sequence of handshakes can fill the disk or keep openssl busy.
 */
export class CertificateStore {
  readonly #ca: LocalCa;
  readonly #certsDir: string;
  readonly #servesHost: (host: string) => boolean;
  readonly #maxIssued: number;
  #exact = new Map<string, tls.SecureContext>();
  /** The contexts of the current table's certificate files, with the files' identity when they were read. */
  #loaded = new Map<string, LoadedFiles>();
  #wildcard = new Map<string, tls.SecureContext>();
  #default: tls.SecureContext | undefined;
  #defaultPem: { cert: Buffer; key: Buffer } | undefined;
  /** Issued (or being issued) certificates by name, least recently used first. */
  readonly #issued = new Map<string, Promise<tls.SecureContext | undefined>>();
  #issuing = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(ca: LocalCa, certsDir: string, options: CertificateStoreOptions) {
    this.#ca = ca;
    this.#certsDir = certsDir;
    this.#servesHost = options.servesHost;
    this.#maxIssued = options.maxIssued ?? DEFAULT_MAX_ISSUED;
  }

  /** Creates the CA and the default certificate (localhost, *.localhost, 127.0.0.1, ::1). */
  async init(): Promise<void> {
    await this.#ca.ensure();
    await mkdir(join(this.#certsDir, 'auto'), { recursive: true, mode: 0o700 });
    const { cert, key } = await this.#ca.issue(join(this.#certsDir, 'localhost'), [
      'localhost',
      '*.localhost',
      '127.0.0.1',
      '::1',
    ]);
    this.#defaultPem = { cert: readFileSync(cert), key: readFileSync(key) };
    this.#default = tls.createSecureContext(this.#defaultPem);
    await this.#pruneIssuedFiles();
  }

  /** Keeps at most `maxIssued` certificates from earlier runs on disk (the newest). */
  async #pruneIssuedFiles(): Promise<void> {
    const dir = join(this.#certsDir, 'auto');
    const names = readdirSync(dir)
      .filter((f) => f.endsWith('.crt'))
      .map((f) => ({ name: f.slice(0, -4), mtime: statSync(join(dir, f)).mtimeMs }))
      .sort((a, b) => b.mtime - a.mtime);
    for (const { name } of names.slice(this.#maxIssued)) await this.#removeFiles(name);
  }

  async #removeFiles(name: string): Promise<void> {
    const base = join(this.#certsDir, 'auto', name);
    await rm(`${base}.crt`, { force: true });
    await rm(`${base}.key`, { force: true });
  }

  /** PEM of the default certificate, for clients that send no SNI (e.g. connecting to an IP address). */
  get defaultPem(): { cert: Buffer; key: Buffer } {
    if (this.#defaultPem === undefined) throw new Error('CertificateStore.init() was not awaited');
    return this.#defaultPem;
  }

  get defaultContext(): tls.SecureContext {
    if (this.#default === undefined) throw new Error('CertificateStore.init() was not awaited');
    return this.#default;
  }

  /**
   * Loads user certificates; throws `BerthError('invalid_route_table')` naming each unreadable entry, in which case
   * nothing changes.
   */
  replace(certificates: readonly CertificateConfig[]): void {
    const exact = new Map<string, tls.SecureContext>();
    const wildcard = new Map<string, tls.SecureContext>();
    const loaded = new Map<string, LoadedFiles>();
    const issues: Issue[] = [];
    certificates.forEach((c, i) => {
      try {
        const files = `${c.certFile}\0${c.keyFile}`;
        const stamp = `${fileStamp(c.certFile)}\0${fileStamp(c.keyFile)}`;
        // Files unchanged since the last table: the same context (a table is applied on every target change).
        const known = this.#loaded.get(files);
        const context =
          known !== undefined && known.stamp === stamp
            ? known.context
            : tls.createSecureContext({ cert: readFileSync(c.certFile), key: readFileSync(c.keyFile) });
        loaded.set(files, { stamp, context });
        if (c.host.startsWith('*.')) wildcard.set(c.host.slice(1), context);
        else exact.set(c.host, context);
      } catch (err) {
        issues.push({
          path: `certificates.${i}`,
          message: `cannot load certificate: ${(err as Error).message}`,
        });
      }
    });
    if (issues.length > 0) throw new BerthError('invalid_route_table', 'invalid certificates', { issues });
    this.#exact = exact;
    this.#wildcard = wildcard;
    this.#loaded = loaded;
  }

  /** `SNICallback` of the TLS server. */
  readonly sniCallback = (
    servername: string,
    callback: (err: Error | null, ctx?: tls.SecureContext) => void,
  ): void => {
    const name = servername.toLowerCase();
    const found = this.#lookup(name);
    if (found !== undefined) {
      callback(null, found);
      return;
    }
    if (!name.endsWith('.localhost') || !/^[a-z0-9.-]+$/.test(name) || !this.#servesHost(name)) {
      callback(null, this.#default);
      return;
    }
    let pending = this.#issued.get(name);
    if (pending !== undefined) {
      // Most recently used last.
      this.#issued.delete(name);
      this.#issued.set(name, pending);
    } else {
      if (this.#issuing >= MAX_ISSUING && this.#waiting.length >= MAX_WAITING) {
        callback(null, this.#default);
        return;
      }
      pending = this.#issue(name);
      this.#issued.set(name, pending);
      this.#evict();
    }
    pending.then((ctx) => callback(null, ctx ?? this.#default));
  };

  async #issue(name: string): Promise<tls.SecureContext | undefined> {
    if (this.#issuing >= MAX_ISSUING) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#issuing++;
    try {
      const { cert, key } = await this.#ca.issue(join(this.#certsDir, 'auto', name), [name]);
      return tls.createSecureContext({ cert: readFileSync(cert), key: readFileSync(key) });
    } catch {
      // openssl failed (or the files vanished): the default certificate answers, and the next handshake retries.
      this.#issued.delete(name);
      return undefined;
    } finally {
      this.#issuing--;
      this.#waiting.shift()?.();
    }
  }

  /** Drops the least recently used certificates beyond the limit, with their files. */
  #evict(): void {
    while (this.#issued.size > this.#maxIssued) {
      const [oldest, pending] = this.#issued.entries().next().value!;
      this.#issued.delete(oldest);
      void pending.then(() => this.#removeFiles(oldest));
    }
  }

  #lookup(name: string): tls.SecureContext | undefined {
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    let dot = name.indexOf('.');
    while (dot !== -1) {
      const context = this.#wildcard.get(name.slice(dot));
      if (context !== undefined) return context;
      dot = name.indexOf('.', dot + 1);
    }
    return undefined;
  }
}
