// One proxy worker's counters as plain data, and their sum: how N workers report as one proxy.
import { Metrics, type RawMetrics } from './metrics.js';

/**
 * What one worker counted: per target group (requests that reached no target) and per target, the final counts of
 * targets drained in the last few minutes (keyed `group/target`), and requests routed nowhere.
 */
export interface WorkerMetrics {
  groups: Record<string, { group: RawMetrics; targets: Record<string, RawMetrics> }>;
  drained: Record<string, RawMetrics>;
  unrouted: { notFound: number; redirected: number; challenges: number };
}

export const NO_WORKER_METRICS: WorkerMetrics = {
  groups: {},
  drained: {},
  unrouted: { notFound: 0, redirected: 0, challenges: 0 },
};

/**
 * Adds reports up. `gauges: false` leaves out in-flight requests and open connections (the reports of workers that
 * are gone: their counts stay, their gauges do not). `only`, when given, keeps the targets (and drained targets) it
 * lists, and every group: a target that left the proxy is not remembered for ever.
 */
export function sumWorkerMetrics(
  reports: readonly WorkerMetrics[],
  options: { gauges?: boolean; only?: WorkerMetrics } = {},
): WorkerMetrics {
  const gauges = options.gauges ?? true;
  const groups = new Map<string, { group: Metrics; targets: Map<string, Metrics> }>();
  const unrouted = { notFound: 0, redirected: 0, challenges: 0 };
  const drained = new Map<string, Metrics>();
  for (const report of reports) {
    unrouted.notFound += report.unrouted.notFound;
    unrouted.redirected += report.unrouted.redirected;
    unrouted.challenges += report.unrouted.challenges;
    for (const [key, raw] of Object.entries(report.drained)) {
      if (options.only !== undefined && options.only.drained[key] === undefined) continue;
      let target = drained.get(key);
      if (target === undefined) {
        target = new Metrics();
        drained.set(key, target);
      }
      target.addRaw(raw, false); // a drained target has nothing in flight
    }
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
  const out: WorkerMetrics = { groups: {}, drained: {}, unrouted };
  for (const [key, metrics] of drained) out.drained[key] = metrics.toRaw();
  for (const [name, sum] of groups) {
    const targets: Record<string, RawMetrics> = {};
    for (const [id, metrics] of sum.targets) targets[id] = metrics.toRaw();
    out.groups[name] = { group: sum.group.toRaw(), targets };
  }
  return out;
}
