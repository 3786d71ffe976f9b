// The domains tables: hosts added with `berth domains add`, each host's managed certificate, ACME accounts.
import { z } from 'zod';
import {
  type AcmeProblem,
  CERTIFICATE_STATES,
  type CertificateRecord,
  type CertificateState,
  type ChallengeType,
} from '../../domain/certificate.js';
import { BerthError } from '../../domain/errors.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import { Notifier } from '../../lib/notifier.js';
import type { Database, Migration, Statement } from '../store/database.js';
import type { EventInput, EventStore } from '../store/event-store.js';

export const DOMAINS_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'domains, managed certificates, ACME accounts',
    sql: `
      -- Hosts added to an app with \`berth domains add\` (hosts in berth.yaml live in its releases).
      CREATE TABLE domains (
        host TEXT PRIMARY KEY,
        app TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL
      );
      -- One managed certificate per host; state moves only as CERTIFICATE_STATES allows.
      CREATE TABLE certificates (
        host TEXT PRIMARY KEY,
        app TEXT NOT NULL,
        state TEXT NOT NULL,
        challenge TEXT NOT NULL,
        directory_url TEXT,
        serial TEXT,
        issuer TEXT,
        not_before INTEGER,
        not_after INTEGER,
        renew_at INTEGER,
        renewal_info INTEGER NOT NULL DEFAULT 0,
        ari_next_check_at INTEGER,
        cert_pem TEXT,
        file_base TEXT,
        last_attempt_at INTEGER,
        last_error_json TEXT,
        failures INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      -- The account of each CA directory; its key is a platform secret (sealed by the secrets module).
      CREATE TABLE acme_accounts (
        directory_url TEXT PRIMARY KEY,
        account_url TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
    `,
  },
];

const domainRow = z.object({ host: z.string(), app: z.string(), created_at: z.number() });

const certificateRow = z.object({
  host: z.string(),
  app: z.string(),
  state: z.enum(CERTIFICATE_STATES.states as [CertificateState, ...CertificateState[]]),
  challenge: z.enum(['http-01', 'dns-01']),
  directory_url: z.string().nullable(),
  serial: z.string().nullable(),
  issuer: z.string().nullable(),
  not_before: z.number().nullable(),
  not_after: z.number().nullable(),
  renew_at: z.number().nullable(),
  renewal_info: z.number(),
  ari_next_check_at: z.number().nullable(),
  cert_pem: z.string().nullable(),
  file_base: z.string().nullable(),
  last_attempt_at: z.number().nullable(),
  last_error_json: z.string().nullable(),
  failures: z.number().int(),
  next_attempt_at: z.number().nullable(),
  updated_at: z.number(),
});

/** A certificate row with what only the control plane needs: the PEM chain, its files, the CA it came from. */
export interface StoredCertificate extends CertificateRecord {
  directoryUrl: string | null;
  certPem: string | null;
  /** `<proxy>/certs/acme/<fileBase>.crt|.key`; null before the first issue. */
  fileBase: string | null;
  /** When to ask the CA for its renewal window again (ARI); null when it offers none. */
  ariNextCheckAt: number | null;
}

function toCertificate(row: z.output<typeof certificateRow>): StoredCertificate {
  return {
    host: row.host,
    app: row.app,
    state: row.state,
    challenge: row.challenge,
    serial: row.serial,
    issuer: row.issuer,
    notBefore: row.not_before,
    notAfter: row.not_after,
    renewAt: row.renew_at,
    renewalInfo: row.renewal_info === 1,
    lastAttemptAt: row.last_attempt_at,
    lastError: row.last_error_json === null ? null : (JSON.parse(row.last_error_json) as AcmeProblem),
    failures: row.failures,
    nextAttemptAt: row.next_attempt_at,
    updatedAt: row.updated_at,
    directoryUrl: row.directory_url,
    certPem: row.cert_pem,
    fileBase: row.file_base,
    ariNextCheckAt: row.ari_next_check_at,
  };
}

/** What the API shows of a stored certificate (not its PEM, files or CA URL). */
export function certificateRecord(stored: StoredCertificate): CertificateRecord {
  return {
    host: stored.host,
    app: stored.app,
    state: stored.state,
    challenge: stored.challenge,
    serial: stored.serial,
    issuer: stored.issuer,
    notBefore: stored.notBefore,
    notAfter: stored.notAfter,
    renewAt: stored.renewAt,
    renewalInfo: stored.renewalInfo,
    lastAttemptAt: stored.lastAttemptAt,
    lastError: stored.lastError,
    failures: stored.failures,
    nextAttemptAt: stored.nextAttemptAt,
    updatedAt: stored.updatedAt,
  };
}

