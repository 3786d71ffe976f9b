// The defaults of berth.yaml: what a field means when it is left out. docs/spec.md explains each choice.

import type { AutoscaleSpec, DeploySpec, HealthCheckSpec, PipelineSpec } from './spec.js';

/** Instances of a service when neither `instances` nor `autoscale` says otherwise. */
export const DEFAULT_INSTANCES = 1;

/**
 * Active HTTP health check of a service that takes traffic. Faster than ALB's 30 s / 5 s because instances are
 * local and a deploy waits on it; ALB-like `unhealthy` so one slow reply does not eject a target.
 */
export const DEFAULT_HEALTH_CHECK: Readonly<HealthCheckSpec> = Object.freeze({
  path: '/health',
  intervalMs: 2_000,
  timeoutMs: 1_000,
  healthyThreshold: 2,
  unhealthyThreshold: 3,
  graceMs: 5_000,
  successCodes: '200-399',
});

/** SIGTERM → SIGKILL delay: ECS `stopTimeout` and Heroku's shutdown both give 30 s. */
export const DEFAULT_STOP_TIMEOUT_MS = 30_000;

/** Connection draining before stop: ALB's 300 s is sized for the internet; 15 s covers normal requests locally. */
export const DEFAULT_DRAIN_MS = 15_000;

/**
 * Kubernetes' own default `progressDeadlineSeconds`: long enough for image pulls on a busy cluster; pods that crash
 * or never pass their check trip the circuit breaker long before it.
 */
export const DEFAULT_PROGRESS_DEADLINE_MS = 600_000;

/** Rolling deploy as ECS does it by default: start a full new set (200 % max), never go below desired (100 %). */
export const DEFAULT_DEPLOY: Readonly<DeploySpec> = Object.freeze({
  maxSurgePercent: 100,
  minHealthyPercent: 100,
  drainMs: DEFAULT_DRAIN_MS,
  stopTimeoutMs: DEFAULT_STOP_TIMEOUT_MS,
  autoRollback: true,
  strategy: 'rolling',
  steps: Object.freeze([5, 25, 50, 100]) as number[],
  intervalMs: 120_000,
  analysis: Object.freeze({
    minRequests: 50,
    max5xxRatePercent: 5,
    max5xxIncreasePercent: 1,
    maxGatewayErrors: 0,
    maxP95Ms: null,
    maxP99Ms: null,
    maxLatencyRatio: 2,
    check: null,
  }),
});

/** A canary's analysis by default: Flagger's 5 % error ceiling, 1 point over the old release, latency ×2. */
export const DEFAULT_CANARY_ANALYSIS = DEFAULT_DEPLOY.analysis;

/** Scale-out reacts within a minute; scale-in waits ECS's 300 s so a dip does not drop capacity a peak needs. */
export const DEFAULT_AUTOSCALE_COOLDOWNS: Readonly<
  Pick<AutoscaleSpec, 'scaleOutCooldownMs' | 'scaleInCooldownMs'>
> = Object.freeze({ scaleOutCooldownMs: 60_000, scaleInCooldownMs: 300_000 });

/** Lowest instance count of an autoscaled service when `min` is left out. */
export const DEFAULT_AUTOSCALE_MIN = 1;

/** Time an instance has to answer a request before the proxy returns 504; Heroku's router allows 30 s. */
export const DEFAULT_RESPONSE_TIMEOUT_MS = 30_000;

/** No stages and automatic deploy: a newcomer's `berth deploy` deploys, as `git push heroku` does. */
export const DEFAULT_PIPELINE: Readonly<PipelineSpec> = Object.freeze({
  check: [],
  test: [],
  deploy: 'auto',
  secrets: [],
  timeoutMs: 10 * 60_000,
});
