// A target's health as the proxy judges it (ALB semantics), and its lifecycle in a target group.
import type { TargetHealth, TargetState } from './route-table.js';
import { stateMachine } from './state-machine.js';

/**
 * `initial`: registered, no verdict yet (takes no traffic while a healthy target exists); one passing check makes
 * it healthy, `unhealthy` failures (past the grace period) unhealthy. Then `healthy` ⇄ `unhealthy` by thresholds.
 */
export const TARGET_HEALTH = stateMachine<TargetHealth>('target health', {
  initial: ['healthy', 'unhealthy'],
  healthy: ['unhealthy'],
  unhealthy: ['healthy'],
});

/** `active` takes new requests; `draining` finishes the ones in flight; `drained` is done. */
export const TARGET_LIFECYCLE = stateMachine<TargetState>('target', {
  active: ['draining'],
  draining: ['drained'],
  drained: [],
});
