// The pipeline tables: runs and their jobs, whose statuses change only through their state machines.
import { z } from 'zod';
import { BerthError } from '../../domain/errors.js';
import {
  JOB_STATES,
  type JobStatus,
  type PipelineJob,
  type PipelineRun,
  RUN_STATES,
  type RunStatus,
  type Stage,
} from '../../domain/pipeline.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import { Notifier } from '../../lib/notifier.js';
import type { Database, Migration } from '../store/database.js';
import type { EventInput, EventStore } from '../store/event-store.js';

export interface NewRun {
  app: string;
  source: PipelineRun['source'];
  revision: string;
  ref: string | null;
  /** The source tree the run copies from (owned by the run: removed when it ends). */
  sourceDir: string;
  deployMode: PipelineRun['deployMode'];
  actor: string;
}

/** What a run records besides its status: the release and deployment it made, or why it is being cancelled. */
export type RunDetails = Partial<Pick<PipelineRun, 'reason' | 'release' | 'deployment'>>;

export const PIPELINE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'pipeline runs and jobs',
    sql: `
      CREATE TABLE pipeline_runs (
        app TEXT NOT NULL,
        number INTEGER NOT NULL,
        source TEXT NOT NULL,
        revision TEXT NOT NULL,
        ref TEXT,
        source_dir TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        deploy_mode TEXT NOT NULL,
        release INTEGER,
        deployment INTEGER,
        actor TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        ended_at INTEGER,
        PRIMARY KEY (app, number)
      );
      CREATE TABLE pipeline_jobs (
        app TEXT NOT NULL,
        run INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        stage TEXT NOT NULL,
        command TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        output TEXT NOT NULL DEFAULT '',
        started_at INTEGER,
        ended_at INTEGER,
        PRIMARY KEY (app, run, idx)
      );
    `,
  },
];

const stage = z.enum(['check', 'test', 'build', 'release', 'deploy']);

const runRow = z.object({
  app: z.string(),
  number: z.number().int(),
  source: z.enum(['git', 'directory']),
  revision: z.string(),
  ref: z.string().nullable(),
  source_dir: z.string(),
  status: z.enum(RUN_STATES.states as [RunStatus, ...RunStatus[]]),
  reason: z.string().nullable(),
  deploy_mode: z.enum(['auto', 'manual']),
  release: z.number().int().nullable(),
  deployment: z.number().int().nullable(),
  actor: z.string(),
  created_at: z.number(),
  started_at: z.number().nullable(),
  ended_at: z.number().nullable(),
});

const jobRow = z.object({
  idx: z.number().int(),
  stage,
  command: z.string(),
  status: z.enum(JOB_STATES.states as [JobStatus, ...JobStatus[]]),
  reason: z.string().nullable(),
  output: z.string().optional(),
  started_at: z.number().nullable(),
  ended_at: z.number().nullable(),
});

const number = z.object({ n: z.number().int().nullable() });

/**
 * The repository of pipeline runs and jobs. A run's status changes only through `transitionRun` (refusing what
 * `RUN_STATES` does not allow, with the run's event in the same transaction), a job's through `transitionJob`.
 */
export class PipelineStore {
  /** Notified after each committed change of a run, a job or a job's output: streams wait on it. */
  readonly changed = new Notifier();
  readonly #db: Database;
  readonly #events: EventStore;
  readonly #clock: Clock;
  readonly #s: ReturnType<typeof statements>;

  constructor(db: Database, events: EventStore, clock: Clock = systemClock) {
    db.migrate('pipeline', PIPELINE_MIGRATIONS);
    this.#db = db;
    this.#events = events;
    this.#clock = clock;
    this.#s = statements(db);
  }

