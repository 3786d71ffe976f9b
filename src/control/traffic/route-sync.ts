// Keeps the proxy's route table equal to what the store says should get traffic, and drains instances before stops.
import type { Instance } from '../../domain/instance.js';
import type { ProxyAdminClient } from '../../domain/proxy-admin-client.js';
import type { AcmeChallenge, CertificateConfig, RouteTableInput } from '../../domain/route-table.js';
import type { AppSpec, ServiceSpec } from '../../domain/spec.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { Store } from '../store/store.js';
import type { TargetHealthFeed } from './target-health-feed.js';

/** The target group of a service: one per app and service. */
export function targetGroupName(app: string, service: string): string {
  return `${app}.${service}`;
}

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

/** How long a stop waits for the proxy to see another target of the group healthy before deregistering anyway. */
const REPLACEMENT_READY_MAX_MS = 10_000;

/**
 * What the route table carries besides apps and targets: hosts added with `berth domains add` (aliases of their
 * app's first host), the certificates the CA issued, and the HTTP-01 answers of orders under way.
 */
export interface TlsSource {
  aliases(): { host: string; app: string }[];
  certificates(): CertificateConfig[];
  challenges(): AcmeChallenge[];
}

/**
 * The whole route table for these apps and the instances that take traffic (`targets`, already chosen). Pure: the same input gives the same table,
 * so an unchanged table is never sent again.
 */
export function routeTableFor(
  apps: readonly AppSpec[],
  instances: readonly Instance[],
  tls: {
    aliases: { host: string; app: string }[];
    certificates: CertificateConfig[];
    challenges: AcmeChallenge[];
  } = {
    aliases: [],
    certificates: [],
    challenges: [],
  },
): RouteTableInput {
  const routes: NonNullable<RouteTableInput['routes']> = [];
  const targetGroups: NonNullable<RouteTableInput['targetGroups']> = [];
  for (const spec of apps) {
    const first = spec.routes[0]?.host;
    const aliases = tls.aliases.filter((a) => a.app === spec.app).map((a) => a.host);
    for (const route of spec.routes) {
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
          backends: [{ targetGroup: targetGroupName(spec.app, route.service), weight: 1 }],
        });
      }
    }
    const routed = new Set(spec.routes.map((route) => route.service));
    for (const [name, service] of Object.entries(spec.services)) {
      // A service with a health check gets a group even without a route: the proxy checks every target.
      if (!routed.has(name) && service.health === null) continue;
      const health = service.health;
      targetGroups.push({
        name: targetGroupName(spec.app, name),
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
        targets: instances
          .filter((i) => i.app === spec.app && i.service === name && i.port !== null)
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
  #tls: TlsSource | undefined;
  #lastSent: string | undefined;
  #pending: Promise<unknown> = Promise.resolve();
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
  }

  /** The proxy restarted: whatever it serves now, the next sync sends the whole table. */
  invalidate(): void {
    this.#lastSent = undefined;
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
          this.#lastSent = undefined;
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
    const group = targetGroupName(instance.app, instance.service);
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
      .filter((i) => i.id !== instance.id && (i.state === 'healthy' || i.state === 'unhealthy'));
    const feed = this.#health;
    if (others.length === 0 || feed === undefined) return;
    const ids = new Set(others.map((i) => i.id));
    const group = targetGroupName(instance.app, instance.service);
    const health = this.#store.getService(instance.app, instance.service)?.spec.health;
    const waitMs = Math.min(REPLACEMENT_READY_MAX_MS, health ? 2 * health.intervalMs + health.timeoutMs : 0);
    await this.sync();
    await feed.changed.until(
      () =>
        feed.targetsOf(group).some(([id, t]) => ids.has(id) && t.health === 'healthy') ? true : undefined,
      { timeoutMs: waitMs, clock: this.#clock },
    );
  }

  async #send(): Promise<void> {
    const apps = this.#store
      .listApps()
      .map((app) => this.#store.getRelease(app.name, app.currentRelease)?.spec)
      .filter((spec): spec is AppSpec => spec !== undefined);
    const services = new Map(this.#store.listServices().map((s) => [`${s.app}/${s.name}`, s.spec]));
    const targets = this.#store
      .listInstances({ live: true })
      .filter((i) => registered(i, services.get(`${i.app}/${i.service}`)) || this.#held.has(i.id));
    const tls = this.#tls;
    const table = routeTableFor(
      apps,
      targets,
      tls === undefined
        ? undefined
        : { aliases: tls.aliases(), certificates: tls.certificates(), challenges: tls.challenges() },
    );
    const json = JSON.stringify(table);
    if (json === this.#lastSent) return;
    await this.#admin.putRouteTable(table);
    this.#lastSent = json;
  }
}
