// A canary's judge: the new and old releases' numbers over one window (from the proxy's per-target counters),
// compared against the spec's thresholds. Pure: the controller feeds it snapshots and records what it says.
import type { CanaryDecision, CounterSnapshot, ReleaseWindow } from '../../domain/deployment.js';
import type { Counters } from '../../domain/route-table.js';
import type { CanaryAnalysisSpec } from '../../domain/spec.js';
import {
  countOf,
  fromCumulative,
  mergeInto,
  quantile,
  type SparseHistogram,
  subtract,
} from '../metrics/latency.js';

/** Below this, latency ratios compare noise (a 1 ms vs 2 ms p99 is not a regression). */
export const LATENCY_FLOOR_MS = 10;

/** What the analysis keeps of a target's counters. */
export function snapshotOf(counters: Counters): CounterSnapshot {
  const gateway = counters.proxyErrors['502'] + counters.proxyErrors['503'] + counters.proxyErrors['504'];
  return {
    requests: counters.requests,
    errors5xx: counters.status['5xx'] + gateway,
    gateway,
    latency: fromCumulative(counters.histogram),
  };
}

/**
 * One release's numbers between two snapshots of its targets. A target without a starting snapshot (it joined in
 * the window) counts from zero; one whose counters went down (the proxy restarted) counts from its restart.
 */
export function releaseWindow(
  release: number,
  targets: readonly { now: CounterSnapshot; before: CounterSnapshot | undefined }[],
): ReleaseWindow {
  let requests = 0;
  let errors5xx = 0;
  let gateway = 0;
  const latency: SparseHistogram = {};
  for (const { now, before } of targets) {
    const base = before === undefined || now.requests < before.requests ? undefined : before;
    requests += now.requests - (base?.requests ?? 0);
    errors5xx += now.errors5xx - (base?.errors5xx ?? 0);
    gateway += now.gateway - (base?.gateway ?? 0);
    mergeInto(latency, subtract(now.latency, base?.latency ?? {}));
  }
  return {
    release,
    requests,
    errors5xx,
    gateway,
    errorRatePercent: requests === 0 ? 0 : (100 * errors5xx) / requests,
    p95Ms: countOf(latency) === 0 ? null : quantile(latency, 0.95),
    p99Ms: countOf(latency) === 0 ? null : quantile(latency, 0.99),
  };
}

/**
 * Promote, hold or abort, with a line per check. Too few requests on the new side is a hold, never a pass
 * (Kayenta's minimum sample); the old side's numbers are the baseline of the relative checks when it has served
 * enough itself, else only the absolute ceilings apply.
 */
export function judgeCanary(
  analysis: CanaryAnalysisSpec,
  canary: ReleaseWindow,
  baseline: ReleaseWindow,
  /** The user's check (`analysis.check`): null when it passed or there is none, else why it failed. */
  checkFailure: string | null = null,
  /** What the reasons call the baseline: the old release, or an external origin during a traffic ramp. */
  baselineName = 'old',
): Pick<CanaryDecision, 'verdict' | 'reasons'> {
  // The user's own check judges the new release whatever the sample size: a failure is an abort.
  if (checkFailure !== null) return { verdict: 'abort', reasons: [checkFailure] };
  if (canary.requests < analysis.minRequests) {
    return {
      verdict: 'hold',
      reasons: [`not enough requests yet: ${canary.requests} of the ${analysis.minRequests} a verdict needs`],
    };
  }
  const failures: string[] = [];
  const passes: string[] = [];
  const check = (failed: boolean, line: string): void => {
    (failed ? failures : passes).push(line);
  };
  const comparable = baseline.requests >= analysis.minRequests;
  const rate = canary.errorRatePercent;
  check(rate > analysis.max5xxRatePercent, `5xx ${pct(rate)} (limit ${pct(analysis.max5xxRatePercent)})`);
  if (comparable) {
    const limit = baseline.errorRatePercent + analysis.max5xxIncreasePercent;
    check(
      rate > limit,
      `5xx ${pct(rate)} vs ${baselineName} ${pct(baseline.errorRatePercent)} (limit ${pct(limit)})`,
    );
  }
  // 502-504: what the old release's rate predicts for as many requests, plus the allowance.
  const expected = comparable ? (baseline.gateway / baseline.requests) * canary.requests : 0;
  const gatewayLimit = Math.floor(expected) + analysis.maxGatewayErrors;
  check(canary.gateway > gatewayLimit, `502-504 ${canary.gateway} (limit ${gatewayLimit})`);
  for (const [name, value, ceiling, old] of [
    ['p95', canary.p95Ms, analysis.maxP95Ms, baseline.p95Ms],
    ['p99', canary.p99Ms, analysis.maxP99Ms, baseline.p99Ms],
  ] as const) {
    if (value === null) continue;
    if (ceiling !== null) check(value > ceiling, `${name} ${ms(value)} (limit ${ms(ceiling)})`);
    if (comparable && old !== null) {
      const limit = analysis.maxLatencyRatio * Math.max(old, LATENCY_FLOOR_MS);
      check(value > limit, `${name} ${ms(value)} vs ${baselineName} ${ms(old)} (limit ${ms(limit)})`);
    }
  }
  if (failures.length > 0) return { verdict: 'abort', reasons: failures };
  if (analysis.check !== null) passes.push(`check ${analysis.check} answered 2xx`);
  return { verdict: 'promote', reasons: passes };
}

function pct(n: number): string {
  return `${Number(n.toFixed(2))}%`;
}

function ms(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(2)}s` : `${Number(n.toFixed(1))}ms`;
}

/** GETs the user's check URL: null when it answers 2xx within `timeoutMs`, else the reason it failed. */
export async function runCheck(url: string, timeoutMs = 5000): Promise<string | null> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    await response.body?.cancel();
    return response.status >= 200 && response.status < 300
      ? null
      : `check ${url} answered ${response.status}`;
  } catch (error) {
    const cause = (error as Error & { cause?: Error }).cause?.message ?? (error as Error).message;
    return `check ${url} failed: ${cause}`;
  }
}
