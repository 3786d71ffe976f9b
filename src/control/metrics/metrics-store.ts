// Metric series in SQLite: per-instance buckets at two resolutions, written together, queried and merged per group.
import { z } from 'zod';
import type {
  MetricPoint,
  MetricSeries,
  MetricsGrouping,
  MetricsQueryResult,
} from '../../domain/metrics-types.js';
import type { Database, Migration, Statement } from '../store/database.js';
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

const pointRow = z.object({
  resolution: z.number().int(),
  at: z.number(),
  app: z.string(),
  service: z.string(),
  release: z.number().int(),
  instance: z.string(),
  requests: z.number(),
  s1xx: z.number(),
  s2xx: z.number(),
  s3xx: z.number(),
  s4xx: z.number(),
  s5xx: z.number(),
  e499: z.number(),
  e502: z.number(),
  e503: z.number(),
  e504: z.number(),
  bytes_in: z.number(),
  bytes_out: z.number(),
  latency_json: z.string(),
  latency_max: z.number(),
  samples: z.number(),
  in_flight_sum: z.number(),
  usage_samples: z.number(),
  cpu_sum: z.number(),
  memory_sum: z.number(),
  memory_limit: z.number().nullable(),
  healthy: z.number(),
  unhealthy: z.number(),
});
type PointRow = z.output<typeof pointRow>;

