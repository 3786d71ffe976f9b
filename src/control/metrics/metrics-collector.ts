// Every few seconds: read the proxy's per-target counters and the instances' CPU/memory, store the increments.
import type { Instance, InstanceUsage } from '../../domain/instance.js';
import type { Counters, MetricsResponse } from '../../domain/route-table.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import { every, type Ticker } from '../../lib/ticker.js';
import type { Store } from '../store/store.js';
import { originOfGroup, serviceGroupOf } from '../traffic/target-groups.js';
import { bucketBound, fromCumulative, type SparseHistogram, subtract } from './latency.js';
import { type CounterDelta, emptyDelta, type InstanceSample, type MetricsStore } from './metrics-store.js';

/** The cumulative counters of one target as last seen, persisted so a restarted control plane counts on. */
interface Cursor {
  requests: number;
  status: Counters['status'];
  proxyErrors: Counters['proxyErrors'];
  bytesIn: number;
  bytesOut: number;
  latency: SparseHistogram;
  /** For the group rows: 503s that reached no target. */
  unrouted503?: number;
}

export interface MetricsCollectorOptions {
  store: Store;
  metrics: MetricsStore;
  /** The proxy's `GET /metrics` (`ProxyAdminClient.metrics`). */
  proxyMetrics: () => Promise<MetricsResponse>;
  usage: { usageOf(instance: Instance): InstanceUsage | null };
  clock: Clock;
  log: Logger;
  /** How often to collect; default 5 s (twice per 10 s bucket). */
  intervalMs?: number;
  /** Called after each successful collection (alarms evaluate then). */
  onCollected?: (at: number) => void;
  /**
   * Processes beside the instances whose CPU, memory and health are series of their app (add-on servers, as
   * service `addon:<name>`); they take no routed traffic.
   */
  otherProcesses?: () => OtherProcess[];
}

/** A process sampled into an app's metrics beside its instances. */
export interface OtherProcess {
  app: string;
  service: string;
  /** Its runtime id (the series' instance). */
  instance: string;
  healthy: boolean;
  usage: InstanceUsage | null;
}

export const DEFAULT_COLLECT_INTERVAL_MS = 5000;

export class MetricsCollector {
  readonly #options: MetricsCollectorOptions;
  readonly #cursors = new Map<string, Cursor>();
  /** Cursors that moved since they were last saved (an idle target's is not written again). */
  readonly #moved = new Set<string>();
  #latest: { at: number; proxy: MetricsResponse } | undefined;
  #ticker: Ticker | undefined;
  #lastRetention = 0;
  #lastCollectedAt: number | undefined;

  constructor(options: MetricsCollectorOptions) {
    this.#options = options;
    for (const [target, cursor] of options.metrics.loadCursors()) this.#cursors.set(target, cursor as Cursor);
  }

  /** The proxy's counters as last read, for the Prometheus endpoint (no extra admin call per scrape). */
  latest(): { at: number; proxy: MetricsResponse } | undefined {
    return this.#latest;
  }

