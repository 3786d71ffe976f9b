// RFC 8555 through `acme-client`: the account, one order per host, revocation, renewal info (ARI, RFC 9773).
import { AsyncLocalStorage } from 'node:async_hooks';
import { generateKeyPairSync } from 'node:crypto';
import type * as Acme from 'acme-client';
import type { AcmeProblem, ChallengeType } from '../../domain/certificate.js';
import { isWildcard } from '../../domain/host-name.js';

/** Well-known directories, by the names `--acme-directory` accepts besides a URL. */
export const ACME_DIRECTORIES: Record<string, string> = {
  letsencrypt: 'https://acme-v02.api.letsencrypt.org/directory',
  'letsencrypt-staging': 'https://acme-staging-v02.api.letsencrypt.org/directory',
  zerossl: 'https://acme.zerossl.com/v2/DV90',
  google: 'https://dv.acme-v02.api.pki.goog/directory',
  'google-staging': 'https://dv.acme-v02.test-api.pki.goog/directory',
};

/** Where and how to order: one CA directory, the account's contact, external account binding. */
export interface AcmeConfig {
  directoryUrl: string;
  /** `mailto:` contact of the account (optional: Let's Encrypt no longer mails expiry notices). */
  email?: string;
  /** External account binding (RFC 8555 §7.3.4): ZeroSSL, Google and others require it for a new account. */
  eab?: { kid: string; hmacKey: string };
  /** The DNS-01 hook command (wildcards need it); absent: no DNS-01. */
  dnsHook?: string;
}

/** What an order needs to prove control of a host: publish, then withdraw, an answer. */
export interface ChallengeSolver {
  /** HTTP-01: the key authorization at `/.well-known/acme-challenge/<token>`; DNS-01: the TXT value. */
  present(type: ChallengeType, host: string, token: string, value: string): Promise<void>;
  withdraw(type: ChallengeType, host: string, token: string, value: string): Promise<void>;
}

/** An order's result: the chain as the CA sent it (leaf first) and the key made for it. */
export interface IssuedCertificate {
  chainPem: string;
  keyPem: string;
}

/** A failed ACME step: the CA's problem document, or one naming what failed locally. */
export class AcmeFailure extends Error {
  readonly problem: AcmeProblem;
  /** The CA's Retry-After (rate limits), in ms. */
  readonly retryAfterMs: number | undefined;

  constructor(problem: AcmeProblem, retryAfterMs?: number) {
    super(`${problem.type}: ${problem.detail}`);
    this.name = 'AcmeFailure';
    this.problem = problem;
    this.retryAfterMs = retryAfterMs;
  }
}

/** The CA's suggested renewal window (ARI) and when to ask again. */
export interface RenewalWindow {
  start: number;
  end: number;
  retryAfterMs: number;
}

/** The CA does not know the account URL recorded for it (RFC 8555 §7.3.1). */
const ACCOUNT_DOES_NOT_EXIST = 'urn:ietf:params:acme:error:accountDoesNotExist';

/** ARI answers are cached this long when the CA sends no Retry-After (RFC 9773 §4.3: a few hours). */
const ARI_DEFAULT_RETRY_MS = 6 * 3_600_000;

/** The last problem document (or its absence), or network error, seen by the calls of one ACME operation. */
interface Capture {
  problem: AcmeProblem | undefined;
  retryAfterMs: number | undefined;
  network: string | undefined;
}

const capture = new AsyncLocalStorage<Capture>();
let loaded: Promise<typeof Acme> | undefined;

type SeenResponse = { status: number; headers: Record<string, unknown>; data: unknown };

/**
 * `acme-client`, loaded on first use (most control planes serve only localhost names and never need it), with
 * two settings of its shared HTTP client: no retries of its own (they would wait out a Retry-After of hours inside
 * one attempt; the certificate manager backs off between attempts instead) and a timeout, so an unreachable CA
 * fails the attempt instead of hanging it. Its errors are plain messages (and a network error ends as a
 * TypeError in its retry interceptor), so problem documents and network errors are taken from the responses as
 * they pass, per operation (AsyncLocalStorage), by an interceptor placed before its own.
 */
