// What the autoscaler sees of a service: per-instance requests/min, CPU % and memory % over a sliding window.
import { totalmem } from 'node:os';
import type { Instance } from '../../domain/instance.js';
import type { MetricsStore } from '../metrics/metrics-store.js';
import type { ServiceRecord } from '../store/store.js';
import type { AutoscaleObservations } from './decide.js';

/** How far back the window reaches and when the newest data point counts as too old. */
export interface ObservationWindow {
  /** Sliding window over which each metric is averaged; default 60 s. */
  windowMs: number;
  /** No action when the newest bucket started longer ago than this; default 30 s (a 10 s bucket + 4 collections). */
  staleAfterMs: number;
  /** The metrics collector's interval (its collections are aligned to it); default 5 s. */
  collectIntervalMs: number;
}

export const DEFAULT_OBSERVATION_WINDOW: ObservationWindow = {
  windowMs: 60_000,
  staleAfterMs: 30_000,
  collectIntervalMs: 5000,
};

/**
 * Reads the metrics store. Requests per minute per instance is the service's total over the window (every
 * instance that served in it, gone ones too, and requests that found no target) divided by the healthy count now,
 * so `running × observed` is the whole load whatever happened to the count inside the window (ALB's
 * RequestCountPerTarget is the same total over healthy targets). CPU and memory are averaged over each instance's
 * samples in the window, then over the instances healthy now; memory % is of `resources.memory`, or of the
 * machine's memory when the service sets no limit.
 */
export function observe(
  metrics: MetricsStore,
  service: ServiceRecord,
  live: readonly Instance[],
  now: number,
  window: ObservationWindow = DEFAULT_OBSERVATION_WINDOW,
): AutoscaleObservations {
  const healthy = live.filter((i) => i.state === 'healthy');
  const running = healthy.length;
  const base = { running, desired: service.desiredCount };
  const resolutionMs = metrics.retention.fineMs;
  const from = now - window.windowMs;
  const byService = metrics.query(
    { app: service.app, service: service.name, from, to: now + 1, by: 'service', resolutionMs },
    now,
  );
  const points = byService.series[0]?.points ?? [];
  const newest = points.at(-1);
  if (!newest) return { ...base, values: {}, stale: 'no metrics in the window yet' };
  if (now - newest.at > window.staleAfterMs) {
    return {
      ...base,
      values: {},
      stale: `the newest metrics are ${Math.round((now - newest.at) / 1000)}s old`,
    };
  }
  // A collection at t stores the requests of (t - interval, t] in the bucket holding t, and collections are aligned to
  // the interval, so the buckets from `start` on hold the requests of (start - interval, last collection]. The window
  // starts at the first bucket with data (a service younger than the window counts its life only).
  const interval = window.collectIntervalMs;
  const start = Math.max(points[0]!.at, byService.from);
  const spanMs = Math.max(interval, Math.floor(now / interval) * interval + interval - start);
  const requests = points.reduce((total, p) => total + p.requests, 0);

  const byInstance = metrics.query(
    {
      app: service.app,
      service: service.name,
      from,
      to: now + 1,
      by: 'instance',
      resolutionMs,
      collapse: true,
    },
    now,
  );
  const healthyIds = new Set(healthy.map((i) => i.id));
  const usage = byInstance.series
    .filter((s) => s.instance !== undefined && healthyIds.has(s.instance))
    .map((s) => s.points[0])
    .filter((p) => p !== undefined);
  const average = (values: (number | null)[]): number | null => {
    const present = values.filter((v): v is number => v !== null);
    return present.length === 0 ? null : present.reduce((a, b) => a + b, 0) / present.length;
  };
  const limit = service.spec.resources?.memoryBytes;
  const memoryPercent = limit
    ? average(usage.map((p) => (p.memoryBytes === null ? null : (100 * p.memoryBytes) / limit)))
    : average(usage.map((p) => (p.memoryBytes === null ? null : (100 * p.memoryBytes) / totalmem())));
  return {
    ...base,
    values: {
      requestsPerMinute: running === 0 ? null : requests / (spanMs / 60_000) / running,
      cpuPercent: average(usage.map((p) => p.cpuPercent)),
      memoryPercent,
    },
  };
}
