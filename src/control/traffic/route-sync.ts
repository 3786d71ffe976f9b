// Keeps the proxy's route table equal to what the store says should get traffic, and drains instances before stops.
import type { Deployment } from '../../domain/deployment.js';
import type { Instance } from '../../domain/instance.js';
import type { ProxyAdminClient } from '../../domain/proxy-admin-client.js';
import type { AcmeChallenge, CertificateConfig, RouteTableInput } from '../../domain/route-table.js';
import type { AppSpec, ServiceSpec } from '../../domain/spec.js';
import { effectiveWeights, splitBackends, type TrafficSplit } from '../../domain/traffic.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { Store } from '../store/store.js';
import { groupOf, homeTargetGroup, originGroupName, serviceBackends } from './target-groups.js';
import type { TargetHealthFeed } from './target-health-feed.js';

/**
 * What the route table carries besides apps and targets: hosts added with `berth domains add` (aliases of their
 * app's first host), the certificates the CA issued, and the HTTP-01 answers of orders under way.
 */
export interface TlsSource {
  aliases(): { host: string; app: string }[];
  certificates(): CertificateConfig[];
  challenges(): AcmeChallenge[];
}

/** What a `TlsSource` gave for one table. */
export interface TlsInput {
  aliases: { host: string; app: string }[];
  certificates: CertificateConfig[];
  challenges: AcmeChallenge[];
}

const NO_TLS: TlsInput = { aliases: [], certificates: [], challenges: [] };

/**
 * Instances registered in the proxy. A health-checked service's instances are registered from their start: the
 * proxy judges them (a new target is `initial` and takes no traffic until its first check passes). One without a
 * check is registered once the control plane has seen it running.
 */
function registered(instance: Instance, service: ServiceSpec | undefined): boolean {
  if (instance.port === null) return false;
  if (instance.state === 'healthy' || instance.state === 'unhealthy') return true;
  return instance.state === 'starting' && service?.health !== null && service?.health !== undefined;
}

/**
 * How the proxy checks an origin: every 2 s, two failures to call it unhealthy. An origin is one target, and the
 * split is only as good as the proxy's knowledge of it.
 */
const ORIGIN_HEALTH = {
  intervalMs: 2000,
  timeoutMs: 1500,
  healthyThreshold: 2,
  unhealthyThreshold: 2,
  successCodes: '200-399',
} as const;

/** How long a stop waits for the proxy to see another target of the group healthy before deregistering anyway. */
const REPLACEMENT_READY_MAX_MS = 10_000;

/**
 * The whole route table for these apps and the instances that take traffic (`targets`, already chosen). Pure: the same input gives the same table,
 * so an unchanged table is never sent again.
 */