async function acmeClient(): Promise<typeof Acme> {
  loaded ??= import('acme-client').then((module) => {
    const acme = ((module as unknown as { default?: typeof Acme }).default ?? module) as typeof Acme;
    const axios = acme.axios as typeof acme.axios & {
      defaults: { acmeSettings: { retryMaxAttempts: number } };
    };
    axios.defaults.acmeSettings.retryMaxAttempts = 0;
    axios.defaults.timeout = 30_000;
    const seen = (response: SeenResponse): void => {
      const store = capture.getStore();
      if (store === undefined) return;
      const problem = problemOf(response.data);
      store.problem = problem;
      store.network = undefined;
      store.retryAfterMs = problem === undefined ? undefined : retryAfter(response.headers['retry-after']);
    };
    const id = axios.interceptors.response.use(
      (response) => {
        seen(response);
        return response;
      },
      (error: { response?: SeenResponse; code?: string; message?: string }) => {
        if (error.response !== undefined) seen(error.response);
        else {
          const store = capture.getStore();
          if (store !== undefined)
            store.network = `${error.message ?? 'no answer'}${error.code === undefined || error.message?.includes(error.code) ? '' : ` (${error.code})`}`;
        }
        throw error;
      },
    );
    // Ahead of acme-client's own interceptor, which loses a network error (axios runs them in order).
    const handlers = (axios.interceptors.response as unknown as { handlers?: unknown[] }).handlers;
    if (Array.isArray(handlers) && handlers[id] !== undefined) {
      const mine = handlers[id];
      handlers[id] = null;
      handlers.unshift(mine);
    }
    return acme;
  });
  return loaded;
}

function problemOf(data: unknown): AcmeProblem | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const { type, detail, status, subproblems } = data as Record<string, unknown>;
  if (typeof type !== 'string' || !type.includes(':')) return undefined;
  return {
    type,
    detail: typeof detail === 'string' ? detail : '',
    ...(typeof status === 'number' ? { status } : {}),
    ...(Array.isArray(subproblems)
      ? { subproblems: subproblems.map(problemOf).filter((p): p is AcmeProblem => p !== undefined) }
      : {}),
  };
}

function retryAfter(header: unknown): number | undefined {
  if (typeof header !== 'string') return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** Runs one ACME operation; any failure becomes an `AcmeFailure` carrying the CA's problem document if it sent one. */
async function operation<T>(directoryUrl: string, fn: () => Promise<T>): Promise<T> {
  const store: Capture = { problem: undefined, retryAfterMs: undefined, network: undefined };
  try {
    return await capture.run(store, fn);
  } catch (error) {
    if (error instanceof AcmeFailure) throw error;
    if (store.problem !== undefined) throw new AcmeFailure(store.problem, store.retryAfterMs);
    if (store.network !== undefined)
      throw new AcmeFailure({
        type: 'berth:unreachable',
        detail: `cannot reach the CA at ${directoryUrl}: ${store.network}`,
      });
    throw new AcmeFailure({
      type: 'berth:acme',
      detail: error instanceof Error ? error.message : String(error),
    });
  }
}

/** A new ECDSA P-256 key in PKCS#8 PEM: for the account, and for each certificate. */
export function newKeyPem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
}

export interface AcmeIssuerOptions {
  config: AcmeConfig;
  /** The account key (PEM), created and sealed by the caller on first use. */
  accountKey: () => string;
  /** The account URL recorded for this directory, if any; and where to record a new one. */
  accountUrl: () => string | undefined;
  saveAccount: (url: string) => void;
  /** Wait while polling a challenge or an order (acme-client's backoff). */
  poll?: { minMs: number; maxMs: number; attempts: number };
}

/** One CA directory and the account this data directory has there. */
export class AcmeIssuer {
  readonly directoryUrl: string;
  readonly #options: AcmeIssuerOptions;
  #client: Acme.Client | undefined;
  #directory: Record<string, unknown> | undefined;

  constructor(options: AcmeIssuerOptions) {
    this.#options = options;
    this.directoryUrl = options.config.directoryUrl;
  }

  /**
   * The client with a registered account (created on first use, with EAB when configured). `fresh`: register
   * again even if an account URL is recorded (the CA said it does not know it).
   */
  async #account(fresh = false): Promise<{ acme: typeof Acme; client: Acme.Client }> {
    const acme = await acmeClient();
    if (this.#client !== undefined && !fresh) return { acme, client: this.#client };
    const { config } = this.#options;
    const poll = this.#options.poll ?? { minMs: 500, maxMs: 5_000, attempts: 20 };
    const known = fresh ? undefined : this.#options.accountUrl();
    const client = new acme.Client({
      directoryUrl: config.directoryUrl,
      accountKey: this.#options.accountKey(),
      ...(known === undefined ? {} : { accountUrl: known }),
      ...(config.eab === undefined ? {} : { externalAccountBinding: config.eab }),
      backoffMin: poll.minMs,
      backoffMax: poll.maxMs,
      backoffAttempts: poll.attempts,
    });
    if (known === undefined) {
      await operation(config.directoryUrl, () =>
        client.createAccount({
          // Agreeing is what asking for a certificate means; `berth up --help` and docs/security.md say so.
          termsOfServiceAgreed: true,
          ...(config.email === undefined ? {} : { contact: [`mailto:${config.email}`] }),
        }),
      );
      this.#options.saveAccount(client.getAccountUrl());
    }
    this.#client = client;
    return { acme, client };
  }

