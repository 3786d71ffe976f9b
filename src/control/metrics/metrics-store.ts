// Metric series in SQLite: per-instance buckets at two resolutions, written together, queried and merged per group.
import type Database from 'better-sqlite3';
import type {
  MetricPoint,
  MetricSeries,
  MetricsGrouping,
  MetricsQueryResult,
} from '../../domain/metrics-types.js';
import { countOf, mean, mergeInto, quantile, type SparseHistogram } from './latency.js';

/** How fine and how long series are kept. Both resolutions are written as data arrives (the rollup). */
export interface MetricsRetention {
  fineMs: number;
  fineRetentionMs: number;
  coarseMs: number;
  coarseRetentionMs: number;
}

export const DEFAULT_RETENTION: MetricsRetention = {
  fineMs: 10_000,
  fineRetentionMs: 3_600_000,
  coarseMs: 60_000,
  coarseRetentionMs: 7 * 24 * 3_600_000,
};

/** Counter increments since the previous collection, for one instance (instance '' = reached no target). */
export interface CounterDelta {
  requests: number;
  s1xx: number;
  s2xx: number;
  s3xx: number;
  s4xx: number;
  s5xx: number;
  e499: number;
  e502: number;
  e503: number;
  e504: number;
  bytesIn: number;
  bytesOut: number;
  latency: SparseHistogram;
  latencyMax: number;
}

/** What one collection observed of one instance. */
export interface InstanceSample {
  app: string;
  service: string;
  release: number;
  instance: string;
  delta: CounterDelta;
  /** Absent for instances not sampled this round (a draining target whose process has ended). */
  gauges?: {
    inFlight: number;
    cpuPercent: number | null;
    memoryBytes: number | null;
    memoryLimit: number | null;
    healthy: boolean;
    unhealthy: boolean;
  };
  /**
   * Only on the service row (instance ''): how many instances were healthy and unhealthy at this collection. A
   * bucket keeps the fewest healthy and the most unhealthy seen, so a dip between two buckets is not lost.
   */
  serviceHealth?: { healthy: number; unhealthy: number };
}

export function emptyDelta(): CounterDelta {
  return {
    requests: 0,
    s1xx: 0,
    s2xx: 0,
    s3xx: 0,
    s4xx: 0,
    s5xx: 0,
    e499: 0,
    e502: 0,
    e503: 0,
    e504: 0,
    bytesIn: 0,
    bytesOut: 0,
    latency: {},
    latencyMax: 0,
  };
}

interface PointRow {
  at: number;
  app: string;
  service: string;
  release: number;
  instance: string;
  requests: number;
  s1xx: number;
  s2xx: number;
  s3xx: number;
  s4xx: number;
  s5xx: number;
  e499: number;
  e502: number;
  e503: number;
  e504: number;
  bytes_in: number;
  bytes_out: number;
  latency_json: string;
  latency_max: number;
  samples: number;
  in_flight_sum: number;
  usage_samples: number;
  cpu_sum: number;
  memory_sum: number;
  memory_limit: number | null;
  healthy: number;
  unhealthy: number;
}

export interface MetricsQuery {
  app: string;
  service?: string;
  from: number;
  to: number;
  by?: MetricsGrouping;
  /** Force a resolution; by default the fine one when `from` is within its retention. */
  resolutionMs?: number;
  /** One point per series for the whole range (percentiles from the merged histogram), for summaries. */
  collapse?: boolean;
}

export class MetricsStore {
  readonly #db: Database.Database;
  readonly retention: MetricsRetention;
  readonly #upsert: Database.Statement;
  readonly #latencyOf: Database.Statement;

