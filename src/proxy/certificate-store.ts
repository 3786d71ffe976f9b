// SNI certificate selection: user certificates from files, the local CA's localhost certificate, and
// per-host certificates for *.localhost names issued on first use (clients refuse "*.localhost" wildcards).
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
import { BerthError, type Issue } from '../domain/errors.js';
import type { CertificateConfig } from '../domain/route-table.js';
import type { LocalCa } from './local-ca.js';

/** Holds the secure contexts; `replace` swaps them atomically so a reload drops no connection. */
export class CertificateStore {
  readonly #ca: LocalCa;
  readonly #certsDir: string;
  #exact = new Map<string, tls.SecureContext>();
  #wildcard = new Map<string, tls.SecureContext>();
  #default: tls.SecureContext | undefined;
  #defaultPem: { cert: Buffer; key: Buffer } | undefined;
  readonly #issued = new Map<string, Promise<tls.SecureContext | undefined>>();

  constructor(ca: LocalCa, certsDir: string) {
    this.#ca = ca;
    this.#certsDir = certsDir;
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
    const issues: Issue[] = [];
    certificates.forEach((c, i) => {
      try {
        const context = tls.createSecureContext({
          cert: readFileSync(c.certFile),
          key: readFileSync(c.keyFile),
        });
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
    if (name.endsWith('.localhost') && /^[a-z0-9.-]+$/.test(name) && name.split('.').length >= 2) {
      let pending = this.#issued.get(name);
      if (pending === undefined) {
        pending = this.#ca
          .issue(join(this.#certsDir, 'auto', name), [name])
          .then(({ cert, key }) =>
            tls.createSecureContext({ cert: readFileSync(cert), key: readFileSync(key) }),
          )
          .catch(() => undefined);
        this.#issued.set(name, pending);
      }
      pending.then((ctx) => callback(null, ctx ?? this.#default));
      return;
    }
    callback(null, this.#default);
  };

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