  /**
   * Runs `fn` with the account's client; when the CA answers that the recorded account does not exist (a CA
   * reset, a deactivated account), registers again with the same key and runs `fn` once more.
   */
  async #withAccount<T>(fn: (acme: typeof Acme, client: Acme.Client) => Promise<T>): Promise<T> {
    const { acme, client } = await this.#account();
    try {
      return await fn(acme, client);
    } catch (error) {
      if (!(error instanceof AcmeFailure) || error.problem.type !== ACCOUNT_DOES_NOT_EXIST) throw error;
      const again = await this.#account(true);
      return fn(again.acme, again.client);
    }
  }

  /** Registers the account now (or finds it): its URL. */
  async register(): Promise<string> {
    return (await this.#account()).client.getAccountUrl();
  }

  /**
   * Orders a certificate for one host with a fresh P-256 key: proves control with `type` through `solver`, then
   * finalizes and downloads the chain. `replaces` (ARI) names the certificate this one renews.
   */
  async order(
    host: string,
    type: ChallengeType,
    solver: ChallengeSolver,
    replaces?: string,
  ): Promise<IssuedCertificate> {
    return this.#withAccount((acme, client) => this.#order(acme, client, host, type, solver, replaces));
  }

  async #order(
    acme: typeof Acme,
    client: Acme.Client,
    host: string,
    type: ChallengeType,
    solver: ChallengeSolver,
    replaces: string | undefined,
  ): Promise<IssuedCertificate> {
    return operation(this.directoryUrl, async () => {
      const order = await client.createOrder({
        identifiers: [{ type: 'dns', value: host }],
        ...(replaces === undefined ? {} : { replaces }),
      } as Parameters<Acme.Client['createOrder']>[0]);
      for (const authz of await client.getAuthorizations(order)) {
        if (authz.status === 'valid') continue;
        const challenge = authz.challenges.find((c) => c.type === type);
        if (challenge === undefined) {
          throw new AcmeFailure({
            type: 'berth:noChallenge',
            detail: `the CA offers no ${type} challenge for ${host} (offered: ${authz.challenges.map((c) => c.type).join(', ')})`,
          });
        }
        const value = await client.getChallengeKeyAuthorization(challenge);
        await solver.present(type, host, challenge.token, value);
        try {
          await client.completeChallenge(challenge);
          await client.waitForValidStatus(authz);
        } catch (error) {
          // The reason is in the challenge's `error` (RFC 8555 §8): the CA's problem document.
          const fresh = await client.getAuthorizations(order).catch(() => []);
          const failed = fresh
            .flatMap((a) => a.challenges)
            .find((c) => c.url === challenge.url && c.error !== undefined);
          const problem = problemOf(failed?.error);
          if (problem !== undefined) throw new AcmeFailure(problem);
          throw error;
        } finally {
          await solver.withdraw(type, host, challenge.token, value);
        }
      }
      const keyPem = newKeyPem();
      const [, csr] = await acme.crypto.createCsr(
        { ...(isWildcard(host) ? {} : { commonName: host }), altNames: [host] },
        keyPem,
      );
      const finalized = await client.finalizeOrder(order, csr);
      const chainPem = await client.getCertificate(finalized);
      return { chainPem, keyPem };
    });
  }

  /** Revokes a certificate this account ordered (RFC 8555 §7.6); `reason` is an RFC 5280 CRLReason code. */
  async revoke(chainPem: string, reason: number): Promise<void> {
    await this.#withAccount((_, client) =>
      operation(this.directoryUrl, () => client.revokeCertificate(chainPem, { reason })),
    );
  }

  /** The CA's directory (cached: it names the ARI endpoint, if any). */
  async #directoryObject(): Promise<Record<string, unknown>> {
    if (this.#directory !== undefined) return this.#directory;
    const acme = await acmeClient();
    const response = await operation(this.directoryUrl, () => acme.axios.get(this.directoryUrl));
    this.#directory = response.data as Record<string, unknown>;
    return this.#directory;
  }

  /** True when the CA offers renewal information (ARI). */
  async offersRenewalInfo(): Promise<boolean> {
    return typeof (await this.#directoryObject())['renewalInfo'] === 'string';
  }

  /** The CA's suggested renewal window for a certificate, or undefined when it offers no ARI. */
  async renewalWindow(certId: string): Promise<RenewalWindow | undefined> {
    const base = (await this.#directoryObject())['renewalInfo'];
    if (typeof base !== 'string') return undefined;
    const acme = await acmeClient();
    const response = await operation(this.directoryUrl, () =>
      acme.axios.get(`${base.replace(/\/$/, '')}/${certId}`),
    );
    const window = (response.data as { suggestedWindow?: { start?: string; end?: string } }).suggestedWindow;
    const start = Date.parse(window?.start ?? '');
    const end = Date.parse(window?.end ?? '');
    if (Number.isNaN(start) || Number.isNaN(end) || end < start) return undefined;
    return { start, end, retryAfterMs: retryAfter(response.headers['retry-after']) ?? ARI_DEFAULT_RETRY_MS };
  }
}
