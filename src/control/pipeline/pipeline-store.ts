// Pipeline runs and jobs in SQLite (tables of migration 5), through the store's database handle.
import type Database from 'better-sqlite3';
import type { JobStatus, PipelineJob, PipelineRun, RunStatus, Stage } from '../../domain/pipeline.js';
import type { Store } from '../store/store.js';

interface RunRow {
  app: string;
  number: number;
  source: string;
  revision: string;
  ref: string | null;
  source_dir: string;
  status: string;
  reason: string | null;
  deploy_mode: string;
  release: number | null;
  deployment: number | null;
  actor: string;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
}

interface JobRow {
  idx: number;
  stage: string;
  command: string;
  status: string;
  reason: string | null;
  output?: string;
  started_at: number | null;
  ended_at: number | null;
}

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

export type RunPatch = Partial<
  Pick<PipelineRun, 'status' | 'reason' | 'release' | 'deployment' | 'startedAt' | 'endedAt' | 'deployMode'>
>;
export type JobPatch = Partial<Pick<PipelineJob, 'status' | 'reason' | 'startedAt' | 'endedAt'>>;

const RUN_COLUMNS: Record<keyof RunPatch, string> = {
  status: 'status',
  reason: 'reason',
  release: 'release',
  deployment: 'deployment',
  startedAt: 'started_at',
  endedAt: 'ended_at',
  deployMode: 'deploy_mode',
};
const JOB_COLUMNS: Record<keyof JobPatch, string> = {
  status: 'status',
  reason: 'reason',
  startedAt: 'started_at',
  endedAt: 'ended_at',
};

export class PipelineStore {
  readonly #db: Database.Database;
  readonly #now: () => number;

  constructor(store: Store, now: () => number = Date.now) {
    this.#db = store.db;
    this.#now = now;
  }

