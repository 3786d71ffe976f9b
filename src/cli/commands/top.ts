// `berth top`: every service's request rate, latency, errors and usage over the last minute, refreshed live.
import type { Command } from 'commander';
import type { MetricSeries } from '../../domain/metrics-types.js';
import { parseDuration } from '../../lib/duration.js';
import type { CliContext } from '../context.js';
import { formatBytes, printJson, printTable, UsageError } from '../output.js';
import { formatMs } from './metrics.js';

function rows(series: readonly MetricSeries[]): (string | number)[][] {
  return series.map((s) => {
    const p = s.points[0];
    const errors = p ? p.s5xx + p.e502 + p.e503 + p.e504 : 0;
    return [
      s.app,
      s.service,
      p ? p.rpm.toFixed(1) : '0.0',
      formatMs(p?.p50 ?? null),
      formatMs(p?.p95 ?? null),
      formatMs(p?.p99 ?? null),
      p && p.requests > 0 ? `${((100 * errors) / p.requests).toFixed(1)}%` : '-',
      p ? `${p.healthy}/${p.healthy + p.unhealthy}` : '-',
      p?.cpuPercent == null ? '-' : `${p.cpuPercent.toFixed(1)}%`,
      formatBytes(p?.memoryBytes ?? null),
    ];
  });
}

const HEADERS = ['app', 'service', 'rpm', 'p50', 'p95', 'p99', '5xx', 'healthy', 'cpu', 'mem'];

export function registerTop(program: Command, context: CliContext): void {
  program
    .command('top')
    .description('live view of every service: requests, latency, errors, CPU and memory')
    .option('--window <duration>', 'the span each row covers', '1m')
    .option('--interval <duration>', 'how often to refresh', '2s')
    .option('--once', 'print once and exit (also when stdout is not a terminal)')
    .option('--json', 'print once as JSON')
    .action(async (options: { window: string; interval: string; once?: boolean; json?: boolean }) => {
      let intervalMs: number;
      try {
        parseDuration(options.window);
        intervalMs = parseDuration(options.interval);
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
      const client = context.client();
      const fetchRows = (): Promise<MetricSeries[]> =>
        client.request<MetricSeries[]>('GET', `/v1/top?window=${encodeURIComponent(options.window)}`);
      if (options.json) return printJson(await fetchRows());
      const live = !options.once && process.stdout.isTTY === true;
      if (!live) return printTable(HEADERS, rows(await fetchRows()));
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      while (!stop.signal.aborted) {
        const series = await fetchRows();
        process.stdout.write('\x1b[H\x1b[2J');
        process.stdout.write(
          `berth top — last ${options.window}, every ${options.interval} (Ctrl-C to quit)\n\n`,
        );
        printTable(HEADERS, rows(series));
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, intervalMs);
          stop.signal.addEventListener('abort', () => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    });
}
