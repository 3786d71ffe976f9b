// Autoscaling as the API shows it: decisions with their per-metric numbers, and a service's policy status.
import type { AutoscaleSpec } from './spec.js';

/** The metrics a policy can track; each target is a per-instance value. */
export type AutoscaleMetric = 'requestsPerMinute' | 'cpuPercent' | 'memoryPercent';

export type MetricVote = 'out' | 'in' | 'hold' | 'no_data';

/** One metric's part in a decision. */
export interface MetricVerdict {
  metric: AutoscaleMetric;
  /** Per-instance value over the window, or null without data. */
  observed: number | null;
  target: number;
  /** `ceil(running × observed / target)`, before min/max; null without data. */
  implied: number | null;
  vote: MetricVote;
  /** Why it voted so, in words. */
  note: string;
}

/** One step rule's part in a decision. */
export interface StepVerdict {
  alarm: string;
  add: number;
  /** The alarm's state now, or null when the app has no alarm of that name. */
  state: string | null;
  /** `current + add` while the alarm fires, else null. */
  implied: number | null;
}

export type AutoscaleAction = 'scale_out' | 'scale_in' | 'none';

/** The outcome of one evaluation: what to set, and why. */
export interface AutoscaleDecision {
  current: number;
  desired: number;
  running: number;
  action: AutoscaleAction;
  reason: string;
  metrics: MetricVerdict[];
  /** Step rules on alarms, when the policy has any. */
  steps: StepVerdict[];
}

/** A change the autoscaler made, as remembered for `berth autoscale status`. */
export interface AutoscaleChange {
  at: number;
  from: number;
  to: number;
  reason: string;
}

/** `GET /v1/apps/:app/autoscale`: one entry per service with a policy. */
export interface ServiceAutoscaleStatus {
  service: string;
  policy: AutoscaleSpec;
  /** The decision an evaluation made now (nothing applied by asking). */
  decision: AutoscaleDecision;
  /** When the decision was evaluated and over which window (ms). */
  evaluatedAt: number;
  windowMs: number;
  tolerance: number;
  lastScaleOut: AutoscaleChange | null;
  lastScaleIn: AutoscaleChange | null;
  /** Set when the autoscaler leaves the service alone (e.g. scaled to 0 by hand). */
  paused: string | null;
}
