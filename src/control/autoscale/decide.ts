// Target tracking as a pure function: policy + observations + last actions + now → desired count, explained.
import type {
  AutoscaleAction,
  AutoscaleDecision,
  AutoscaleMetric,
  MetricVerdict,
  MetricVote,
  StepVerdict,
} from '../../domain/autoscale-types.js';
import type { AutoscaleSpec } from '../../domain/spec.js';

export type { AutoscaleAction, AutoscaleDecision, AutoscaleMetric, MetricVerdict, MetricVote, StepVerdict };

export const AUTOSCALE_METRICS: readonly AutoscaleMetric[] = [
  'requestsPerMinute',
  'cpuPercent',
  'memoryPercent',
];

/**
 * A metric within ±this fraction of its target asks for no change, so the count does not flap around a target
 * (Kubernetes' HPA uses the same 10 %).
 */
export const DEFAULT_TOLERANCE = 0.1;

/** What the autoscaler saw of one service over its window. */
export interface AutoscaleObservations {
  /** Healthy instances now: the only ones the ratio counts. */
  running: number;
  /** The service's desired count now. */
  desired: number;
  /** Per-instance values over the window; null or absent = no data for that metric. */
  values: Partial<Record<AutoscaleMetric, number | null>>;
  /** Set when the whole observation is unusable (no recent data point); no action is taken. */
  stale?: string;
}

/** When the autoscaler last changed the count, in each direction (epoch ms). */
export interface AutoscaleState {
  lastScaleOutAt?: number;
  lastScaleInAt?: number;
}

/** Everything `decide` needs besides the observations; `deploying` suspends scale-in (as ECS does). */
export interface DecideContext {
  now: number;
  deploying: boolean;
  tolerance?: number;
  /** The app's alarm states by name (`OK`, `ALARM`, `INSUFFICIENT_DATA`), for step rules. */
  alarms?: ReadonlyMap<string, string>;
}

const TARGETS: Record<AutoscaleMetric, (policy: AutoscaleSpec) => number | undefined> = {
  requestsPerMinute: (p) => p.requestsPerMinute,
  cpuPercent: (p) => p.cpuPercent,
  memoryPercent: (p) => p.memoryPercent,
};

/** The metrics a policy sets a target for, in a stable order. */
export function trackedMetrics(policy: AutoscaleSpec): { metric: AutoscaleMetric; target: number }[] {
  return AUTOSCALE_METRICS.flatMap((metric) => {
    const target = TARGETS[metric](policy);
    return target === undefined ? [] : [{ metric, target }];
  });
}

/**
 * Decides the desired count. For each metric, `implied = ceil(running × observed / target)`; within the tolerance
 * band it asks for no change. Out when any metric asks (the largest wins), in only when every metric has data and
 * asks (the smallest reduction wins); clamped to min/max. Scale-out waits `scaleOutCooldownMs` after a scale-out;
 * scale-in waits `scaleInCooldownMs` after any change, and never happens during a deployment.
 */
