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

/** One target's health in `GET /target-health`: the state the control plane builds its instances' health on. */
export interface TargetHealthStatus {
  targetGroup: string;
  /** The target's id: the instance id, for the control plane's targets. */
  target: string;
  health: TargetHealth;
  /** The last check's result, e.g. `status 200`, `connection refused`, `timeout`. */
  reason: string;
  state: TargetState;
}

/**
 * `GET /target-health`: every target's health and the sequence number it is current as of. A reader then follows
 * `GET /target-health?after=<lastSeq>` and applies the changes in order (list, then watch).
 */
export interface TargetHealthSnapshot {
  /** Random per proxy process: a different one means the proxy restarted, and the reader lists again. */
  epoch: string;
  lastSeq: number;
  targets: TargetHealthStatus[];
}

/** One health transition, numbered in the proxy's event sequence. */
export interface TargetHealthChange {
  seq: number;
  targetGroup: string;
  target: string;
  from: TargetHealth;
  to: TargetHealth;
  reason: string;
}

/**
 * `GET /target-health?after=N&wait=ms`: the transitions after `N` (waiting up to `wait` for one). With another
 * `epoch`, `truncated` (the reader fell behind the proxy's ring) or `lastSeq < N`, the reader lists again.
 */
export interface TargetHealthChanges {
  epoch: string;
  lastSeq: number;
  truncated: boolean;
  changes: TargetHealthChange[];
}