/** Fields an order's outcome (or an ARI answer) changes besides the state. */
export type CertificatePatch = Partial<
  Pick<
    StoredCertificate,
    | 'serial'
    | 'issuer'
    | 'notBefore'
    | 'notAfter'
    | 'renewAt'
    | 'renewalInfo'
    | 'ariNextCheckAt'
    | 'certPem'
    | 'fileBase'
    | 'directoryUrl'
    | 'lastAttemptAt'
    | 'lastError'
    | 'failures'
    | 'nextAttemptAt'
    | 'challenge'
  >
>;

const COLUMNS: Record<keyof CertificatePatch, string> = {
  serial: 'serial',
  issuer: 'issuer',
  notBefore: 'not_before',
  notAfter: 'not_after',
  renewAt: 'renew_at',
  renewalInfo: 'renewal_info',
  ariNextCheckAt: 'ari_next_check_at',
  certPem: 'cert_pem',
  fileBase: 'file_base',
  directoryUrl: 'directory_url',
  lastAttemptAt: 'last_attempt_at',
  lastError: 'last_error_json',
  failures: 'failures',
  nextAttemptAt: 'next_attempt_at',
  challenge: 'challenge',
};

function columnValue(key: keyof CertificatePatch, value: unknown): unknown {
  if (key === 'lastError') return value === null ? null : JSON.stringify(value);
  if (key === 'renewalInfo') return value ? 1 : 0;
  return value;
}

/**
 * The repository of the domains module. Certificate states change only through `transition`, which refuses a
 * jump `CERTIFICATE_STATES` does not list and writes the state, its fields and its event in one transaction.
 */