export const METRICS_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'metric points and collector cursors',
    sql: `
      -- One row per instance per time bucket, at each resolution (10 s and 60 s are written together, so the
      -- coarse series is rolled up as data arrives and needs no batch job). instance '' holds what reached no
      -- target (the proxy's 503s for an empty group).
      CREATE TABLE metric_points (
        resolution INTEGER NOT NULL,
        at INTEGER NOT NULL,
        app TEXT NOT NULL,
        service TEXT NOT NULL,
        release INTEGER NOT NULL,
        instance TEXT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        s1xx INTEGER NOT NULL DEFAULT 0,
        s2xx INTEGER NOT NULL DEFAULT 0,
        s3xx INTEGER NOT NULL DEFAULT 0,
        s4xx INTEGER NOT NULL DEFAULT 0,
        s5xx INTEGER NOT NULL DEFAULT 0,
        e499 INTEGER NOT NULL DEFAULT 0,
        e502 INTEGER NOT NULL DEFAULT 0,
        e503 INTEGER NOT NULL DEFAULT 0,
        e504 INTEGER NOT NULL DEFAULT 0,
        bytes_in INTEGER NOT NULL DEFAULT 0,
        bytes_out INTEGER NOT NULL DEFAULT 0,
        latency_json TEXT NOT NULL DEFAULT '{}',
        latency_max REAL NOT NULL DEFAULT 0,
        samples INTEGER NOT NULL DEFAULT 0,
        in_flight_sum REAL NOT NULL DEFAULT 0,
        usage_samples INTEGER NOT NULL DEFAULT 0,
        cpu_sum REAL NOT NULL DEFAULT 0,
        memory_sum REAL NOT NULL DEFAULT 0,
        memory_limit REAL,
        healthy INTEGER NOT NULL DEFAULT 0,
        unhealthy INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (resolution, app, service, instance, at)
      );
      CREATE INDEX metric_points_by_time ON metric_points (resolution, at);
      -- The collector's last-seen cumulative counters per proxy target, so a restart counts on.
      CREATE TABLE metric_cursors (
        target TEXT PRIMARY KEY,
        counters_json TEXT NOT NULL,
        at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'metric points clustered on their key (no rowid)',
    // The rows are found and updated by their key only: stored in the key's own b-tree there is no second copy of
    // the key in an index beside a rowid table (a third less per row). The key starts (resolution, app, at) so an
    // app's range (`berth metrics APP`) is one contiguous read, however long the history of other apps.
    sql: `
      CREATE TABLE metric_points_clustered (
        resolution INTEGER NOT NULL,
        at INTEGER NOT NULL,
        app TEXT NOT NULL,
        service TEXT NOT NULL,
        release INTEGER NOT NULL,
        instance TEXT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        s1xx INTEGER NOT NULL DEFAULT 0,
        s2xx INTEGER NOT NULL DEFAULT 0,
        s3xx INTEGER NOT NULL DEFAULT 0,
        s4xx INTEGER NOT NULL DEFAULT 0,
        s5xx INTEGER NOT NULL DEFAULT 0,
        e499 INTEGER NOT NULL DEFAULT 0,
        e502 INTEGER NOT NULL DEFAULT 0,
        e503 INTEGER NOT NULL DEFAULT 0,
        e504 INTEGER NOT NULL DEFAULT 0,
        bytes_in INTEGER NOT NULL DEFAULT 0,
        bytes_out INTEGER NOT NULL DEFAULT 0,
        latency_json TEXT NOT NULL DEFAULT '{}',
        latency_max REAL NOT NULL DEFAULT 0,
        samples INTEGER NOT NULL DEFAULT 0,
        in_flight_sum REAL NOT NULL DEFAULT 0,
        usage_samples INTEGER NOT NULL DEFAULT 0,
        cpu_sum REAL NOT NULL DEFAULT 0,
        memory_sum REAL NOT NULL DEFAULT 0,
        memory_limit REAL,
        healthy INTEGER NOT NULL DEFAULT 0,
        unhealthy INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (resolution, app, at, service, instance)
      ) WITHOUT ROWID;
      INSERT INTO metric_points_clustered SELECT * FROM metric_points;
      DROP TABLE metric_points;
      ALTER TABLE metric_points_clustered RENAME TO metric_points;
      CREATE INDEX metric_points_by_time ON metric_points (resolution, at);
    `,
  },
];

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

/**
 * The repository of the metrics tables: buckets of every series, and the collector's cursors. The one instance
 * of a control plane is shared by the collector, the API, alarms and the autoscaler.
 */
export class MetricsStore {
  readonly #db: Database;
  readonly retention: MetricsRetention;
  readonly #upsert: Statement<never>;
  readonly #latencyOf: Statement<{ latency_json: string }>;
  readonly #remove: Statement<never>;

  constructor(db: Database, retention: MetricsRetention = DEFAULT_RETENTION) {
    db.migrate('metrics', METRICS_MIGRATIONS);
    this.#db = db;
    this.retention = retention;
    this.#latencyOf = db.statement(
      'SELECT latency_json FROM metric_points WHERE resolution = ? AND app = ? AND service = ? AND instance = ? AND at = ?',
      z.object({ latency_json: z.string() }),
    );
    this.#remove = db.statement('DELETE FROM metric_points WHERE resolution = ? AND at < ?');
    this.#upsert = db.statement(`
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
    this.#db.transaction(() => {
      for (const resolution of [this.retention.fineMs, this.retention.coarseMs]) {
        const bucket = Math.floor(at / resolution) * resolution;
        for (const sample of samples) this.#write(resolution, bucket, sample);
      }
    });
  }

  #write(resolution: number, at: number, sample: InstanceSample): void {
    const { delta, gauges } = sample;
    let latency = delta.latency;
    if (countOf(latency) > 0) {
      const existing = this.#latencyOf.get(resolution, sample.app, sample.service, sample.instance, at);
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
    return (
      this.#remove.run(fineMs, now - fineRetentionMs).changes +
      this.#remove.run(coarseMs, now - coarseRetentionMs).changes
    );
  }

  /** The resolution a query from `from` reads by default: fine while it still holds that far back. */
  resolutionFor(from: number, now: number): number {
    return from >= now - this.retention.fineRetentionMs ? this.retention.fineMs : this.retention.coarseMs;
  }

  /** Series of one app (optionally one service), grouped per service, release or instance, oldest first. */
  query(query: MetricsQuery, now: number): MetricsQueryResult {
    const by = query.by ?? 'service';
    const resolutionMs = query.resolutionMs ?? this.resolutionFor(query.from, now);
    const from = Math.floor(query.from / resolutionMs) * resolutionMs;
    const rows = this.#db
      .statement(
        `SELECT * FROM metric_points WHERE resolution = ? AND app = ? AND at >= ? AND at < ?
         ${query.service === undefined ? '' : 'AND service = ?'} ORDER BY at`,
        pointRow,
      )
      .all(
        ...[resolutionMs, query.app, from, query.to, ...(query.service === undefined ? [] : [query.service])],
      );

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
    return this.#db
      .statement('SELECT DISTINCT app FROM metric_points ORDER BY app', z.object({ app: z.string() }))
      .all()
      .map((r) => r.app);
  }

  /** The collector's cursors: the cumulative counters of each proxy target as last seen. */
  loadCursors(): Map<string, unknown> {
    const rows = this.#db
      .statement(
        'SELECT target, counters_json FROM metric_cursors',
        z.object({ target: z.string(), counters_json: z.string() }),
      )
      .all();
    return new Map(rows.map((row) => [row.target, JSON.parse(row.counters_json) as unknown]));
  }

  /** Saves the `changed` cursors and deletes the `gone` ones, in one transaction (none when there is nothing). */
  saveCursors(changed: ReadonlyMap<string, unknown>, gone: readonly string[], at: number): void {
    if (changed.size === 0 && gone.length === 0) return;
    const put = this.#db.statement(
      'INSERT INTO metric_cursors (target, counters_json, at) VALUES (?, ?, ?) ON CONFLICT (target) DO UPDATE SET counters_json = excluded.counters_json, at = excluded.at',
    );
    const remove = this.#db.statement('DELETE FROM metric_cursors WHERE target = ?');
    this.#db.transaction(() => {
      for (const [key, cursor] of changed) put.run(key, JSON.stringify(cursor), at);
      for (const key of gone) remove.run(key);
    });
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