  start(): void {
    // Aligned to the interval so buckets get an even number of samples.
    this.#ticker ??= every(this.#options.intervalMs ?? DEFAULT_COLLECT_INTERVAL_MS, () => this.collectNow(), {
      name: 'metrics collection',
      log: this.#options.log,
      clock: this.#options.clock,
      immediate: true,
      align: true,
    });
  }

  async stop(): Promise<void> {
    await this.#ticker?.stop();
    this.#ticker = undefined;
  }

  /** One collection: counters → increments since the last one, gauges sampled now; stored in one transaction. */
  async collectNow(): Promise<void> {
    const proxy = await this.#options.proxyMetrics();
    const { store, metrics, clock } = this.#options;
    const at = clock.now();
    const services = new Map(store.listServices().map((s) => [`${s.app}.${s.name}`, s]));
    const live = new Map(store.listInstances({ live: true }).map((i) => [i.id, i]));
    const samples: InstanceSample[] = [];
    const seen = new Set<string>();
    const unroutedByGroup = new Map<string, number>();
    const since = this.#lastCollectedAt ?? at - (this.#options.intervalMs ?? DEFAULT_COLLECT_INTERVAL_MS);
    // Instances that ended since the last collection: their last row must not keep saying healthy.
    const ended = new Map<string, Instance>();
    for (const instance of store.listEndedSince(since)) {
      if (instance.endedAt !== null && instance.endedAt <= at && !live.has(instance.id))
        ended.set(instance.id, instance);
    }

    for (const target of proxy.targets) {
      const key = `${target.targetGroup}/${target.id}`;
      seen.add(key);
      unroutedByGroup.set(
        target.targetGroup,
        (unroutedByGroup.get(target.targetGroup) ?? 0) + target.counters.proxyErrors['503'],
      );
      const instance = live.get(target.id) ?? store.getInstance(target.id);
      // By the instance: a service's targets may sit in more than one group (a canary's release has its own).
      const service = instance && services.get(`${instance.app}.${instance.service}`);
      const delta = this.#advance(key, target.counters);
      const origin = originOfGroup(target.targetGroup);
      if (origin !== undefined) {
        // An external origin's requests are series of its app, as service `origin:<name>` (add-ons' way).
        samples.push({
          app: origin.app,
          service: `origin:${origin.origin}`,
          release: 0,
          instance: target.id,
          delta,
          gauges: {
            inFlight: target.counters.inFlight,
            cpuPercent: null,
            memoryBytes: null,
            memoryLimit: null,
            healthy: target.health === 'healthy',
            unhealthy: target.health === 'unhealthy',
          },
        });
        continue;
      }
      if (!service || !instance) continue;
      const gauges = live.has(instance.id)
        ? this.#gauges(instance, target.counters.inFlight)
        : ended.has(instance.id)
          ? ENDED_GAUGES
          : undefined;
      // A target whose instance ended earlier (still draining, or kept by the proxy): nothing to say, no row.
      if (gauges === undefined && delta.requests === 0 && delta.bytesIn === 0 && delta.bytesOut === 0)
        continue;
      samples.push({
        app: service.app,
        service: service.name,
        release: instance.release,
        instance: instance.id,
        delta,
        ...(gauges === undefined ? {} : { gauges }),
      });
    }

    // Live instances without a target (workers, or not yet registered) still get CPU, memory and health.
    const targeted = new Set(samples.map((s) => s.instance));
    for (const instance of ended.values()) {
      if (targeted.has(instance.id)) continue;
      samples.push({
        app: instance.app,
        service: instance.service,
        release: instance.release,
        instance: instance.id,
        delta: emptyDelta(),
        gauges: ENDED_GAUGES,
      });
    }
    for (const instance of live.values()) {
      if (targeted.has(instance.id)) continue;
      samples.push({
        app: instance.app,
        service: instance.service,
        release: instance.release,
        instance: instance.id,
        delta: emptyDelta(),
        gauges: this.#gauges(instance, 0),
      });
    }

    for (const other of this.#options.otherProcesses?.() ?? []) {
      samples.push({
        app: other.app,
        service: other.service,
        release: 0,
        instance: other.instance,
        delta: emptyDelta(),
        gauges: {
          inFlight: 0,
          cpuPercent: other.usage?.cpuPercent ?? null,
          memoryBytes: other.usage?.memoryBytes ?? null,
          memoryLimit: null,
          healthy: other.healthy,
          unhealthy: !other.healthy,
        },
      });
    }

    // One service row per service and collection: the health counts, and the 503s of a group with no target
    // (the proxy counts those on the group only).
    const health = new Map<string, { healthy: number; unhealthy: number }>();
    for (const instance of live.values()) {
      const key = `${instance.app}.${instance.service}`;
      const entry = health.get(key) ?? { healthy: 0, unhealthy: 0 };
      if (instance.state === 'healthy') entry.healthy++;
      if (instance.state === 'unhealthy') entry.unhealthy++;
      health.set(key, entry);
    }
    const unrouted = new Map<string, number>();
    for (const [group, counters] of Object.entries(proxy.targetGroups)) {
      const key = `group:${group}`;
      seen.add(key);
      const count = Math.max(0, counters.proxyErrors['503'] - (unroutedByGroup.get(group) ?? 0));
      const before = this.#cursors.get(key)?.unrouted503;
      // A canary's group (`<app>.<service>.v<N>`) counts for its service.
      const service = serviceGroupOf(group);
      const increment = before === undefined || count < before ? count : count - before;
      unrouted.set(service, (unrouted.get(service) ?? 0) + increment);
      if (before !== count || this.#cursors.get(key)?.requests !== counters.requests) this.#moved.add(key);
      this.#cursors.set(key, { ...toCursor(counters), unrouted503: count });
    }
    for (const [group, service] of services) {
      const increment = unrouted.get(group) ?? 0;
      const now = health.get(group) ?? { healthy: 0, unhealthy: 0 };
      samples.push({
        app: service.app,
        service: service.name,
        release: service.release,
        instance: '',
        delta: { ...emptyDelta(), requests: increment, e503: increment },
        serviceHealth: {
          healthy: [...ended.values()].some((i) => i.app === service.app && i.service === service.name)
            ? this.#fewestHealthy(service.app, service.name, now.healthy, since, at)
            : now.healthy,
          unhealthy: now.unhealthy,
        },
      });
    }

    metrics.record(at, samples);
    this.#saveCursors(seen, at);
    if (at - this.#lastRetention >= 60_000) {
      this.#lastRetention = at;
      metrics.enforceRetention(at);
    }
    this.#lastCollectedAt = at;
    this.#latest = { at, proxy };
    this.#options.onCollected?.(at);
  }

  /**
   * The fewest healthy instances at any moment since the last collection: a crashed instance replaced within one
   * interval would otherwise never show. Evaluated at each moment an instance ended (from `healthyAt`/`endedAt`);
   * the count now (`healthyNow`) covers instances that are unhealthy at this moment.
   */
  #fewestHealthy(app: string, service: string, healthyNow: number, since: number, until: number): number {
    const instances = this.#options.store.listInstances({ app, service, limit: 100 });
    let fewest = healthyNow;
    for (const ended of instances) {
      const t = ended.endedAt;
      if (t === null || t <= since || t > until || ended.healthyAt === null) continue;
      const healthy = instances.filter(
        (i) => i.healthyAt !== null && i.healthyAt <= t && (i.endedAt === null || i.endedAt > t),
      ).length;
      fewest = Math.min(fewest, healthy);
    }
    return fewest;
  }

  #gauges(instance: Instance, inFlight: number): NonNullable<InstanceSample['gauges']> {
    const sample = this.#options.usage.usageOf(instance);
    const limit = this.#options.store.getService(instance.app, instance.service)?.spec.resources?.memoryBytes;
    return {
      inFlight,
      cpuPercent: sample?.cpuPercent ?? null,
      memoryBytes: sample?.memoryBytes ?? null,
      memoryLimit: limit ?? null,
      healthy: instance.state === 'healthy',
      unhealthy: instance.state === 'unhealthy',
    };
  }

  /** Increments of `counters` since the cursor of `key`; a counter that went down means the proxy restarted. */
  #advance(key: string, counters: Counters): CounterDelta {
    const before = this.#cursors.get(key);
    // Cumulative counters that did not move: the same cursor, an empty delta, nothing to save again.
    if (before !== undefined && unmoved(before, counters)) return emptyDelta();
    const now = toCursor(counters);
    this.#cursors.set(key, now);
    this.#moved.add(key);
    const reset = before === undefined || now.requests < before.requests;
    const base: Cursor = reset ? toCursor(undefined) : before;
    const latency = subtract(now.latency, base.latency);
    const top = Math.max(-1, ...Object.keys(latency).map(Number));
    return {
      requests: now.requests - base.requests,
      s1xx: now.status['1xx'] - base.status['1xx'],
      s2xx: now.status['2xx'] - base.status['2xx'],
      s3xx: now.status['3xx'] - base.status['3xx'],
      s4xx: now.status['4xx'] - base.status['4xx'],
      s5xx: now.status['5xx'] - base.status['5xx'],
      e499: now.proxyErrors['499'] - base.proxyErrors['499'],
      e502: now.proxyErrors['502'] - base.proxyErrors['502'],
      e503: now.proxyErrors['503'] - base.proxyErrors['503'],
      e504: now.proxyErrors['504'] - base.proxyErrors['504'],
      bytesIn: Math.max(0, now.bytesIn - base.bytesIn),
      bytesOut: Math.max(0, now.bytesOut - base.bytesOut),
      latency,
      // The proxy keeps a lifetime max; this round's max is within the top non-empty bucket of the increment.
      latencyMax: top < 0 ? 0 : Math.min(counters.latencyMs.max, bucketBound(top)),
    };
  }

  /** Saves the cursors that moved and forgets those of targets the proxy no longer lists. */
  #saveCursors(seen: ReadonlySet<string>, at: number): void {
    const moved = new Map(
      [...this.#moved].filter((key) => seen.has(key)).map((key) => [key, this.#cursors.get(key)]),
    );
    const gone = [...this.#cursors.keys()].filter((key) => !seen.has(key));
    this.#options.metrics.saveCursors(moved, gone, at);
    for (const key of gone) this.#cursors.delete(key);
    this.#moved.clear();
  }
}