  /** Creates run N+1 of the app, `queued`. */
  createRun(run: NewRun): number {
    return this.#db.transaction(() => {
      const last = this.#db
        .prepare('SELECT MAX(number) AS n FROM pipeline_runs WHERE app = ?')
        .get(run.app) as { n: number | null };
      const number = (last.n ?? 0) + 1;
      this.#db
        .prepare(
          `INSERT INTO pipeline_runs (app, number, source, revision, ref, source_dir, status, deploy_mode, actor, created_at)
           VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)`,
        )
        .run(
          run.app,
          number,
          run.source,
          run.revision,
          run.ref,
          run.sourceDir,
          run.deployMode,
          run.actor,
          this.#now(),
        );
      return number;
    })();
  }

  getRun(app: string, number: number, withOutput = false): PipelineRun | undefined {
    const row = this.#db
      .prepare('SELECT * FROM pipeline_runs WHERE app = ? AND number = ?')
      .get(app, number) as RunRow | undefined;
    return row && this.#toRun(row, withOutput);
  }

  sourceDirOf(app: string, number: number): string | undefined {
    const row = this.#db
      .prepare('SELECT source_dir FROM pipeline_runs WHERE app = ? AND number = ?')
      .get(app, number) as { source_dir: string } | undefined;
    return row?.source_dir;
  }

  /** The app's runs, newest last, without job output. */
  listRuns(app: string, limit = 50): PipelineRun[] {
    const rows = this.#db
      .prepare('SELECT * FROM pipeline_runs WHERE app = ? ORDER BY number DESC LIMIT ?')
      .all(app, limit) as RunRow[];
    return rows.reverse().map((row) => this.#toRun(row, false));
  }

  /** Runs in any of `statuses`, over all apps, oldest first. */
  runsIn(statuses: readonly RunStatus[]): PipelineRun[] {
    const rows = this.#db
      .prepare(
        `SELECT * FROM pipeline_runs WHERE status IN (${statuses.map(() => '?').join(',')}) ORDER BY created_at, number`,
      )
      .all(...statuses) as RunRow[];
    return rows.map((row) => this.#toRun(row, false));
  }

  updateRun(app: string, number: number, patch: RunPatch): void {
    const keys = Object.keys(patch) as (keyof RunPatch)[];
    if (keys.length === 0) return;
    this.#db
      .prepare(
        `UPDATE pipeline_runs SET ${keys.map((k) => `${RUN_COLUMNS[k]} = ?`).join(', ')} WHERE app = ? AND number = ?`,
      )
      .run(...keys.map((k) => patch[k] ?? null), app, number);
  }

  /** Appends a `pending` job and returns its index. */
  addJob(app: string, run: number, stage: Stage, command: string): number {
    const last = this.#db
      .prepare('SELECT MAX(idx) AS n FROM pipeline_jobs WHERE app = ? AND run = ?')
      .get(app, run) as { n: number | null };
    const index = (last.n ?? 0) + 1;
    this.#db
      .prepare(
        `INSERT INTO pipeline_jobs (app, run, idx, stage, command, status) VALUES (?, ?, ?, ?, ?, 'pending')`,
      )
      .run(app, run, index, stage, command);
    return index;
  }

  updateJob(app: string, run: number, index: number, patch: JobPatch): void {
    const keys = Object.keys(patch) as (keyof JobPatch)[];
    if (keys.length === 0) return;
    this.#db
      .prepare(
        `UPDATE pipeline_jobs SET ${keys.map((k) => `${JOB_COLUMNS[k]} = ?`).join(', ')} WHERE app = ? AND run = ? AND idx = ?`,
      )
      .run(...keys.map((k) => patch[k] ?? null), app, run, index);
  }

  /** Marks every job not yet ended as `status` (what a failure, cancel or restart leaves behind). */
  endOpenJobs(app: string, run: number, status: JobStatus, reason: string): void {
    this.#db
      .prepare(
        `UPDATE pipeline_jobs SET status = ?, reason = COALESCE(reason, ?), ended_at = CASE WHEN started_at IS NULL THEN NULL ELSE ? END
         WHERE app = ? AND run = ? AND status IN ('pending', 'running')`,
      )
      .run(status, reason, this.#now(), app, run);
  }

  appendOutput(app: string, run: number, index: number, text: string): void {
    this.#db
      .prepare('UPDATE pipeline_jobs SET output = output || ? WHERE app = ? AND run = ? AND idx = ?')
      .run(text, app, run, index);
  }

  /** The job's output from character `offset` on (for followers). */
  outputFrom(app: string, run: number, index: number, offset: number): string {
    const row = this.#db
      .prepare('SELECT substr(output, ?) AS rest FROM pipeline_jobs WHERE app = ? AND run = ? AND idx = ?')
      .get(offset + 1, app, run, index) as { rest: string | null } | undefined;
    return row?.rest ?? '';
  }

  #toRun(row: RunRow, withOutput: boolean): PipelineRun {
    const jobs = this.#db
      .prepare(
        `SELECT idx, stage, command, status, reason, started_at, ended_at${withOutput ? ', output' : ''}
         FROM pipeline_jobs WHERE app = ? AND run = ? ORDER BY idx`,
      )
      .all(row.app, row.number) as JobRow[];
    return {
      app: row.app,
      number: row.number,
      source: row.source as PipelineRun['source'],
      revision: row.revision,
      ref: row.ref,
      status: row.status as RunStatus,
      reason: row.reason,
      deployMode: row.deploy_mode as PipelineRun['deployMode'],
      release: row.release,
      deployment: row.deployment,
      actor: row.actor,
      createdAt: row.created_at,
      startedAt: row.started_at,
      endedAt: row.ended_at,
      jobs: jobs.map((job) => ({
        index: job.idx,
        stage: job.stage as Stage,
        command: job.command,
        status: job.status as JobStatus,
        startedAt: job.started_at,
        endedAt: job.ended_at,
        reason: job.reason,
        ...(job.output === undefined ? {} : { output: job.output }),
      })),
    };
  }
}
