// One proxy worker's counters as plain data, and their sum: how N workers report as one proxy.
import { Metrics, type RawMetrics } from './metrics.js';

/** What one worker counted: per target group (requests that reached no target) and per target, and unrouted. */
export interface WorkerMetrics {
  groups: Record<string, { group: RawMetrics; targets: Record<string, RawMetrics> }>;
  unrouted: { notFound: number; redirected: number };
}

export const NO_WORKER_METRICS: WorkerMetrics = { groups: {}, unrouted: { notFound: 0, redirected: 0 } };

/**
 * Adds reports up. `gauges: false` leaves out in-flight requests and open connections (the reports of workers that
 * are gone: their counts stay, their gauges do not). `only`, when given, keeps the targets it lists (and every
 * group): a target that left the proxy is not remembered for ever.
 */
export function sumWorkerMetrics(
  reports: readonly WorkerMetrics[],
  options: { gauges?: boolean; only?: WorkerMetrics } = {},
): WorkerMetrics {
  const gauges = options.gauges ?? true;
  const groups = new Map<string, { group: Metrics; targets: Map<string, Metrics> }>();
  const unrouted = { notFound: 0, redirected: 0 };
  for (const report of reports) {
    unrouted.notFound += report.unrouted.notFound;
    unrouted.redirected += report.unrouted.redirected;
    for (const [name, counted] of Object.entries(report.groups)) {
      let sum = groups.get(name);
      if (sum === undefined) {
        sum = { group: new Metrics(), targets: new Map() };
        groups.set(name, sum);
      }
      sum.group.addRaw(counted.group, gauges);
      for (const [id, raw] of Object.entries(counted.targets)) {
        if (options.only !== undefined && options.only.groups[name]?.targets[id] === undefined) continue;
        let target = sum.targets.get(id);
        if (target === undefined) {
          target = new Metrics();
          sum.targets.set(id, target);
        }
        target.addRaw(raw, gauges);
      }
    }
  }
  const out: WorkerMetrics = { groups: {}, unrouted };
  for (const [name, sum] of groups) {
    const targets: Record<string, RawMetrics> = {};
    for (const [id, metrics] of sum.targets) targets[id] = metrics.toRaw();
    out.groups[name] = { group: sum.group.toRaw(), targets };
  }
  return out;
}