export function routeTableFor(
  apps: readonly AppSpec[],
  instances: readonly Instance[],
  deployments: readonly Deployment[] = [],
  tls: TlsInput = NO_TLS,
  traffic: readonly TrafficSplit[] = [],
): RouteTableInput {
  const routes: NonNullable<RouteTableInput['routes']> = [];
  const targetGroups: NonNullable<RouteTableInput['targetGroups']> = [];
  const splits = new Map(traffic.map((split) => [split.app, effectiveWeights(split)]));
  for (const spec of apps) {
    const first = spec.routes[0]?.host;
    const origins = spec.origins ?? {};
    const backendsOf = (service: string) =>
      splitBackends(
        serviceBackends(deployments, spec.app, service),
        service,
        splits.get(spec.app),
        (origin) => originGroupName(spec.app, origin),
        (name) => Object.hasOwn(origins, name),
      );
    const aliases = tls.aliases.filter((a) => a.app === spec.app).map((a) => a.host);
    for (const route of spec.routes) {
      const deploy = spec.services[route.service]?.deploy;
      // An alias serves what the app's first host serves, path prefixes and options included.
      for (const host of route.host === first ? [route.host, ...aliases] : [route.host]) {
        routes.push({
          host,
          ...(route.pathPrefix === undefined ? {} : { pathPrefix: route.pathPrefix }),
          ...(route.tunnelIdleTimeoutMs === undefined
            ? {}
            : { tunnelIdleTimeoutMs: route.tunnelIdleTimeoutMs }),
          ...(route.redirect === false ? { redirect: false } : {}),
          ...(route.hsts === undefined ? {} : { hsts: route.hsts }),
          ...(deploy?.stickinessS === undefined ? {} : { stickiness: { durationS: deploy.stickinessS } }),
          ...(deploy?.releaseOverride === true ? { releaseOverride: true } : {}),
          backends: backendsOf(route.service),
        });
      }
    }
    // Every origin has its group, weighted or not: the proxy health-checks it before any request goes there.
    for (const [name, origin] of Object.entries(origins).sort(([a], [b]) => a.localeCompare(b)))
      targetGroups.push({
        name: originGroupName(spec.app, name),
        origin: {
          host: origin.host,
          tls: origin.tls,
          ...(origin.caPem === undefined ? {} : { ca: origin.caPem }),
        },
        balancing: 'least_outstanding',
        health: { ...ORIGIN_HEALTH, path: origin.healthPath },
        responseTimeoutMs: origin.responseTimeoutMs,
        targets: [{ id: name, host: origin.address, port: origin.port, weight: 1 }],
      });
    const routed = new Set(spec.routes.map((route) => route.service));
    for (const [name, service] of Object.entries(spec.services)) {
      // A service with a health check gets a group even without a route: the proxy checks every target.
      if (!routed.has(name) && service.health === null) continue;
      const health = service.health;
      const own = instances.filter((i) => i.app === spec.app && i.service === name && i.port !== null);
      // Every group a route names, and every group an instance of the service is still in (a drained release's).
      const groups = new Set([
        ...serviceBackends(deployments, spec.app, name).map((b) => b.targetGroup),
        homeTargetGroup(deployments, spec.app, name),
        ...own.map(groupOf),
      ]);
      for (const group of [...groups].sort())
        targetGroups.push({
          name: group,
          balancing: 'least_outstanding',
          ...(health === null
            ? {}
            : {
                health: {
                  path: health.path,
                  intervalMs: health.intervalMs,
                  timeoutMs: health.timeoutMs,
                  healthyThreshold: health.healthyThreshold,
                  unhealthyThreshold: health.unhealthyThreshold,
                  successCodes: health.successCodes,
                  graceMs: health.graceMs,
                },
              }),
          responseTimeoutMs: service.responseTimeoutMs,
          drainMs: service.deploy.drainMs,
          targets: own
            .filter((i) => groupOf(i) === group)
            .map((i) => ({ id: i.id, host: '127.0.0.1', port: i.port!, weight: 1 }))
            .sort((a, b) => a.id.localeCompare(b.id)),
        });
    }
  }
  return {
    routes,
    targetGroups,
    ...(tls.certificates.length === 0 ? {} : { certificates: tls.certificates }),
    ...(tls.challenges.length === 0 ? {} : { challenges: tls.challenges }),
  };
}

export class RouteSync {
  readonly #admin: ProxyAdminClient;
  readonly #store: Store;
  readonly #log: Logger;
  readonly #health: TargetHealthFeed | undefined;
  readonly #clock: Clock;
  #lastSent: string | undefined;
  /** What the last table sent was built from (the store's generation, the held instances): unchanged, not rebuilt. */
  #builtFrom: string | undefined;
  #pending: Promise<unknown> = Promise.resolve();
  #tls: TlsSource | undefined;
  /** Instances kept registered while their stop waits for a healthy replacement in the proxy. */
  readonly #held = new Set<string>();

  constructor(
    admin: ProxyAdminClient,
    store: Store,
    log: Logger,
    options: { health?: TargetHealthFeed; clock?: Clock } = {},
  ) {
    this.#admin = admin;
    this.#store = store;
    this.#log = log;
    this.#health = options.health;
    this.#clock = options.clock ?? systemClock;
  }

  /** Domains, certificates and challenge answers go into every table from now on. */
  useTls(tls: TlsSource): void {
    this.#tls = tls;
    this.#builtFrom = undefined;
  }

  /** The proxy restarted: whatever it serves now, the next sync sends the whole table. */
  invalidate(): void {
    this.#lastSent = undefined;
    this.#builtFrom = undefined;
  }

