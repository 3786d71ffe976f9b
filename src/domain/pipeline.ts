// Pipeline runs and jobs as the API shows them: shared by the control plane and its clients.
import { stateMachine } from './state-machine.js';

/** `queued` → `running` → `succeeded` | `failed` | `cancelled` | `waiting` (for a promote) → `running` ... */
export type RunStatus = 'queued' | 'running' | 'waiting' | 'succeeded' | 'failed' | 'cancelled';

export type JobStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'skipped';

/**
 * A run waits in its app's queue, runs its jobs, may wait for a promote (manual deploy) and ends once. A queued or
 * waiting run fails when the control plane that held it stopped; a queued one is cancelled when superseded.
 */
export const RUN_STATES = stateMachine<RunStatus>('pipeline run', {
  queued: ['running', 'cancelled', 'failed'],
  running: ['waiting', 'succeeded', 'failed', 'cancelled'],
  waiting: ['running', 'cancelled', 'failed'],
  succeeded: [],
  failed: [],
  cancelled: [],
});

/** A job runs once; one that never ran is skipped (an earlier job failed) or cancelled (with its run). */
export const JOB_STATES = stateMachine<JobStatus>('pipeline job', {
  pending: ['running', 'skipped', 'cancelled'],
  running: ['succeeded', 'failed', 'cancelled'],
  succeeded: [],
  failed: [],
  cancelled: [],
  skipped: [],
});

/** The stages in order; `release` is Heroku's release phase, run just before the new release takes traffic. */
export type Stage = 'check' | 'test' | 'build' | 'release' | 'deploy';

export const STAGES: readonly Stage[] = ['check', 'test', 'build', 'release', 'deploy'];

export interface PipelineJob {
  /** 1-based position in the run. */
  index: number;
  stage: Stage;
  command: string;
  status: JobStatus;
  startedAt: number | null;
  endedAt: number | null;
  /** Why it ended, e.g. `exited with code 1`. */
  reason: string | null;
  /** Its whole output, secrets replaced by `[secret:NAME]` (left out of run lists). */
  output?: string;
}

export interface PipelineRun {
  app: string;
  /** Numbered per app: 1, 2, ... */
  number: number;
  /** `git` (a push) or `directory` (`berth pipeline run`). */
  source: 'git' | 'directory';
  /** The pushed commit, or `sha256:...` of the directory's content for a directory run. */
  revision: string;
  ref: string | null;
  status: RunStatus;
  /** Why it ended as it did (the failing job, who cancelled it, what superseded it). */
  reason: string | null;
  deployMode: 'auto' | 'manual';
  /** The release it made and the deployment that rolled it out, once deployed. */
  release: number | null;
  deployment: number | null;
  actor: string;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
  jobs: PipelineJob[];
}

/** True once a run can change no more (a `waiting` run still can: promote or cancel). */
export function isFinished(status: RunStatus): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'cancelled';
}

/** One line of `GET .../runs/:n/stream` (NDJSON). */
export type PipelineStreamEvent =
  | { type: 'job'; job: Omit<PipelineJob, 'output'> }
  | { type: 'output'; index: number; stage: Stage; command: string; text: string }
  | { type: 'run'; run: PipelineRun };
