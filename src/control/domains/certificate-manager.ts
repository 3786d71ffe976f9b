// The certificate loop: every public host gets a certificate from the CA, renewed before it expires, backed off on
// failure; the proxy gets the files and the HTTP-01 answers through the route table.
import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type AcmeProblem,
  CERTIFICATE_RETRY,
  hostFileName,
  renewalTime,
  renewalTimeInWindow,
  retryDelay,
} from '../../domain/certificate.js';
import { BerthError } from '../../domain/errors.js';
import type { AcmeChallenge, CertificateConfig } from '../../domain/route-table.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import { formatDuration } from '../../lib/duration.js';
import type { Logger } from '../../lib/logger.js';
import { every, type Ticker } from '../../lib/ticker.js';
import { AcmeFailure, type AcmeIssuer, type ChallengeSolver } from './acme-issuer.js';
import { certificateFacts, keyMatches } from './certificate-facts.js';
import { runDnsHook } from './dns-hook.js';
import type { DomainRegistry } from './domain-registry.js';
import type { CertificatePatch, DomainStore, StoredCertificate } from './domain-store.js';

/** The loop wakes at least this often (renewal times and backoffs wake it sooner). */
const LOOP_INTERVAL_MS = 3_600_000;

/** RFC 5280 CRLReason codes `berth domains revoke --reason` accepts. */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  superseded: 4,
  cessationOfOperation: 5,
} as const;
export type RevocationReason = keyof typeof REVOCATION_REASONS;

/** What a forced order ended with. */
export interface OrderOutcome {
  outcome: 'issued' | 'renewed' | 'failed';
  certificate: StoredCertificate;
}

export interface CertificateManagerOptions {
  store: DomainStore;
  registry: DomainRegistry;
  issuer: AcmeIssuer;
  /** The DNS-01 hook command, if configured. */
  dnsHook?: string;
  /** Sends the route table (with `certificates()` and `challenges()`); true once the proxy has it. */
  traffic: { sync(): Promise<boolean> };
  /** `<data-dir>/proxy/certs/acme`: the proxy reads the files from here. */
  certsDir: string;
  log: Logger;
  clock?: Clock;
  retry?: { initialMs: number; maxMs: number };
  random?: () => number;
}

type Request =
  | {
      kind: 'renew';
      host: string;
      resolve: (outcome: OrderOutcome) => void;
      reject: (error: unknown) => void;
    }
  | {
      kind: 'revoke';
      host: string;
      reason: RevocationReason;
      resolve: (certificate: StoredCertificate) => void;
      reject: (error: unknown) => void;
    };

/**
 * Keeps one certificate per public host. One loop (`every`) does everything, one order at a time: new hosts get a
 * row (`pending`) and an order, certificates are renewed at their renewal time (2/3 of the lifetime, or the CA's
 * ARI window), a failed order is retried after a growing backoff (1 min … 6 h, or the CA's Retry-After), and a
 * failed renewal leaves the current certificate serving. Forced renewals and revocations are requests the loop
 * serves first.
 */
export class CertificateManager {
  readonly #o: CertificateManagerOptions;
  readonly #clock: Clock;
  readonly #retry: { initialMs: number; maxMs: number };
  readonly #challenges = new Map<string, AcmeChallenge>();
  #requests: Request[] = [];
  #ticker: Ticker | undefined;
  /** Files not referenced by the table the proxy has may be removed (set after each successful sync). */
  #mayCollect = false;

  constructor(options: CertificateManagerOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#retry = options.retry ?? CERTIFICATE_RETRY;
  }