  /** Creates run N+1 of the app, `queued`. */
  createRun(run: NewRun): number {
    return this.#write(() => {
      const number = (this.#s.lastRun.get(run.app)?.n ?? 0) + 1;
      this.#s.insertRun.run(
        run.app,
        number,
        run.source,
        run.revision,
        run.ref,
        run.sourceDir,
        run.deployMode,
        run.actor,
        this.#clock.now(),
      );
      return number;
    });
  }

  getRun(app: string, number: number, withOutput = false): PipelineRun | undefined {
    const row = this.#s.run.get(app, number);
    return row && this.#toRun(row, withOutput);
  }

  /** The app's runs, newest last, without job output. */
  listRuns(app: string, limit = 50): PipelineRun[] {
    return this.#s.runs
      .all(app, limit)
      .reverse()
      .map((row) => this.#toRun(row, false));
  }

  /** Runs in any of `statuses`, over all apps, oldest first. */
  runsIn(statuses: readonly RunStatus[]): PipelineRun[] {
    return this.#db
      .statement(
        `SELECT * FROM pipeline_runs WHERE status IN (${statuses.map(() => '?').join(',')}) ORDER BY created_at, number`,
        runRow,
      )
      .all(...statuses)
      .map((row) => this.#toRun(row, false));
  }

  /**
   * Moves a run to `to`: refused (nothing written) unless `RUN_STATES` allows it from the run's status. A run's
   * start time is set when it first runs, its end time when it ends; `reason` replaces the run's reason when given.
   */
  transitionRun(
    app: string,
    number: number,
    to: RunStatus,
    change: { reason?: string | null; event: (before: PipelineRun) => EventInput },
  ): PipelineRun {
    return this.#write(() => {
      const before = this.getRun(app, number);
      if (!before) throw new BerthError('not_found', `${app} has no pipeline run ${number}`);
      RUN_STATES.assert(`${app} ${number}`, before.status, to);
      const now = this.#clock.now();
      this.#s.transitionRun.run(
        to,
        change.reason === undefined ? before.reason : change.reason,
        before.startedAt ?? (to === 'running' ? now : null),
        RUN_STATES.isFinal(to) ? now : null,
        app,
        number,
      );
      this.#events.record(change.event(before));
      return this.getRun(app, number)!;
    });
  }

  /** Records what a run made or why it is being cancelled (not a change of status). */
  setRunDetails(app: string, number: number, details: RunDetails): void {
    const run = this.getRun(app, number);
    if (!run) throw new BerthError('not_found', `${app} has no pipeline run ${number}`);
    const next = { ...run, ...details };
    this.#write(() => this.#s.setRunDetails.run(next.reason, next.release, next.deployment, app, number));
  }

  /** Appends a `pending` job and returns its index. */
  addJob(app: string, run: number, stage: Stage, command: string): number {
    return this.#write(() => {
      const index = (this.#s.lastJob.get(app, run)?.n ?? 0) + 1;
      this.#s.insertJob.run(app, run, index, stage, command);
      return index;
    });
  }

  /** Moves a job to `to` (refused unless `JOB_STATES` allows it); start and end times follow the status. */
  transitionJob(app: string, run: number, index: number, to: JobStatus, reason: string | null = null): void {
    this.#write(() => {
      const before = this.getRun(app, run)?.jobs.find((job) => job.index === index);
      if (!before) throw new BerthError('not_found', `${app} run ${run} has no job ${index}`);
      JOB_STATES.assert(`${app} ${run}#${index}`, before.status, to);
      const now = this.#clock.now();
      this.#s.transitionJob.run(
        to,
        before.reason ?? reason,
        to === 'running' ? now : before.startedAt,
        JOB_STATES.isFinal(to) && before.startedAt !== null ? now : null,
        app,
        run,
        index,
      );
    });
  }

  /**
   * Ends every job not yet ended: a pending job is `skipped` (or `cancelled` with its run), a running one
   * `failed` (or `cancelled`). What a failure, a cancel or a restart leaves behind.
   */
  endOpenJobs(app: string, run: number, cancelled: boolean, reason: string): void {
    this.#write(() => {
      for (const job of this.getRun(app, run)?.jobs ?? []) {
        if (job.status === 'pending')
          this.transitionJob(app, run, job.index, cancelled ? 'cancelled' : 'skipped', reason);
        else if (job.status === 'running')
          this.transitionJob(app, run, job.index, cancelled ? 'cancelled' : 'failed', reason);
      }
    });
  }

  appendOutput(app: string, run: number, index: number, text: string): void {
    this.#write(() => this.#s.appendOutput.run(text, app, run, index));
  }

  /** The job's output from character `offset` on (for followers). */
  outputFrom(app: string, run: number, index: number, offset: number): string {
    return this.#s.outputFrom.get(offset + 1, app, run, index)?.rest ?? '';
  }

  /** Writes in one transaction and wakes followers once it has committed. */
  #write<T>(fn: () => T): T {
    return this.#db.transaction(() => {
      this.#db.afterCommit(() => this.changed.notify());
      return fn();
    });
  }

  #toRun(row: z.output<typeof runRow>, withOutput: boolean): PipelineRun {
    const jobs = (withOutput ? this.#s.jobsWithOutput : this.#s.jobs).all(row.app, row.number);
    return {
      app: row.app,
      number: row.number,
      source: row.source,
      revision: row.revision,
      ref: row.ref,
      status: row.status,
      reason: row.reason,
      deployMode: row.deploy_mode,
      release: row.release,
      deployment: row.deployment,
      actor: row.actor,
      createdAt: row.created_at,
      startedAt: row.started_at,
      endedAt: row.ended_at,
      jobs: jobs.map(
        (job): PipelineJob => ({
          index: job.idx,
          stage: job.stage,
          command: job.command,
          status: job.status,
          startedAt: job.started_at,
          endedAt: job.ended_at,
          reason: job.reason,
          ...(job.output === undefined ? {} : { output: job.output }),
        }),
      ),
    };
  }
}