  constructor(db: Database.Database, retention: MetricsRetention = DEFAULT_RETENTION) {
    this.#db = db;
    this.retention = retention;
    this.#latencyOf = db.prepare(
      'SELECT latency_json FROM metric_points WHERE resolution = ? AND app = ? AND service = ? AND instance = ? AND at = ?',
    );
    this.#upsert = db.prepare(`
      INSERT INTO metric_points (resolution, at, app, service, release, instance, requests, s1xx, s2xx, s3xx, s4xx,
        s5xx, e499, e502, e503, e504, bytes_in, bytes_out, latency_json, latency_max, samples, in_flight_sum,
        usage_samples, cpu_sum, memory_sum, memory_limit, healthy, unhealthy)
      VALUES (@resolution, @at, @app, @service, @release, @instance, @requests, @s1xx, @s2xx, @s3xx, @s4xx,
        @s5xx, @e499, @e502, @e503, @e504, @bytesIn, @bytesOut, @latencyJson, @latencyMax, @samples, @inFlight,
        @usageSamples, @cpu, @memory, @memoryLimit, @healthy, @unhealthy)
      ON CONFLICT (resolution, app, service, instance, at) DO UPDATE SET
        release = excluded.release,
        requests = requests + excluded.requests, s1xx = s1xx + excluded.s1xx, s2xx = s2xx + excluded.s2xx,
        s3xx = s3xx + excluded.s3xx, s4xx = s4xx + excluded.s4xx, s5xx = s5xx + excluded.s5xx,
        e499 = e499 + excluded.e499, e502 = e502 + excluded.e502, e503 = e503 + excluded.e503,
        e504 = e504 + excluded.e504, bytes_in = bytes_in + excluded.bytes_in,
        bytes_out = bytes_out + excluded.bytes_out,
        latency_json = CASE WHEN excluded.latency_json = '{}' THEN latency_json ELSE excluded.latency_json END,
        latency_max = MAX(latency_max, excluded.latency_max), samples = samples + excluded.samples,
        in_flight_sum = in_flight_sum + excluded.in_flight_sum,
        usage_samples = usage_samples + excluded.usage_samples, cpu_sum = cpu_sum + excluded.cpu_sum,
        memory_sum = memory_sum + excluded.memory_sum, memory_limit = excluded.memory_limit,
        healthy = CASE WHEN excluded.instance = '' THEN MIN(healthy, excluded.healthy)
          WHEN excluded.samples > 0 THEN excluded.healthy ELSE healthy END,
        unhealthy = CASE WHEN excluded.instance = '' THEN MAX(unhealthy, excluded.unhealthy)
          WHEN excluded.samples > 0 THEN excluded.unhealthy ELSE unhealthy END
    `);
  }

  /** Adds one collection's samples to the buckets containing `at`, at both resolutions, in one transaction. */
  record(at: number, samples: readonly InstanceSample[]): void {
    const write = this.#db.transaction(() => {
      for (const resolution of [this.retention.fineMs, this.retention.coarseMs]) {
        const bucket = Math.floor(at / resolution) * resolution;
        for (const sample of samples) this.#write(resolution, bucket, sample);
      }
    });
    write();
  }

  #write(resolution: number, at: number, sample: InstanceSample): void {
    const { delta, gauges } = sample;
    let latency = delta.latency;
    if (countOf(latency) > 0) {
      const existing = this.#latencyOf.get(resolution, sample.app, sample.service, sample.instance, at) as
        | { latency_json: string }
        | undefined;
      if (existing) latency = mergeInto(JSON.parse(existing.latency_json) as SparseHistogram, latency);
    }
    const hasUsage = gauges !== undefined && gauges.cpuPercent !== null;
    this.#upsert.run({
      resolution,
      at,
      app: sample.app,
      service: sample.service,
      release: sample.release,
      instance: sample.instance,
      requests: delta.requests,
      s1xx: delta.s1xx,
      s2xx: delta.s2xx,
      s3xx: delta.s3xx,
      s4xx: delta.s4xx,
      s5xx: delta.s5xx,
      e499: delta.e499,
      e502: delta.e502,
      e503: delta.e503,
      e504: delta.e504,
      bytesIn: delta.bytesIn,
      bytesOut: delta.bytesOut,
      latencyJson: JSON.stringify(latency),
      latencyMax: delta.latencyMax,
      samples: gauges ? 1 : 0,
      inFlight: gauges?.inFlight ?? 0,
      usageSamples: hasUsage ? 1 : 0,
      cpu: hasUsage ? (gauges.cpuPercent ?? 0) : 0,
      memory: hasUsage ? (gauges.memoryBytes ?? 0) : 0,
      memoryLimit: gauges?.memoryLimit ?? null,
      healthy: sample.serviceHealth?.healthy ?? (gauges?.healthy ? 1 : 0),
      unhealthy: sample.serviceHealth?.unhealthy ?? (gauges?.unhealthy ? 1 : 0),
    });
  }

  /** Deletes buckets older than each resolution's retention. Returns how many rows went. */
  enforceRetention(now: number): number {
    const { fineMs, fineRetentionMs, coarseMs, coarseRetentionMs } = this.retention;
    const remove = this.#db.prepare('DELETE FROM metric_points WHERE resolution = ? AND at < ?');
    return (
      remove.run(fineMs, now - fineRetentionMs).changes +
      remove.run(coarseMs, now - coarseRetentionMs).changes
    );
  }

  /** The resolution a query from `from` reads by default: fine while it still holds that far back. */
  resolutionFor(from: number, now: number): number {
    return from >= now - this.retention.fineRetentionMs ? this.retention.fineMs : this.retention.coarseMs;
  }

  /** Series of one app (optionally one service), grouped per service, release or instance, oldest first. */
  query(query: MetricsQuery, now = Date.now()): MetricsQueryResult {
    const by = query.by ?? 'service';
    const resolutionMs = query.resolutionMs ?? this.resolutionFor(query.from, now);
    const from = Math.floor(query.from / resolutionMs) * resolutionMs;
    const rows = this.#db
      .prepare(
        `SELECT * FROM metric_points WHERE resolution = ? AND app = ? AND at >= ? AND at < ?
         ${query.service === undefined ? '' : 'AND service = ?'} ORDER BY at`,
      )
      .all(
        ...[resolutionMs, query.app, from, query.to, ...(query.service === undefined ? [] : [query.service])],
      ) as PointRow[];

    const groups = new Map<
      string,
      { labels: Omit<MetricSeries, 'points'>; buckets: Map<number, PointRow[]> }
    >();
    for (const row of rows) {
      // Rows that reached no target belong to the service, so they join its release/instance-less series only.
      if (by === 'instance' && row.instance === '') continue;
      const labels: Omit<MetricSeries, 'points'> = { app: row.app, service: row.service };
      if (by === 'release') labels.release = row.release;
      if (by === 'instance') {
        labels.release = row.release;
        labels.instance = row.instance;
      }
      const key = `${row.service}\u0000${labels.release ?? ''}\u0000${labels.instance ?? ''}`;
      let group = groups.get(key);
      if (!group) {
        group = { labels, buckets: new Map() };
        groups.set(key, group);
      }
      const at = query.collapse ? from : row.at;
      const bucket = group.buckets.get(at);
      if (bucket) bucket.push(row);
      else group.buckets.set(at, [row]);
    }
    const series: MetricSeries[] = [...groups.values()].map(({ labels, buckets }) => ({
      ...labels,
      points: [...buckets.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([at, bucketRows]) =>
          toPoint(at, bucketRows, query.collapse ? query.to - from : resolutionMs, by === 'service'),
        ),
    }));
    series.sort(
      (a, b) =>
        a.service.localeCompare(b.service) ||
        (a.release ?? 0) - (b.release ?? 0) ||
        (a.instance ?? '').localeCompare(b.instance ?? ''),
    );
    return { app: query.app, resolutionMs, from, to: query.to, by, series };
  }

  /** Apps that have any series. */
  apps(): string[] {
    return (
      this.#db.prepare('SELECT DISTINCT app FROM metric_points ORDER BY app').all() as { app: string }[]
    ).map((r) => r.app);
  }
}

/**
 * Merges rows into one point: counts add and histograms merge; per instance the gauges average over its rows,
 * then average (CPU, memory) or add up (in flight) over instances; health counts come from the latest bucket.
 * One bucket holds one row per instance; a collapsed range holds several.
 */
function toPoint(at: number, rows: readonly PointRow[], spanMs: number, byService: boolean): MetricPoint {
  const latency: SparseHistogram = {};
  let latencyMax = 0;
  const sum = (pick: (row: PointRow) => number): number => rows.reduce((total, row) => total + pick(row), 0);
  const latestAt = Math.max(...rows.map((row) => row.at));
  const perInstance = new Map<
    string,
    { samples: number; inFlight: number; usage: number; cpu: number; memory: number; limit: number | null }
  >();
  for (const row of rows) {
    mergeInto(latency, JSON.parse(row.latency_json) as SparseHistogram);
    latencyMax = Math.max(latencyMax, row.latency_max);
    if (row.samples === 0 || row.instance === '') continue;
    const entry = perInstance.get(row.instance) ?? {
      samples: 0,
      inFlight: 0,
      usage: 0,
      cpu: 0,
      memory: 0,
      limit: null,
    };
    entry.samples += row.samples;
    entry.inFlight += row.in_flight_sum;
    entry.usage += row.usage_samples;
    entry.cpu += row.cpu_sum;
    entry.memory += row.memory_sum;
    entry.limit = row.memory_limit;
    perInstance.set(row.instance, entry);
  }
  const instances = [...perInstance.values()];
  const used = instances.filter((i) => i.usage > 0);
  const limited = used.filter((i) => i.limit !== null && i.limit > 0);
  const average = <T>(list: readonly T[], pick: (item: T) => number): number | null =>
    list.length === 0 ? null : list.reduce((total, item) => total + pick(item), 0) / list.length;
  const requests = sum((r) => r.requests);
  const minutes = spanMs / 60_000;
  const hasLatency = countOf(latency) > 0;
  const latest = rows.filter((row) => row.at === latestAt && row.instance !== '');
  // Per service the service row of the latest bucket (each bucket keeps its own dip); per release or instance,
  // the instances' states at the latest collection. A summary of a whole range shows the latest count, not the
  // lowest one seen over it.
  const allServiceRows = byService ? rows.filter((row) => row.instance === '') : [];
  const serviceLatestAt = Math.max(...allServiceRows.map((row) => row.at));
  const serviceRows = allServiceRows.filter((row) => row.at === serviceLatestAt);
  return {
    at,
    requests,
    rpm: requests / minutes,
    rpmPerInstance: instances.length === 0 ? null : requests / minutes / instances.length,
    p50: hasLatency ? quantile(latency, 0.5, latencyMax) : null,
    p95: hasLatency ? quantile(latency, 0.95, latencyMax) : null,
    p99: hasLatency ? quantile(latency, 0.99, latencyMax) : null,
    avg: hasLatency ? mean(latency) : null,
    max: hasLatency ? latencyMax : null,
    s2xx: sum((r) => r.s2xx),
    s3xx: sum((r) => r.s3xx),
    s4xx: sum((r) => r.s4xx),
    s5xx: sum((r) => r.s5xx),
    e499: sum((r) => r.e499),
    e502: sum((r) => r.e502),
    e503: sum((r) => r.e503),
    e504: sum((r) => r.e504),
    bytesIn: sum((r) => r.bytes_in),
    bytesOut: sum((r) => r.bytes_out),
    inFlight: instances.length === 0 ? null : instances.reduce((t, i) => t + i.inFlight / i.samples, 0),
    healthy:
      serviceRows.length > 0
        ? Math.min(...serviceRows.map((r) => r.healthy))
        : latest.reduce((t, r) => t + r.healthy, 0),
    unhealthy:
      serviceRows.length > 0
        ? Math.max(...serviceRows.map((r) => r.unhealthy))
        : latest.reduce((t, r) => t + r.unhealthy, 0),
    cpuPercent: average(used, (i) => i.cpu / i.usage),
    memoryBytes: average(used, (i) => i.memory / i.usage),
    memoryPercent: average(limited, (i) => (100 * i.memory) / i.usage / (i.limit ?? 1)),
  };
}