/** What an instance that has ended looks like in its last bucket: neither healthy nor unhealthy, no usage. */
const ENDED_GAUGES: NonNullable<InstanceSample['gauges']> = {
  inFlight: 0,
  cpuPercent: null,
  memoryBytes: null,
  memoryLimit: null,
  healthy: false,
  unhealthy: false,
};

/** True when the cumulative counters are where the cursor left them (no request since: nothing else moves). */
function unmoved(cursor: Cursor, counters: Counters): boolean {
  return (
    cursor.requests === counters.requests &&
    cursor.bytesIn === counters.bytesIn &&
    cursor.bytesOut === counters.bytesOut &&
    cursor.proxyErrors['499'] === counters.proxyErrors['499'] &&
    cursor.proxyErrors['502'] === counters.proxyErrors['502'] &&
    cursor.proxyErrors['503'] === counters.proxyErrors['503'] &&
    cursor.proxyErrors['504'] === counters.proxyErrors['504']
  );
}

function toCursor(counters: Counters | undefined): Cursor {
  if (!counters) {
    return {
      requests: 0,
      status: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 },
      proxyErrors: { '499': 0, '502': 0, '503': 0, '504': 0 },
      bytesIn: 0,
      bytesOut: 0,
      latency: {},
    };
  }
  return {
    requests: counters.requests,
    status: { ...counters.status },
    proxyErrors: { ...counters.proxyErrors },
    bytesIn: counters.bytesIn,
    bytesOut: counters.bytesOut,
    latency: fromCumulative(counters.histogram),
  };
}
