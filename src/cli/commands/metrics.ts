// `berth metrics APP`: per service (or release, or instance) request rate, latency, errors and usage over a window.
import type { Command } from 'commander';
import type { MetricPoint, MetricSeries, MetricsQueryResult } from '../../domain/metrics-types.js';
import { parseDuration } from '../../lib/duration.js';
import type { CliContext } from '../context.js';
import { formatBytes, printJson, printTable, UsageError } from '../output.js';

const BARS = '▁▂▃▄▅▆▇█';

/** Eight-level bars for the values, blank for gaps; scaled from 0 to the maximum. */
export function sparkline(values: readonly (number | null)[]): string {
  const max = Math.max(0, ...values.map((v) => v ?? 0));
  return values
    .map((v) => {
      if (v === null) return ' ';
      if (max === 0) return BARS[0];
      return BARS[Math.min(BARS.length - 1, Math.floor((v / max) * (BARS.length - 1) + 0.5))];
    })
    .join('');
}

/** The points of a series on every bucket of the window, with nulls where nothing was recorded. */
export function filled(series: MetricSeries, result: MetricsQueryResult): (MetricPoint | null)[] {
  const byAt = new Map(series.points.map((p) => [p.at, p]));
  const out: (MetricPoint | null)[] = [];
  for (let at = result.from; at < result.to; at += result.resolutionMs) out.push(byAt.get(at) ?? null);
  return out;
}

export function formatMs(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 10) return `${ms.toFixed(1)}ms`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  return `${(ms / 1000).toFixed(2)}s`;
}

export function registerMetrics(program: Command, context: CliContext): void {
  program
    .command('metrics')
    .description("show an app's request rate, latency, status codes and CPU/memory")
    .argument('<app>', 'the app')
    .option('-s, --service <name>', 'only this service')
    .option('--since <duration>', 'how far back (e.g. 15m, 1h, 2d)', '15m')
    .option('--by <grouping>', 'one row per service, release or instance', 'service')
    .option('--json', 'print the series as JSON')
    .action(async (app: string, options: { service?: string; since: string; by: string; json?: boolean }) => {
      let sinceMs: number;
      try {
        sinceMs = parseDuration(options.since);
      } catch (error) {
        throw new UsageError(`--since: ${(error as Error).message}`);
      }
      if (!['service', 'release', 'instance'].includes(options.by)) {
        throw new UsageError('--by: expected service, release or instance');
      }
      const query = new URLSearchParams({ since: options.since, by: options.by });
      if (options.service) query.set('service', options.service);
      const client = context.client();
      const path = `/v1/apps/${encodeURIComponent(app)}/metrics`;
      const result = await client.request<MetricsQueryResult>('GET', `${path}?${query}`);
      if (options.json) return printJson(result);
      query.set('collapse', '1');
      const totals = await client.request<MetricsQueryResult>('GET', `${path}?${query}`);
      const key = (s: MetricSeries): string => `${s.service}/${s.release ?? ''}/${s.instance ?? ''}`;
      const summaries = new Map(totals.series.map((s) => [key(s), s.points[0]]));
      if (result.series.length === 0) {
        process.stdout.write(`no metrics for ${app} in the last ${options.since}\n`);
        return;
      }
      const tty = process.stdout.isTTY === true;
      const headers = [
        options.by,
        'req',
        'rpm',
        'p50',
        'p95',
        'p99',
        '2xx',
        '3xx',
        '4xx',
        '5xx',
        '502-504',
        'healthy',
        'cpu',
        'mem',
        ...(tty ? ['requests', 'p95'] : []),
      ];
      const rows = result.series.map((series) => {
        const s = summaries.get(key(series));
        const last = series.points[series.points.length - 1];
        const label =
          options.by === 'instance'
            ? (series.instance ?? '')
            : options.by === 'release'
              ? `${series.service} v${series.release}`
              : series.service;
        const points = filled(series, result);
        const requests = s?.requests ?? 0;
        return [
          label,
          requests,
          (requests / (sinceMs / 60_000)).toFixed(1),
          formatMs(s?.p50 ?? null),
          formatMs(s?.p95 ?? null),
          formatMs(s?.p99 ?? null),
          s?.s2xx ?? 0,
          s?.s3xx ?? 0,
          s?.s4xx ?? 0,
          s?.s5xx ?? 0,
          (s?.e502 ?? 0) + (s?.e503 ?? 0) + (s?.e504 ?? 0),
          `${last?.healthy ?? 0}${(last?.unhealthy ?? 0) > 0 ? ` (${last?.unhealthy} unhealthy)` : ''}`,
          last?.cpuPercent == null ? '-' : `${last.cpuPercent.toFixed(1)}%`,
          `${formatBytes(last?.memoryBytes ?? null)}${last?.memoryPercent == null ? '' : ` ${Math.round(last.memoryPercent)}%`}`,
          ...(tty
            ? [
                sparkline(points.map((p) => p?.requests ?? null)),
                sparkline(points.map((p) => p?.p95 ?? null)),
              ]
            : []),
        ];
      });
      process.stdout.write(
        `${app}: last ${options.since}, ${result.resolutionMs / 1000}s buckets (percentiles over the whole window)\n`,
      );
      printTable(headers, rows);
    });
}