function statements(db: Database) {
  return {
    lastRun: db.statement('SELECT MAX(number) AS n FROM pipeline_runs WHERE app = ?', number),
    insertRun: db.statement(
      `INSERT INTO pipeline_runs (app, number, source, revision, ref, source_dir, status, deploy_mode, actor, created_at)
       VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)`,
    ),
    run: db.statement('SELECT * FROM pipeline_runs WHERE app = ? AND number = ?', runRow),
    runs: db.statement('SELECT * FROM pipeline_runs WHERE app = ? ORDER BY number DESC LIMIT ?', runRow),
    transitionRun: db.statement(
      'UPDATE pipeline_runs SET status = ?, reason = ?, started_at = ?, ended_at = ? WHERE app = ? AND number = ?',
    ),
    setRunDetails: db.statement(
      'UPDATE pipeline_runs SET reason = ?, release = ?, deployment = ? WHERE app = ? AND number = ?',
    ),
    lastJob: db.statement('SELECT MAX(idx) AS n FROM pipeline_jobs WHERE app = ? AND run = ?', number),
    insertJob: db.statement(
      `INSERT INTO pipeline_jobs (app, run, idx, stage, command, status) VALUES (?, ?, ?, ?, ?, 'pending')`,
    ),
    transitionJob: db.statement(
      `UPDATE pipeline_jobs SET status = ?, reason = ?, started_at = ?, ended_at = ?
       WHERE app = ? AND run = ? AND idx = ?`,
    ),
    appendOutput: db.statement(
      'UPDATE pipeline_jobs SET output = output || ? WHERE app = ? AND run = ? AND idx = ?',
    ),
    outputFrom: db.statement(
      'SELECT substr(output, ?) AS rest FROM pipeline_jobs WHERE app = ? AND run = ? AND idx = ?',
      z.object({ rest: z.string().nullable() }),
    ),
    jobs: db.statement(
      `SELECT idx, stage, command, status, reason, started_at, ended_at
       FROM pipeline_jobs WHERE app = ? AND run = ? ORDER BY idx`,
      jobRow,
    ),
    jobsWithOutput: db.statement(
      `SELECT idx, stage, command, status, reason, started_at, ended_at, output
       FROM pipeline_jobs WHERE app = ? AND run = ? ORDER BY idx`,
      jobRow,
    ),
  };
}