export function decide(
  policy: AutoscaleSpec,
  observations: AutoscaleObservations,
  state: AutoscaleState,
  context: DecideContext,
): AutoscaleDecision {
  const tolerance = context.tolerance ?? DEFAULT_TOLERANCE;
  const { running, desired: current } = observations;
  const verdicts = trackedMetrics(policy).map(({ metric, target }) =>
    verdictOf(metric, target, observations.values[metric], running, current, tolerance),
  );
  // Step rules (ChangeInCapacity on an alarm): a firing one asks for current + add; with target tracking, the
  // largest capacity wins, as Application Auto Scaling does when both kinds of policy apply.
  const steps: StepVerdict[] = (policy.steps ?? []).map(({ alarm, add }) => {
    const alarmState = context.alarms?.get(alarm) ?? null;
    return { alarm, add, state: alarmState, implied: alarmState === 'ALARM' ? current + add : null };
  });
  const result = (desired: number, action: AutoscaleAction, reason: string): AutoscaleDecision => ({
    current,
    desired,
    running,
    action,
    reason,
    metrics: verdicts,
    steps,
  });
  const clamped = clamp(current, policy.min, policy.max);
  const sinceOut = state.lastScaleOutAt === undefined ? Infinity : context.now - state.lastScaleOutAt;
  const sinceIn = state.lastScaleInAt === undefined ? Infinity : context.now - state.lastScaleInAt;
  const sinceChange = Math.min(sinceOut, sinceIn);

  // The bounds are the policy's own; they hold whatever the metrics say (a hand-set count outside them included).
  if (clamped > current) return result(clamped, 'scale_out', `${current} is below min ${policy.min}`);
  if (clamped < current) {
    if (context.deploying)
      return result(current, 'none', `above max ${policy.max}, but a deployment is in progress`);
    return result(clamped, 'scale_in', `${current} is above max ${policy.max}`);
  }
  if (observations.stale !== undefined) return result(current, 'none', `no action: ${observations.stale}`);
  if (running === 0) return result(current, 'none', 'no action: no healthy instance to measure');

  const outs = verdicts.filter((v) => v.vote === 'out');
  const firing = steps.filter((step) => step.implied !== null);
  if (outs.length > 0 || firing.length > 0) {
    const wanted = Math.max(...outs.map((v) => v.implied ?? 0), ...firing.map((step) => step.implied ?? 0));
    const desired = clamp(wanted, policy.min, policy.max);
    const by = [
      ...outs.map((v) => v.metric),
      ...firing.map((step) => `alarm ${step.alarm} (+${step.add})`),
    ].join(', ');
    if (desired <= current) {
      return result(current, 'none', `${by} asks for ${wanted}, but max is ${policy.max}`);
    }
    if (sinceOut < policy.scaleOutCooldownMs) {
      return result(
        current,
        'none',
        `${by} asks for ${wanted}; scale-out cooldown until ${formatLeft(policy.scaleOutCooldownMs - sinceOut)} from now`,
      );
    }
    return result(
      desired,
      'scale_out',
      `${by} asks for ${wanted}${wanted > desired ? ` (max ${policy.max})` : ''}`,
    );
  }

  const missing = verdicts.filter((v) => v.vote === 'no_data');
  if (missing.length === verdicts.length) return result(current, 'none', 'no action: no data for any metric');
  const ins = verdicts.filter((v) => v.vote === 'in');
  if (ins.length === 0 || ins.length < verdicts.length) {
    if (ins.length > 0) {
      const holding = verdicts
        .filter((v) => v.vote !== 'in')
        .map((v) => `${v.metric} (${v.vote.replace('_', ' ')})`);
      return result(current, 'none', `no scale-in: not every metric agrees; ${holding.join(', ')}`);
    }
    if (missing.length > 0) {
      return result(current, 'none', `within target; no data for ${missing.map((v) => v.metric).join(', ')}`);
    }
    return result(current, 'none', 'every metric is within its target');
  }
  const wanted = Math.max(...ins.map((v) => v.implied ?? current));
  const desired = clamp(wanted, policy.min, policy.max);
  if (desired >= current)
    return result(current, 'none', `every metric asks for ${wanted}, but min is ${policy.min}`);
  if (context.deploying)
    return result(current, 'none', `every metric asks for ${wanted}; no scale-in during a deployment`);
  if (sinceChange < policy.scaleInCooldownMs) {
    return result(
      current,
      'none',
      `every metric asks for ${wanted}; scale-in cooldown until ${formatLeft(policy.scaleInCooldownMs - sinceChange)} from now`,
    );
  }
  return result(desired, 'scale_in', `every metric asks for ${wanted}`);
}

function verdictOf(
  metric: AutoscaleMetric,
  target: number,
  observed: number | null | undefined,
  running: number,
  current: number,
  tolerance: number,
): MetricVerdict {
  if (observed === null || observed === undefined || !Number.isFinite(observed)) {
    return { metric, observed: null, target, implied: null, vote: 'no_data', note: 'no data in the window' };
  }
  if (running === 0) {
    return { metric, observed, target, implied: null, vote: 'no_data', note: 'no healthy instance' };
  }
  const ratio = observed / target;
  const at = `${round(observed)} is ${round(ratio * 100)}% of ${target}`;
  if (Math.abs(ratio - 1) <= tolerance) {
    return {
      metric,
      observed,
      target,
      implied: running,
      vote: 'hold',
      note: `${at}: within ±${tolerance * 100}%`,
    };
  }
  // A tiny epsilon keeps 2 × 1.5 / 1.5 from rounding up to 3 through floating-point noise.
  const implied = Math.max(0, Math.ceil(running * ratio - 1e-9));
  const vote: MetricVote = implied > current ? 'out' : implied < current ? 'in' : 'hold';
  return {
    metric,
    observed,
    target,
    implied,
    vote,
    note: `${at}: ${running} × ${round(ratio)} → ${implied}`,
  };
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

function formatLeft(ms: number): string {
  return ms >= 10_000 ? `${Math.ceil(ms / 1000)}s` : `${(ms / 1000).toFixed(1)}s`;
}
