// Managed (ACME) certificates: their lifecycle as data, when to renew, and what `berth domains list` shows.
import { stateMachine } from './state-machine.js';

/**
 * `pending`: a host with no certificate yet, waiting for its first order. `ordering`: an order runs and no valid
 * certificate serves (first issue, after a failure or a revocation). `failed`: the last order failed and nothing
 * serves; the next one is due after a backoff. `active`: a valid certificate serves. `renewing`: an order runs
 * while the current certificate keeps serving; success or failure both go back to `active` (a failed renewal
 * never takes down a certificate that still serves). `revoked`: revoked at the CA; a new order follows at once.
 */
export type CertificateState = 'pending' | 'ordering' | 'failed' | 'active' | 'renewing' | 'revoked';

export const CERTIFICATE_STATES = stateMachine<CertificateState>('certificate', {
  pending: ['ordering'],
  ordering: ['active', 'failed'],
  failed: ['ordering'],
  active: ['renewing', 'revoked'],
  renewing: ['active'],
  revoked: ['ordering'],
});

/** How an ACME CA proves control: a file on the HTTP listener, or a TXT record set by a hook command. */
export type ChallengeType = 'http-01' | 'dns-01';

/** An RFC 7807 problem document as the CA sent it (RFC 8555 §6.7), or one Berth made for a local failure. */
export interface AcmeProblem {
  /** `urn:ietf:params:acme:error:rateLimited`, `…:connection`, `…:unauthorized`; `berth:…` for local failures. */
  type: string;
  detail: string;
  status?: number;
  /** Per-identifier problems (RFC 8555 §6.7.1), when the CA sent them. */
  subproblems?: AcmeProblem[];
}

/** The certificate of one host as the control plane records it. Times are epoch milliseconds. */
export interface CertificateRecord {
  host: string;
  app: string;
  state: CertificateState;
  challenge: ChallengeType;
  /** Of the certificate that serves (kept through failed renewals); null before the first issue. */
  serial: string | null;
  issuer: string | null;
  notBefore: number | null;
  notAfter: number | null;
  /** When the next renewal is due: 2/3 of the lifetime, or a time in the CA's ARI window. */
  renewAt: number | null;
  /** The CA said when (ARI, RFC 9773): `renewAt` is in its suggested window. */
  renewalInfo: boolean;
  lastAttemptAt: number | null;
  /** The last attempt's problem; null once an attempt succeeded. */
  lastError: AcmeProblem | null;
  /** Consecutive failed attempts (the backoff grows with them). */
  failures: number;
  /** Earliest time of the next attempt after a failure. */
  nextAttemptAt: number | null;
  updatedAt: number;
}

/** One host of an app as `GET /v1/domains` returns it. */
export interface DomainInfo {
  host: string;
  app: string;
  /** `spec`: a route in berth.yaml; `cli`: `berth domains add` (an alias of the app's first route). */
  source: 'spec' | 'cli';
  /** `acme`: a certificate from the configured CA; `local`: Berth's local CA (localhost names, or ACME off). */
  tls: 'acme' | 'local';
  certificate: CertificateRecord | null;
}

/** `GET /v1/domains`: how certificates are obtained here, and every host with its certificate. */
export interface DomainsView {
  /** The CA directory; null when ACME is off (every host gets the local CA's certificate). */
  acme: { directory: string | null; dnsHook: boolean };
  domains: DomainInfo[];
}

/** `POST /v1/apps/:app/domains/:host/renew`: what the order ended with. */
export interface RenewResult {
  outcome: 'issued' | 'renewed' | 'failed';
  certificate: CertificateRecord;
}

/** Renewal at two thirds of the lifetime (Let's Encrypt's and Caddy's advice: 30 days before a 90-day expiry). */
export function renewalTime(notBefore: number, notAfter: number): number {
  return notBefore + Math.floor(((notAfter - notBefore) * 2) / 3);
}

/**
 * RFC 9773 §4.2: a uniformly random time in the CA's suggested window, so that many clients do not renew at the
 * same instant; a window that has passed means now.
 */
export function renewalTimeInWindow(start: number, end: number, now: number, random: number): number {
  if (end <= now) return now;
  const from = Math.max(start, now);
  return from + Math.floor((end - from) * random);
}

/** Backoff after `failures` consecutive failed orders: 1 min, 2, 4 … up to 6 h (the CA's rate limits stay far). */
export const CERTIFICATE_RETRY = { initialMs: 60_000, maxMs: 6 * 3_600_000 } as const;

export function retryDelay(failures: number, retry: { initialMs: number; maxMs: number }): number {
  if (failures <= 0) return 0;
  return Math.min(retry.maxMs, retry.initialMs * 2 ** Math.min(failures - 1, 30));
}

/**
 * RFC 9773 §4.1: the ARI certificate identifier, `base64url(AKI keyIdentifier) "." base64url(serial)`, where the
 * serial is the DER integer's content octets (a leading zero byte kept when the high bit is set).
 */
export function ariCertId(authorityKeyId: Buffer, serialDer: Buffer): string {
  return `${authorityKeyId.toString('base64url')}.${serialDer.toString('base64url')}`;
}

/** A host as a file name: `*.example.com` → `_wildcard.example.com` (a `*` in a path invites globbing accidents). */
export function hostFileName(host: string): string {
  return host.startsWith('*.') ? `_wildcard${host.slice(1)}` : host;
}
