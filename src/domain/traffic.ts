// An app's traffic split between its services and its external origins (`berth traffic`), and a ramp's progress.
import type { CanaryDecision, CounterSnapshot } from './deployment.js';
import { BerthError, type Issue } from './errors.js';
import type { AppSpec, CanaryAnalysisSpec } from './spec.js';

/**
 * A ramp: the Berth side (one service) walks `steps` (% of the requests), the origins share the rest in the
 * proportions they had when it started. Judged after each interval by the canary analysis, the origins being the
 * baseline; an abort sends everything back to the origins.
 */
export interface TrafficRamp {
  service: string;
  steps: number[];
  step: number;
  intervalMs: number;
  analysis: CanaryAnalysisSpec;
  /** The origins' shares of what the service does not take (they sum to 1). */
  origins: Record<string, number>;
  state: 'running' | 'succeeded' | 'aborted';
  /** When the current window started: null until the service has a healthy target. */
  windowStartedAt: number | null;
  /** Per-target counters (`group/id`) at the window's start. */
  baseline: Record<string, CounterSnapshot>;
  holds: number;
  last: CanaryDecision | null;
}

/** What `berth traffic` set for an app: weights by service or origin name, and the ramp under way (or last run). */
export interface TrafficSplit {
  app: string;
  weights: Record<string, number>;
  ramp: TrafficRamp | null;
  updatedAt: number;
}

/** One side of a split as `berth traffic APP` shows it: its weight now and the proxy's numbers for it. */
export interface TrafficSide {
  name: string;
  kind: 'service' | 'origin';
  /** % of the split's requests it gets now. */
  percent: number;
  /** Where an origin is, as written. */
  url?: string;
  targets: { id: string; health: string; healthReason: string }[];
  requests: number;
  errors5xx: number;
  gateway: number;
  p99Ms: number;
}

/** `GET /v1/apps/:app/traffic`. */
export interface TrafficStatus {
  app: string;
  split: TrafficSplit | null;
  sides: TrafficSide[];
  /** Things that deserve a look but refuse nothing (an origin that is not healthy yet). */
  warnings: string[];
}

/** The weights a split means now: a running ramp's step, else the weights as set. */
export function effectiveWeights(split: TrafficSplit): Record<string, number> {
  const ramp = split.ramp;
  if (ramp === null || ramp.state !== 'running') return split.weights;
  const share = ramp.steps[ramp.step] ?? 100;
  const weights: Record<string, number> = { [ramp.service]: share };
  for (const [name, part] of Object.entries(ramp.origins)) weights[name] = Math.round((100 - share) * part);
  return weights;
}

/** The names a split may weigh: the app's routed services and its origins. */
export function splitNames(spec: AppSpec): { services: string[]; origins: string[] } {
  return {
    services: [...new Set(spec.routes.map((r) => r.service))],
    origins: Object.keys(spec.origins ?? {}),
  };
}

/**
 * Checks `web=10 heroku=90` against the app's spec. Refused whole: an unknown name, a weight that is not a whole
 * number from 0 to 1000, no positive weight, or a service named without an origin to share with.
 */
export function parseWeights(spec: AppSpec, input: Record<string, unknown>): Record<string, number> {
  const { services, origins } = splitNames(spec);
  const issues: Issue[] = [];
  const weights: Record<string, number> = {};
  for (const [name, value] of Object.entries(input)) {
    if (!services.includes(name) && !origins.includes(name)) {
      const known = [...services.map((s) => `${s} (service)`), ...origins.map((o) => `${o} (origin)`)];
      issues.push({
        path: name,
        message: `${spec.app} has no routed service or origin "${name}"; expected one of ${known.join(', ') || 'nothing: declare origins: in berth.yaml'}`,
      });
      continue;
    }
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 1000) {
      issues.push({
        path: name,
        message: `expected a whole number from 0 to 1000, got ${JSON.stringify(value)}`,
      });
      continue;
    }
    weights[name] = value;
  }
  if (issues.length === 0) {
    if (Object.values(weights).reduce((a, b) => a + b, 0) <= 0)
      issues.push({
        path: '',
        message: 'the weights must add up to more than 0: something has to take the requests',
      });
    else if (!Object.keys(weights).some((n) => origins.includes(n)))
      issues.push({
        path: '',
        message: `name at least one origin (${origins.join(', ') || 'none declared'})`,
      });
  }
  if (issues.length > 0)
    throw new BerthError('invalid_request', `invalid traffic split for ${spec.app}`, { issues });
  return weights;
}

/**
 * The backends of a route to `service` under a split: the service's own groups (one, or two during a canary, in
 * their proportions) scaled to the service's weight, and each weighted origin's group. A route whose service the
 * split does not name keeps its own backends.
 */
export function splitBackends(
  own: readonly { targetGroup: string; weight: number; release?: string }[],
  service: string,
  weights: Record<string, number> | undefined,
  originGroup: (origin: string) => string,
  isOrigin: (name: string) => boolean,
): { targetGroup: string; weight: number; release?: string }[] {
  if (weights === undefined || !(service in weights)) return [...own];
  const entries = Object.entries(weights).filter(([name]) => name === service || isOrigin(name));
  const total = entries.reduce((sum, [, w]) => sum + w, 0);
  if (total <= 0) return [...own];
  // Weights out of 1000: the route table's range, fine enough for 0.1 % steps.
  const scale = 1000 / total;
  const ownTotal = own.reduce((sum, b) => sum + b.weight, 0) || 1;
  // Labelled for `X-Berth-Release` (when the route allows it): a canary's groups keep their releases (`v7`), the
  // service's one group takes its name (`web`), each origin its own (`heroku`): a tester can try either side.
  const out = own.map((b) => ({
    targetGroup: b.targetGroup,
    weight: Math.round(((weights[service] ?? 0) * scale * b.weight) / ownTotal),
    release: b.release ?? (own.length === 1 ? service : undefined),
  }));
  for (const [name, weight] of entries)
    if (name !== service)
      out.push({ targetGroup: originGroup(name), weight: Math.round(weight * scale), release: name });
  return out.map(({ release, ...b }) => (release === undefined ? b : { ...b, release }));
}
