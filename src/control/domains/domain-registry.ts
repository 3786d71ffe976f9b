// Which app owns which host (berth.yaml routes and `berth domains add`), refusals naming the owner, and the list.
import type { ChallengeType, DomainInfo } from '../../domain/certificate.js';
import { BerthError, type Issue } from '../../domain/errors.js';
import { hostNameProblem, isLocalHost, isWildcard } from '../../domain/host-name.js';
import type { AppSpec } from '../../domain/spec.js';
import type { Store } from '../store/store.js';
import { certificateRecord, type DomainStore } from './domain-store.js';

/** Who serves a host, and where that was said. */
export interface HostOwner {
  app: string;
  source: 'spec' | 'cli';
}

/** A host that needs a certificate from the CA, and how to prove control of it. */
export interface ManagedHost {
  host: string;
  app: string;
  challenge: ChallengeType;
}

export interface DomainRegistryOptions {
  store: DomainStore;
  apps: Pick<Store, 'listApps' | 'getApp' | 'getRelease'>;
  /** Whether public hosts get ACME certificates, and whether DNS-01 (wildcards) is possible. */
  acme: { enabled: boolean; dnsHook: boolean };
}

const WILDCARD_NEEDS_DNS =
  'a wildcard certificate can only be proved with DNS-01: start Berth with --acme-dns-hook (a command that sets the TXT record)';

/**
 * One owner per host: an app's hosts are its current release's routes plus the domains added to it. A host that
 * another app owns is refused, naming that app, whether it comes from a deploy or from `berth domains add`.
 */
export class DomainRegistry {
  readonly #store: DomainStore;
  readonly #apps: DomainRegistryOptions['apps'];
  readonly #acme: DomainRegistryOptions['acme'];

  constructor(options: DomainRegistryOptions) {
    this.#store = options.store;
    this.#apps = options.apps;
    this.#acme = options.acme;
  }

  /** The current spec of each app. */
  #specs(): AppSpec[] {
    return this.#apps
      .listApps()
      .map((app) => this.#apps.getRelease(app.name, app.currentRelease)?.spec)
      .filter((spec): spec is AppSpec => spec !== undefined);
  }

  /** Every host with its owner: berth.yaml routes first (they win over an added domain of the same app). */
  owners(): Map<string, HostOwner> {
    const owners = new Map<string, HostOwner>();
    for (const spec of this.#specs()) {
      for (const route of spec.routes) {
        if (!owners.has(route.host)) owners.set(route.host, { app: spec.app, source: 'spec' });
      }
    }
    for (const domain of this.#store.listDomains()) {
      if (!owners.has(domain.host)) owners.set(domain.host, { app: domain.app, source: 'cli' });
    }
    return owners;
  }

  /** Domains added from the CLI that the route table serves as aliases (hosts also in a spec are the spec's). */
  aliases(): { host: string; app: string }[] {
    const owners = this.owners();
    return this.#store.listDomains().filter((d) => owners.get(d.host)?.source === 'cli');
  }