  /** Orders interrupted by a stop become failures (or, for renewals, the serving certificate again); then the loop. */
  start(): void {
    for (const cert of this.#o.store.listCertificates()) {
      if (cert.state !== 'ordering' && cert.state !== 'renewing') continue;
      const problem: AcmeProblem = {
        type: 'berth:interrupted',
        detail: 'the control plane stopped during the order; it is ordered again',
      };
      this.#o.store.transition(
        cert.host,
        cert.state === 'ordering' ? 'failed' : 'active',
        {
          lastError: problem,
          nextAttemptAt: this.#clock.now(),
        },
        () => ({
          actor: 'certificates',
          kind: 'certificate.interrupted',
          app: cert.app,
          message: `${cert.host}: ${problem.detail}`,
          data: { host: cert.host, problem },
        }),
      );
    }
    this.#ticker = every(LOOP_INTERVAL_MS, (signal) => this.#run(signal), {
      name: 'certificates',
      log: this.#o.log,
      clock: this.#clock,
      immediate: true,
      retryMs: 60_000,
    });
  }

  async stop(): Promise<void> {
    await this.#ticker?.stop();
    for (const request of this.#requests.splice(0))
      request.reject(new BerthError('runtime_failure', 'the control plane is stopping'));
  }

  /** Hosts or apps changed: look again now. */
  kick(): void {
    this.#ticker?.kick();
  }

  /** The certificates the proxy serves: those that are valid now (a revoked one is not). */
  certificates(): CertificateConfig[] {
    return this.#o.store
      .listCertificates()
      .filter((c) => (c.state === 'active' || c.state === 'renewing') && c.fileBase !== null)
      .map((c) => ({
        host: c.host,
        certFile: this.#path(c.fileBase!, 'crt'),
        keyFile: this.#path(c.fileBase!, 'key'),
      }));
  }

  /** HTTP-01 answers of the orders under way. */
  challenges(): AcmeChallenge[] {
    return [...this.#challenges.values()];
  }

  /** Orders a certificate for `host` now, whatever its renewal time; resolves once the order ended. */
  renew(host: string): Promise<OrderOutcome> {
    return new Promise((resolve, reject) => {
      this.#requests.push({ kind: 'renew', host, resolve, reject });
      this.kick();
    });
  }

  /** Revokes the serving certificate of `host` at the CA and stops serving it; a new order follows at once. */
  revoke(host: string, reason: RevocationReason): Promise<StoredCertificate> {
    return new Promise((resolve, reject) => {
      this.#requests.push({ kind: 'revoke', host, reason, resolve, reject });
      this.kick();
    });
  }

  #path(fileBase: string, ext: 'crt' | 'key'): string {
    return join(this.#o.certsDir, `${fileBase}.${ext}`);
  }

  async #run(signal: AbortSignal): Promise<number> {
    await this.#reconcileHosts();
    for (const request of this.#requests.splice(0)) {
      if (signal.aborted) {
        request.reject(new BerthError('runtime_failure', 'the control plane is stopping'));
        continue;
      }
      await this.#serve(request).catch(request.reject);
    }
    let next = Number.POSITIVE_INFINITY;
    for (const listed of this.#o.store.listCertificates()) {
      if (signal.aborted) break;
      const host = listed.host;
      if (this.#dueAt(listed, this.#clock.now()) <= this.#clock.now()) await this.#order(host);
      let cert = this.#o.store.getCertificate(host);
      if (
        cert?.state === 'active' &&
        cert.ariNextCheckAt !== null &&
        cert.ariNextCheckAt <= this.#clock.now()
      ) {
        await this.#refreshRenewalWindow(cert);
        cert = this.#o.store.getCertificate(host);
      }
      if (cert === undefined) continue;
      next = Math.min(
        next,
        this.#dueAt(cert, this.#clock.now()),
        cert.ariNextCheckAt ?? Number.POSITIVE_INFINITY,
      );
    }
    if (this.#mayCollect) await this.#collectFiles();
    return Math.max(0, next - this.#clock.now());
  }

  /** A row for every managed host, none for the others; the proxy stops serving removed ones. */
  async #reconcileHosts(): Promise<void> {
    const wanted = new Map(this.#o.registry.managedHosts().map((h) => [h.host, h]));
    let removed = false;
    for (const cert of this.#o.store.listCertificates()) {
      const host = wanted.get(cert.host);
      if (host !== undefined && host.app === cert.app && host.challenge === cert.challenge) continue;
      // Gone, or now another app's (removed, then added elsewhere): it starts over.
      this.#o.store.deleteCertificate(cert.host);
      removed = true;
    }
    const existing = new Set(this.#o.store.listCertificates().map((c) => c.host));
    for (const host of wanted.values()) {
      if (!existing.has(host.host)) this.#o.store.insertCertificate(host.host, host.app, host.challenge);
    }
    if (removed || !this.#mayCollect) this.#mayCollect = await this.#o.traffic.sync();
  }

  /** When a certificate needs an order. */
  #dueAt(cert: StoredCertificate, now: number): number {
    const notBefore = cert.nextAttemptAt ?? 0;
    switch (cert.state) {
      case 'pending':
      case 'revoked':
        return now;
      case 'failed':
        return notBefore;
      case 'active': {
        const filesGone =
          cert.fileBase === null ||
          !existsSync(this.#path(cert.fileBase, 'crt')) ||
          !existsSync(this.#path(cert.fileBase, 'key'));
        // Files lost (a restore without them) or another CA configured: renew now (after a backoff if it failed).
        if (filesGone || cert.directoryUrl !== this.#o.issuer.directoryUrl) return Math.max(now, notBefore);
        return Math.max(cert.renewAt ?? now, notBefore);
      }
      case 'ordering':
      case 'renewing':
        return Number.POSITIVE_INFINITY;
    }
  }

  async #serve(request: Request): Promise<void> {
    const cert = this.#o.store.getCertificate(request.host);
    if (cert === undefined) {
      throw new BerthError(
        'not_found',
        `${request.host} has no certificate from the CA (a localhost name, not a host of any app, or ACME is off)`,
      );
    }
    if (request.kind === 'renew') {
      request.resolve(await this.#order(request.host));
      return;
    }
    if (cert.state !== 'active' || cert.certPem === null) {
      throw new BerthError('conflict', `${cert.host} has no certificate to revoke (it is ${cert.state})`);
    }
    try {
      await this.#o.issuer.revoke(cert.certPem, REVOCATION_REASONS[request.reason]);
    } catch (error) {
      const problem = problemOf(error);
      throw new BerthError(
        'runtime_failure',
        `the CA did not revoke ${cert.host}: ${problem.type}: ${problem.detail}`,
      );
    }
    const revoked = this.#o.store.transition(cert.host, 'revoked', { nextAttemptAt: null }, () => ({
      actor: 'certificates',
      kind: 'certificate.revoked',
      app: cert.app,
      message: `${cert.host}: certificate ${cert.serial} revoked (${request.reason}); a new one is ordered`,
      data: { host: cert.host, serial: cert.serial, reason: request.reason },
    }));
    // The revoked certificate leaves the table now; the order that follows (this same run) brings a new one.
    this.#mayCollect = await this.#o.traffic.sync();
    request.resolve(revoked);
  }

  /** One order for `host`: its state moves to ordering or renewing, then to active, or failed with the problem. */
  async #order(host: string): Promise<OrderOutcome> {
    const before = this.#o.store.getCertificate(host)!;
    const renewal = before.state === 'active';
    if (before.state === 'ordering' || before.state === 'renewing')
      throw new BerthError('conflict', `${host}: an order is under way`);
    const started = this.#clock.now();
    this.#o.store.transition(host, renewal ? 'renewing' : 'ordering', { lastAttemptAt: started }, () => ({
      actor: 'certificates',
      kind: renewal ? 'certificate.renewing' : 'certificate.ordering',
      app: before.app,
      message: `${host}: ${renewal ? 'renewing' : 'ordering'} a certificate from ${this.#o.issuer.directoryUrl} (${before.challenge})`,
      data: { host, challenge: before.challenge, directory: this.#o.issuer.directoryUrl },
    }));
    try {
      const replaces =
        renewal && before.renewalInfo && before.certPem !== null
          ? certificateFacts(before.certPem).ariCertId
          : undefined;
      const issued = await this.#o.issuer.order(host, before.challenge, this.#solver, replaces);
      if (!keyMatches(issued.chainPem, issued.keyPem)) {
        throw new AcmeFailure({
          type: 'berth:badCertificate',
          detail: 'the CA sent a certificate for another key',
        });
      }
      const facts = certificateFacts(issued.chainPem);
      const fileBase = `${hostFileName(host)}.${facts.serial}`;
      await this.#writeFiles(fileBase, issued.chainPem, issued.keyPem);
      const patch: CertificatePatch = {
        serial: facts.serial,
        issuer: facts.issuer,
        notBefore: facts.notBefore,
        notAfter: facts.notAfter,
        renewAt: renewalTime(facts.notBefore, facts.notAfter),
        renewalInfo: false,
        ariNextCheckAt: null,
        certPem: issued.chainPem,
        fileBase,
        directoryUrl: this.#o.issuer.directoryUrl,
        lastError: null,
        failures: 0,
        nextAttemptAt: null,
      };
      Object.assign(patch, await this.#renewalWindow(facts.ariCertId));
      const lifetime = formatDuration(
        Math.max(0, Math.round((facts.notAfter - facts.notBefore) / 1000) * 1000),
      );
      const cert = this.#o.store.transition(host, 'active', patch, () => ({
        actor: 'certificates',
        kind: renewal ? 'certificate.renewed' : 'certificate.issued',
        app: before.app,
        message:
          `${host}: certificate ${facts.serial} ${renewal ? 'renewed' : 'issued'} by ${facts.issuer}, ` +
          `valid until ${new Date(facts.notAfter).toISOString()} (${lifetime}); renewal due ${new Date(patch.renewAt!).toISOString()}`,
        data: {
          host,
          serial: facts.serial,
          issuer: facts.issuer,
          notAfter: facts.notAfter,
          renewAt: patch.renewAt,
          renewalInfo: patch.renewalInfo,
          previousSerial: before.serial,
        },
      }));
      // The proxy swaps the certificate in with the new table; the old files go once it has the table.
      this.#mayCollect = await this.#o.traffic.sync();
      return { outcome: renewal ? 'renewed' : 'issued', certificate: cert };
    } catch (error) {
      const problem = problemOf(error);
      const failures = before.failures + 1;
      const delay = Math.max(
        retryDelay(failures, this.#retry),
        error instanceof AcmeFailure ? (error.retryAfterMs ?? 0) : 0,
      );
      // A renewal asked for before its time (`berth domains renew`) is retried when renewal is due, not sooner.
      const now = this.#clock.now();
      const due = renewal ? this.#dueAt({ ...before, nextAttemptAt: null }, now) : now;
      const nextAttemptAt = Math.max(now + delay, due);
      const cert = this.#o.store.transition(
        host,
        renewal ? 'active' : 'failed',
        { lastError: problem, failures, nextAttemptAt },
        () => ({
          actor: 'certificates',
          kind: renewal ? 'certificate.renewal_failed' : 'certificate.failed',
          app: before.app,
          message:
            `${host}: ${renewal ? 'renewal' : 'order'} failed: ${problem.type}: ${problem.detail}` +
            (renewal ? `; certificate ${before.serial} keeps serving` : '') +
            `; next attempt in ${formatDuration(Math.round((nextAttemptAt - now) / 1000) * 1000)}`,
          data: { host, problem, failures, nextAttemptAt },
        }),
      );
      this.#o.log.warn({ host, problem }, 'certificate order failed');
      return { outcome: 'failed', certificate: cert };
    }
  }

  /** The CA's renewal window (ARI) for a new certificate, when it offers one; advisory, so a failure is ignored. */
  async #renewalWindow(certId: string | undefined): Promise<CertificatePatch> {
    if (certId === undefined) return {};
    try {
      const window = await this.#o.issuer.renewalWindow(certId);
      if (window === undefined) return {};
      const now = this.#clock.now();
      return {
        renewAt: renewalTimeInWindow(window.start, window.end, now, (this.#o.random ?? Math.random)()),
        renewalInfo: true,
        ariNextCheckAt: now + window.retryAfterMs,
      };
    } catch (error) {
      this.#o.log.warn({ err: error }, 'renewal information (ARI) not available');
      return {};
    }
  }

  /** Asks the CA again for its window (it may move it earlier, e.g. before a mass revocation). */
  async #refreshRenewalWindow(cert: StoredCertificate): Promise<void> {
    const certId = cert.certPem === null ? undefined : certificateFacts(cert.certPem).ariCertId;
    const patch = await this.#renewalWindow(certId);
    this.#o.store.update(cert.host, {
      ...patch,
      ariNextCheckAt: patch.ariNextCheckAt ?? this.#clock.now() + 6 * 3_600_000,
    });
  }

  readonly #solver: ChallengeSolver = {
    present: async (type, host, token, value) => {
      if (type === 'dns-01') {
        await runDnsHook(this.#dnsHook(), 'set', host, value);
        return;
      }
      this.#challenges.set(token, { host, token, keyAuthorization: value });
      if (!(await this.#o.traffic.sync())) {
        throw new AcmeFailure({
          type: 'berth:proxyUnavailable',
          detail: 'the proxy did not take the challenge answer (is it running?); nothing was asked of the CA',
        });
      }
    },
    withdraw: async (type, host, token, value) => {
      if (type === 'dns-01') {
        await runDnsHook(this.#dnsHook(), 'clear', host, value).catch((error: unknown) => {
          this.#o.log.warn({ err: error, host }, 'the DNS hook did not clear the challenge record');
        });
        return;
      }
      this.#challenges.delete(token);
      await this.#o.traffic.sync();
    },
  };

  #dnsHook(): string {
    if (this.#o.dnsHook === undefined)
      throw new AcmeFailure({ type: 'berth:noDnsHook', detail: 'DNS-01 needs --acme-dns-hook' });
    return this.#o.dnsHook;
  }

  /** Chain and key under their final names only once complete (a temporary name, then a rename). */
  async #writeFiles(fileBase: string, chainPem: string, keyPem: string): Promise<void> {
    await mkdir(this.#o.certsDir, { recursive: true, mode: 0o700 });
    for (const [ext, text] of [
      ['key', keyPem],
      ['crt', chainPem],
    ] as const) {
      const temporary = this.#path(`.tmp-${fileBase}`, ext);
      await writeFile(temporary, text, { mode: 0o600 });
      await chmod(temporary, 0o600);
      await rename(temporary, this.#path(fileBase, ext));
    }
  }

  /** Removes files no certificate row names (replaced, revoked and re-issued, removed hosts, interrupted writes). */
  async #collectFiles(): Promise<void> {
    if (!existsSync(this.#o.certsDir)) return;
    const kept = new Set(
      this.#o.store
        .listCertificates()
        .map((c) => c.fileBase)
        .filter((base): base is string => base !== null),
    );
    for (const name of readdirSync(this.#o.certsDir)) {
      const base = name.replace(/\.(crt|key)$/, '');
      if (!kept.has(base)) await rm(join(this.#o.certsDir, name), { force: true });
    }
  }
}

function problemOf(error: unknown): AcmeProblem {
  if (error instanceof AcmeFailure) return error.problem;
  return { type: 'berth:internal', detail: error instanceof Error ? error.message : String(error) };
}