  /**
   * Sends the route table if it changed since the last send. Calls are serialised, so tables never cross. Resolves
   * true once the proxy has this table (sent now, or unchanged since the last send), false when it could not be
   * sent.
   */
  sync(): Promise<boolean> {
    const done = this.#pending
      .then(() => this.#send())
      .then(
        () => true,
        (error: unknown) => {
          // The proxy may be restarting; the next sync sends the whole table again.
          this.invalidate();
          this.#log.warn({ err: error }, 'route table not sent to the proxy');
          return false;
        },
      );
    this.#pending = done;
    return done;
  }

  /**
   * Takes the instance out of the proxy (it is no longer a target once it is `draining`) and waits until its
   * in-flight requests have finished, up to `drainMs`.
   */
  async drain(instance: Instance, drainMs: number): Promise<void> {
    // Stay registered (held synchronously, before any other sync can drop it) until the proxy itself sees another
    // target of the group healthy: deregister only once the traffic has somewhere healthy to go.
    this.#held.add(instance.id);
    try {
      await this.#untilAnotherTargetHealthy(instance);
    } finally {
      this.#held.delete(instance.id);
    }
    await this.sync();
    const group = groupOf(instance);
    const status = await this.#admin.target(group, instance.id).catch(() => undefined);
    if (!status || status.state === 'drained') return;
    await this.#admin.waitDrained(group, instance.id, drainMs).catch((error: unknown) => {
      this.#log.warn({ err: error, instance: instance.id }, 'could not wait for the drain; stopping anyway');
    });
  }

  /**
   * Waits (woken by the proxy's health transitions) until the proxy reports another registered target of the group
   * healthy. Instances turn healthy only on the proxy's word, so this usually holds at once.
   */
  async #untilAnotherTargetHealthy(instance: Instance): Promise<void> {
    const others = this.#store
      .listInstances({ app: instance.app, service: instance.service, live: true })
      .filter(
        (i) =>
          i.id !== instance.id &&
          groupOf(i) === groupOf(instance) &&
          (i.state === 'healthy' || i.state === 'unhealthy'),
      );
    const feed = this.#health;
    if (others.length === 0 || feed === undefined) return;
    const ids = new Set(others.map((i) => i.id));
    const group = groupOf(instance);
    const health = this.#store.getService(instance.app, instance.service)?.spec.health;
    const waitMs = Math.min(REPLACEMENT_READY_MAX_MS, health ? 2 * health.intervalMs + health.timeoutMs : 0);
    await this.sync();
    await feed.changed.until(
      () =>
        feed.targetsOf(group).some(([id, t]) => ids.has(id) && t.health === 'healthy') ? true : undefined,
      { timeoutMs: waitMs, clock: this.#clock },
    );
  }

  /**
   * Builds the table and sends it when it differs from the last one sent. Nothing is read or built while the store
   * has not changed since (every pass of the reconciler ends here, and most change nothing of the table).
   */
  async #send(): Promise<void> {
    // Domains, certificates and challenge answers live outside the store: what they are now is part of the key.
    const source = this.#tls;
    const tls: TlsInput =
      source === undefined
        ? NO_TLS
        : { aliases: source.aliases(), certificates: source.certificates(), challenges: source.challenges() };
    const builtFrom = `${this.#store.generation} ${[...this.#held].sort().join(' ')} ${JSON.stringify(tls)}`;
    if (builtFrom === this.#builtFrom && this.#lastSent !== undefined) return;
    const apps = this.#store
      .listApps()
      .map((app) => this.#store.getRelease(app.name, app.currentRelease)?.spec)
      .filter((spec): spec is AppSpec => spec !== undefined);
    const services = new Map(this.#store.listServices().map((s) => [`${s.app}/${s.name}`, s.spec]));
    const targets = this.#store
      .listInstances({ live: true })
      .filter((i) => registered(i, services.get(`${i.app}/${i.service}`)) || this.#held.has(i.id));
    const deployments = this.#store
      .listApps()
      .flatMap((app) => this.#store.listDeployments({ app: app.name }));
    const table = routeTableFor(apps, targets, deployments, tls, this.#store.listTraffic());
    const json = JSON.stringify(table);
    if (json !== this.#lastSent) await this.#admin.putRouteTable(table);
    this.#lastSent = json;
    this.#builtFrom = builtFrom;
  }
}