export class DomainStore {
  /** Notified after each committed change of a certificate or domain (waiters re-read). */
  readonly changed = new Notifier();
  readonly #db: Database;
  readonly #events: EventStore;
  readonly #clock: Clock;
  readonly #s: {
    domains: Statement<z.output<typeof domainRow>>;
    domain: Statement<z.output<typeof domainRow>>;
    addDomain: Statement<never>;
    removeDomain: Statement<never>;
    certificates: Statement<z.output<typeof certificateRow>>;
    certificate: Statement<z.output<typeof certificateRow>>;
    insertCertificate: Statement<never>;
    deleteCertificate: Statement<never>;
    account: Statement<{ account_url: string }>;
    saveAccount: Statement<never>;
  };

  constructor(db: Database, events: EventStore, clock: Clock = systemClock) {
    db.migrate('domains', DOMAINS_MIGRATIONS);
    this.#db = db;
    this.#events = events;
    this.#clock = clock;
    this.#s = {
      domains: db.statement('SELECT host, app, created_at FROM domains ORDER BY app, host', domainRow),
      domain: db.statement('SELECT host, app, created_at FROM domains WHERE host = ?', domainRow),
      addDomain: db.statement('INSERT INTO domains (host, app, created_at, created_by) VALUES (?, ?, ?, ?)'),
      removeDomain: db.statement('DELETE FROM domains WHERE host = ?'),
      certificates: db.statement('SELECT * FROM certificates ORDER BY app, host', certificateRow),
      certificate: db.statement('SELECT * FROM certificates WHERE host = ?', certificateRow),
      insertCertificate: db.statement(
        `INSERT INTO certificates (host, app, state, challenge, created_at, updated_at)
         VALUES (?, ?, 'pending', ?, ?, ?)`,
      ),
      deleteCertificate: db.statement('DELETE FROM certificates WHERE host = ?'),
      account: db.statement(
        'SELECT account_url FROM acme_accounts WHERE directory_url = ?',
        z.object({ account_url: z.string() }),
      ),
      saveAccount: db.statement(
        `INSERT INTO acme_accounts (directory_url, account_url, created_at) VALUES (?, ?, ?)
         ON CONFLICT (directory_url) DO UPDATE SET account_url = excluded.account_url`,
      ),
    };
  }

  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn);
  }

  // Domains (hosts added from the CLI).

  listDomains(): { host: string; app: string; createdAt: number }[] {
    return this.#s.domains.all().map((r) => ({ host: r.host, app: r.app, createdAt: r.created_at }));
  }

  domainOwner(host: string): string | undefined {
    return this.#s.domain.get(host)?.app;
  }

  addDomain(host: string, app: string, actor: string): void {
    this.transaction(() => {
      this.#s.addDomain.run(host, app, this.#clock.now(), actor);
      this.#events.record({
        actor,
        kind: 'domain.added',
        app,
        message: `${host} added to ${app}`,
        data: { host },
      });
      this.#db.afterCommit(() => this.changed.notify());
    });
  }

  removeDomain(host: string, app: string, actor: string): void {
    this.transaction(() => {
      this.#s.removeDomain.run(host);
      this.#events.record({
        actor,
        kind: 'domain.removed',
        app,
        message: `${host} removed from ${app}`,
        data: { host },
      });
      this.#db.afterCommit(() => this.changed.notify());
    });
  }

  // Certificates.

  listCertificates(): StoredCertificate[] {
    return this.#s.certificates.all().map(toCertificate);
  }

  getCertificate(host: string): StoredCertificate | undefined {
    const row = this.#s.certificate.get(host);
    return row === undefined ? undefined : toCertificate(row);
  }

  /** A host that needs a certificate: `pending`, with its event. */
  insertCertificate(host: string, app: string, challenge: ChallengeType): void {
    this.transaction(() => {
      const now = this.#clock.now();
      this.#s.insertCertificate.run(host, app, challenge, now, now);
      this.#events.record({
        actor: 'certificates',
        kind: 'certificate.pending',
        app,
        message: `${host}: a certificate will be ordered (${challenge})`,
        data: { host, challenge },
      });
      this.#db.afterCommit(() => this.changed.notify());
    });
  }

  /** The host no longer needs one (its route or domain is gone). */
  deleteCertificate(host: string): void {
    this.transaction(() => {
      const before = this.getCertificate(host);
      if (before === undefined) return;
      this.#s.deleteCertificate.run(host);
      this.#events.record({
        actor: 'certificates',
        kind: 'certificate.removed',
        app: before.app,
        message: `${host}: no app serves it any more; its certificate is no longer served or renewed`,
        data: { host, serial: before.serial },
      });
      this.#db.afterCommit(() => this.changed.notify());
    });
  }

  /**
   * Moves a certificate to `to` with its fields, and records `event(before)`, in one transaction; throws
   * `IllegalTransition` (nothing written) for a jump the machine does not list.
   */
  transition(
    host: string,
    to: CertificateState,
    patch: CertificatePatch,
    event: (before: StoredCertificate) => EventInput,
  ): StoredCertificate {
    return this.transaction(() => {
      const before = this.getCertificate(host);
      if (before === undefined) throw new BerthError('not_found', `no certificate for ${host}`);
      CERTIFICATE_STATES.assert(host, before.state, to);
      this.#write(host, { ...patch }, to);
      this.#events.record(event(before));
      this.#db.afterCommit(() => this.changed.notify());
      return this.getCertificate(host)!;
    });
  }

  /** Fields that are not the state (an ARI answer, a forced renewal's due time). */
  update(host: string, patch: CertificatePatch): void {
    this.transaction(() => {
      this.#write(host, patch, undefined);
      this.#db.afterCommit(() => this.changed.notify());
    });
  }

  #write(host: string, patch: CertificatePatch, state: CertificateState | undefined): void {
    const keys = Object.keys(patch) as (keyof CertificatePatch)[];
    const sets = keys.map((key) => `${COLUMNS[key]} = ?`);
    const values = keys.map((key) => columnValue(key, patch[key]));
    if (state !== undefined) {
      sets.push('state = ?');
      values.push(state);
    }
    sets.push('updated_at = ?');
    values.push(this.#clock.now());
    // Column names come from COLUMNS only; values are bound.
    this.#db.statement(`UPDATE certificates SET ${sets.join(', ')} WHERE host = ?`).run(...values, host);
  }

  // ACME accounts.

  accountUrl(directoryUrl: string): string | undefined {
    return this.#s.account.get(directoryUrl)?.account_url;
  }

  saveAccount(directoryUrl: string, accountUrl: string): void {
    this.#s.saveAccount.run(directoryUrl, accountUrl, this.#clock.now());
  }
}