  /** Hosts that get a certificate from the CA: every public host, when ACME is on. */
  managedHosts(): ManagedHost[] {
    if (!this.#acme.enabled) return [];
    const hosts: ManagedHost[] = [];
    for (const [host, owner] of this.owners()) {
      if (isLocalHost(host)) continue;
      if (isWildcard(host) && !this.#acme.dnsHook) continue;
      hosts.push({ host, app: owner.app, challenge: isWildcard(host) ? 'dns-01' : 'http-01' });
    }
    return hosts;
  }

  /**
   * Refuses a spec whose hosts another app owns (`conflict`, naming it), or whose public wildcard cannot get a
   * certificate (`invalid_spec`). Runs inside the apply's transaction, before anything is stored.
   */
  checkSpec(spec: AppSpec): void {
    const owners = this.owners();
    const taken: Issue[] = [];
    const wildcards: Issue[] = [];
    spec.routes.forEach((route, i) => {
      const owner = owners.get(route.host);
      if (owner !== undefined && owner.app !== spec.app) {
        taken.push({ path: `routes[${i}].host`, message: ownedMessage(route.host, owner) });
      }
      if (this.#acme.enabled && isWildcard(route.host) && !isLocalHost(route.host) && !this.#acme.dnsHook) {
        wildcards.push({ path: `routes[${i}].host`, message: `${route.host}: ${WILDCARD_NEEDS_DNS}` });
      }
    });
    if (taken.length > 0) {
      throw new BerthError(
        'conflict',
        taken.length === 1 ? taken[0]!.message : `${taken.length} hosts belong to other apps`,
        { issues: taken },
      );
    }
    if (wildcards.length > 0)
      throw new BerthError('invalid_spec', wildcards[0]!.message, { issues: wildcards });
  }

  /** `berth domains add`: the host becomes an alias of the app's first route's host. */
  add(app: string, host: string, actor: string): DomainInfo {
    const problem = hostNameProblem(host);
    if (problem !== undefined) {
      throw new BerthError('invalid_request', `${host} cannot be a domain: ${problem}`, {
        issues: [{ path: 'host', message: problem }],
      });
    }
    const record = this.#apps.getApp(app);
    const spec = record && this.#apps.getRelease(app, record.currentRelease)?.spec;
    if (spec === undefined) throw new BerthError('not_found', `no app named ${app}; deploy it first`);
    if (spec.routes.length === 0) {
      throw new BerthError(
        'conflict',
        `${app} has no route in its berth.yaml: a domain is an alias of the app's first route, so add one there first`,
      );
    }
    if (this.#acme.enabled && isWildcard(host) && !isLocalHost(host) && !this.#acme.dnsHook) {
      throw new BerthError('invalid_request', `${host}: ${WILDCARD_NEEDS_DNS}`, {
        issues: [{ path: 'host', message: WILDCARD_NEEDS_DNS }],
      });
    }
    this.#store.transaction(() => {
      const owner = this.owners().get(host);
      if (owner !== undefined) {
        throw new BerthError(
          'conflict',
          owner.app === app
            ? `${host} is already a host of ${app} (${sourceName(owner)})`
            : ownedMessage(host, owner),
        );
      }
      this.#store.addDomain(host, app, actor);
    });
    return this.list(app).find((d) => d.host === host)!;
  }

  /** `berth domains remove`: only domains added from the CLI; berth.yaml hosts go with a deploy. */
  remove(app: string, host: string, actor: string): void {
    this.#store.transaction(() => {
      const owner = this.#store.domainOwner(host);
      if (owner === app) {
        this.#store.removeDomain(host, app, actor);
        return;
      }
      const serving = this.owners().get(host);
      if (serving?.app === app && serving.source === 'spec') {
        throw new BerthError(
          'conflict',
          `${host} is a route in ${app}'s berth.yaml: remove it there and deploy, not with \`berth domains remove\``,
        );
      }
      throw new BerthError(
        'not_found',
        serving === undefined
          ? `${host} is not a host of any app`
          : `${host} is not a host of ${app}: ${ownedMessage(host, serving)}`,
      );
    });
  }

  /** Every host (of one app, or all) with its certificate, for `berth domains list`. */
  list(app?: string): DomainInfo[] {
    const certificates = new Map(this.#store.listCertificates().map((c) => [c.host, c]));
    const managed = new Set(this.managedHosts().map((h) => h.host));
    const out: DomainInfo[] = [];
    for (const [host, owner] of this.owners()) {
      if (app !== undefined && owner.app !== app) continue;
      const stored = managed.has(host) ? certificates.get(host) : undefined;
      out.push({
        host,
        app: owner.app,
        source: owner.source,
        tls: managed.has(host) ? 'acme' : 'local',
        certificate: stored === undefined ? null : certificateRecord(stored),
      });
    }
    return out.sort((a, b) => a.app.localeCompare(b.app) || a.host.localeCompare(b.host));
  }
}

function sourceName(owner: HostOwner): string {
  return owner.source === 'spec' ? 'a route in its berth.yaml' : 'added with `berth domains add`';
}

function ownedMessage(host: string, owner: HostOwner): string {
  return `${host} belongs to app ${owner.app} (${sourceName(owner)}); a host can serve one app only`;
}
