// Bytes per metric series per day: one simulated day of collections (every 5 s, as the collector does) for idle
// instances and for busy ones (requests and a latency histogram every collection), written through the real
// MetricsStore into a fresh SQLite file, with retention applied as the collector applies it; sizes from `dbstat`.
// Run: npm run build && node dist/bench/scale/metrics-storage.js [--series 20] [--hours 24]
import { parseArgs } from 'node:util';
import {
  DEFAULT_RETENTION,
  emptyDelta,
  type InstanceSample,
  MetricsStore,
} from '../../src/control/metrics/metrics-store.js';
import { Database } from '../../src/control/store/database.js';
import { scratchDir } from '../processes.js';

interface Size {
  rows: number;
  bytes: number;
}

function measure(kind: 'idle' | 'busy', series: number, hours: number): Size {
  const dir = scratchDir('berth-bench-metrics-');
  const db = Database.open(`${dir}/state.db`);
  const metrics = new MetricsStore(db, DEFAULT_RETENTION);
  const start = Date.UTC(2026, 0, 1);
  const end = start + hours * 3_600_000;
  for (let at = start; at < end; at += 5000) {
    const samples: InstanceSample[] = [];
    for (let i = 0; i < series; i++) {
      const delta = emptyDelta();
      if (kind === 'busy') {
        delta.requests = 50;
        delta.s2xx = 50;
        delta.bytesIn = 5000;
        delta.bytesOut = 20_000;
        delta.latency = { 10: 20, 12: 25, 15: 5 };
        delta.latencyMax = 3.1;
      }
      samples.push({
        app: 'shop',
        service: 'web',
        release: 3,
        instance: `shop.web.${String(i).padStart(6, '0')}`,
        delta,
        gauges: {
          inFlight: 0,
          cpuPercent: 0.4,
          memoryBytes: 52_000_000 + i,
          memoryLimit: null,
          healthy: true,
          unhealthy: false,
        },
      });
    }
    metrics.record(at, samples);
    if (at % 60_000 === 0) metrics.enforceRetention(at);
  }
  const size = db
    .statement<{ rows: number; bytes: number }>(
      "SELECT COUNT(*) AS rows, (SELECT SUM(pgsize) FROM dbstat WHERE name IN ('metric_points', 'metric_points_by_time') OR name LIKE 'sqlite_autoindex_metric_points%') AS bytes FROM metric_points",
    )
    .get()!;
  db.close();
  return size;
}

const { values } = parseArgs({
  options: { series: { type: 'string', default: '20' }, hours: { type: 'string', default: '24' } },
});
const series = Number(values.series);
const hours = Number(values.hours);
console.log(
  `\n${series} series, ${hours} h of collections every 5 s (10 s buckets kept 1 h, 1 min buckets kept 7 days), table and indexes`,
);
console.log(
  '| series | rows kept per series | bytes per series (table + indexes) | per day of 1 min buckets |',
);
console.log('| --- | ---: | ---: | ---: |');
for (const kind of ['idle', 'busy'] as const) {
  const { rows, bytes } = measure(kind, series, hours);
  // The 10 s buckets are bounded (1 h); what grows with time is the 1 min buckets, 1440 a day until 7 days.
  const fineRows = Math.min(hours * 360, 360);
  const coarseRows = rows / series - fineRows;
  const perRow = bytes / rows;
  console.log(
    `| ${kind} | ${(rows / series).toFixed(0)} | ${(bytes / series / 1024).toFixed(1)} KiB | ${((perRow * coarseRows * (24 / hours)) / 1024).toFixed(1)} KiB (${perRow.toFixed(0)} B a row) |`,
  );
}
