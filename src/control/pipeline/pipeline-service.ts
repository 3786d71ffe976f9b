// Pipeline runs: queue per app, check → test → build → (promote) → release phase → deploy, each job recorded.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ApplyResult } from '../../domain/api-types.js';
import { DEPLOYMENT_STATES } from '../../domain/deployment.js';
import { BerthError } from '../../domain/errors.js';
import { isFinished, type PipelineRun, type Stage } from '../../domain/pipeline.js';
import type { AppSpec } from '../../domain/spec.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import type { AppManager } from '../app-manager.js';
import { digestTree } from '../deploy/artifact-builder.js';
import type { Deployer, PreparedRelease } from '../deploy/deployer.js';
import type { KubeApps } from '../kube/kube-apps.js';
import type { Database } from '../store/database.js';
import type { EventStore } from '../store/event-store.js';
import type { Store } from '../store/store.js';
import { type JobOutcome, runJob } from './job-runner.js';
import { PipelineStore } from './pipeline-store.js';
import { type CommandReleasePhase, type PipelineSecrets, ReleasePhaseFailed } from './release-phase.js';
import { explicitStages, stageCommands } from './stages.js';

/** How long a run waits for another deployment of its app to end before it fails. */
const DEPLOY_LOCK_WAIT_MS = 10 * 60_000;
/** How long `stop` waits for aborted runs to record how they ended. */
const STOP_WAIT_MS = 5_000;
/** Output kept per job; past it, one marker line says how much was dropped (a runaway test must not fill the disk). */
export const MAX_JOB_OUTPUT_CHARS = 4 * 1024 * 1024;
/** Never copied into a run's workspace. */
const NOT_COPIED = new Set(['.git', '.berth']);

export interface PipelineServiceOptions {
  /** The database the pipeline tables live in (the pipeline's repository owns them). */
  db: Database;
  store: Store;
  apps: AppManager;
  deployer: Deployer;
  /** Deploys to Kubernetes targets (`pipeline.target`, else the app's `target`); without it those runs fail. */
  kube?: Pick<KubeApps, 'deploy' | 'checkRegistry'>;
  releasePhase: CommandReleasePhase;
  secrets: PipelineSecrets;
  events: EventStore;
  clock?: Clock;
  scrub(text: string): string;
  /** PATH, HOME, ... for check and test commands. */
  baseEnv: Record<string, string>;
  /** Workspaces of runs: `<dir>/<app>/<run>/`. */
  workDir: string;
}

export interface StartRun {
  /** Absolute path of the source tree; copied at once, so the caller may remove it when this returns. */
  directory: string;
  /** The app, when the source has no berth.yaml (a Procfile-only app pushed to `<app>.git`). */
  app?: string;
  source: PipelineRun['source'];
  /** The commit of a push; a directory run gets the digest of its content. */
  revision?: string;
  ref?: string;
  actor: string;
}

/** A manual run's build, kept on disk until it is promoted (or cancelled). */
interface SavedBuild {
  prepared: PreparedRelease;
}

/** How a job (or the run's build, release or deploy step) ended; `reason` is for people. */
interface JobEnd {
  status: 'succeeded' | 'failed' | 'cancelled';
  reason: string;
}

export class PipelineService {
  readonly #o: PipelineServiceOptions;
  readonly #clock: Clock;
  readonly #runs: PipelineStore;
  /** The run executing for each app (one at a time per app), and how to cancel it. */
  readonly #active = new Map<string, { number: number; abort: AbortController; stage: Stage | null }>();
  readonly #promoting = new Map<string, AbortController>();
  /** Every run body in flight (executing or deploying after a promote). */
  readonly #running = new Set<Promise<void>>();
  #stopped = false;

  constructor(options: PipelineServiceOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#runs = new PipelineStore(options.db, options.events, this.#clock);
    mkdirSync(options.workDir, { recursive: true });
    // Jobs of a control plane that stopped died with it (their groups were its children's): say so.
    for (const run of this.#runs.runsIn(['queued', 'running'])) {
      this.#runs.endOpenJobs(run.app, run.number, true, 'the control plane stopped');
      this.#end(run, 'failed', 'the control plane stopped during the run; push again', 'system');
    }
  }

  get runs(): PipelineStore {
    return this.#runs;
  }

  /**
   * Queues a run of `directory`. A bad spec is refused here, whole, and makes no run. A queued (not yet started)
   * run of the same app is superseded: only the newest push is worth testing.
   */
  async start(input: StartRun): Promise<PipelineRun> {
    const { spec } = this.#o.deployer.readSource(
      input.directory,
      input.app === undefined ? {} : { app: input.app },
    );
    if (input.app !== undefined && spec.app !== input.app) {
      throw new BerthError(
        'invalid_spec',
        `berth.yaml names app ${spec.app}, but this is the repository of ${input.app}`,
      );
    }
    const app = spec.app;
    const revision = input.revision ?? `sha256:${await digestTree(input.directory)}`;
    const number = this.#runs.createRun({
      app,
      source: input.source,
      revision,
      ref: input.ref ?? null,
      sourceDir: '',
      deployMode: spec.pipeline.deploy,
      actor: input.actor,
    });
    const root = this.#runDir(app, number);
    rmSync(root, { recursive: true, force: true });
    copySource(input.directory, join(root, 'source'));
    for (const older of this.#runs.runsIn(['queued'])) {
      if (older.app !== app || older.number === number) continue;
      this.#finish(older, 'cancelled', `superseded by run ${number}`, input.actor);
    }
    this.#o.events.record({
      actor: input.actor,
      kind: 'pipeline.queued',
      app,
      message: `${app} pipeline run ${number} queued for ${shortRevision(revision)}${input.ref ? ` (${input.ref})` : ''}`,
      data: { run: number, revision, ref: input.ref ?? null },
    });
    this.#pump(app);
    return this.get(app, number);
  }

  get(app: string, number: number, withOutput = false): PipelineRun {
    const run = this.#runs.getRun(app, number, withOutput);
    if (!run) throw new BerthError('not_found', `${app} has no pipeline run ${number}`);
    return run;
  }

  list(app: string): PipelineRun[] {
    return this.#runs.listRuns(app);
  }

  /** Cancels a queued, running or waiting run; a running job's process group is killed. */
  cancel(app: string, number: number, actor: string): PipelineRun {
    const run = this.get(app, number);
    if (isFinished(run.status)) {
      throw new BerthError('conflict', `${app} run ${number} has already ended (${run.status})`);
    }
    const active = this.#active.get(app);
    const promoting = this.#promoting.get(`${app}/${number}`);
    if ((active?.number === number && active.stage === 'deploy') || run.deployment !== null) {
      throw new BerthError(
        'conflict',
        `${app} run ${number} is deploying; a deployment is not cancelled halfway (it rolls back by itself if unhealthy; \`berth rollback ${app}\` after it)`,
      );
    }
    if (active?.number === number) {
      this.#runs.setRunDetails(app, number, { reason: `cancelled by ${actor}` });
      active.abort.abort();
    } else if (promoting) {
      this.#runs.setRunDetails(app, number, { reason: `cancelled by ${actor}` });
      promoting.abort();
    } else {
      this.#finish(run, 'cancelled', `cancelled by ${actor}`, actor);
    }
    return this.get(app, number);
  }

  /** The manual deploy action: a run waiting for promotion runs its release phase and deploys. */
  promote(app: string, number: number, actor: string): PipelineRun {
    const run = this.get(app, number);
    if (run.status !== 'waiting') {
      throw new BerthError(
        'conflict',
        `${app} run ${number} is ${run.status}; only a run waiting for promotion can be promoted`,
      );
    }
    const saved = this.#loadBuild(app, number);
    this.#runs.transitionRun(app, number, 'running', {
      reason: null,
      event: () => ({
        actor,
        kind: 'pipeline.promoted',
        app,
        message: `${app} pipeline run ${number} promoted by ${actor}`,
        data: { run: number },
      }),
    });
    const abort = new AbortController();
    const key = `${app}/${number}`;
    this.#promoting.set(key, abort);
    this.#track(
      this.#deploy(this.get(app, number), saved.prepared, abort.signal, actor)
        .catch((error: unknown) => this.#fail(app, number, error, actor))
        .finally(() => this.#promoting.delete(key)),
    );
    return this.get(app, number);
  }

  /**
   * Cancels what runs (killing job groups), starts nothing more, and resolves once the runs have recorded how they
   * ended, so the store can be closed after it.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const active of this.#active.values()) active.abort.abort();
    for (const abort of this.#promoting.values()) abort.abort();
    // A build is not interruptible; do not hold a shutdown for it (the restart marks such a run failed).
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.#running]),
      new Promise((resolve) => {
        timer = setTimeout(resolve, STOP_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
  }

  #pump(app: string): void {
    if (this.#stopped || this.#active.has(app)) return;
    const next = this.#runs.runsIn(['queued']).find((run) => run.app === app);
    if (!next) return;
    const abort = new AbortController();
    this.#active.set(app, { number: next.number, abort, stage: null });
    this.#track(
      this.#execute(next, abort.signal)
        .catch((error: unknown) => this.#fail(app, next.number, error, 'pipeline'))
        .finally(() => {
          this.#active.delete(app);
          rmSync(join(this.#runDir(app, next.number), 'work'), { recursive: true, force: true });
          rmSync(join(this.#runDir(app, next.number), 'source'), { recursive: true, force: true });
          this.#pump(app);
        }),
    );
  }

  #track(body: Promise<void>): void {
    const tracked = body.finally(() => this.#running.delete(tracked));
    this.#running.add(tracked);
  }

  async #execute(queued: PipelineRun, signal: AbortSignal): Promise<void> {
    const { app, number } = queued;
    const root = this.#runDir(app, number);
    const source = join(root, 'source');
    const work = join(root, 'work');
    this.#runs.transitionRun(app, number, 'running', {
      event: () => ({
        actor: queued.actor,
        kind: 'pipeline.started',
        app,
        message: `${app} pipeline run ${number} started`,
        data: { run: number },
      }),
    });
    // Check and test get a copy of their own, so what they write never reaches the build.
    copySource(source, work);
    const { spec, releaseCommands } = this.#o.deployer.readSource(work, { app });
    const specText = existsSync(join(work, 'berth.yaml'))
      ? readFileSync(join(work, 'berth.yaml'), 'utf8')
      : undefined;
    const stages = stageCommands(spec.pipeline, explicitStages(specText), packageScripts(work));
    const setup =
      existsSync(join(work, 'package-lock.json')) &&
      !existsSync(join(work, 'node_modules')) &&
      stages.check.length + stages.test.length > 0
        ? ['npm ci']
        : [];
    const jobs: [Stage, string][] = [
      ...[...setup, ...stages.check].map((c): [Stage, string] => ['check', c]),
      ...stages.test.map((c): [Stage, string] => ['test', c]),
      ['build', 'build the release artifact'],
      ...releaseCommands.map((c): [Stage, string] => ['release', c]),
      ['deploy', spec.pipeline.deploy === 'manual' ? 'deploy (on promote)' : 'deploy'],
    ];
    const indexes = jobs.map(([stage, command]) => this.#runs.addJob(app, number, stage, command));
    const env = this.#jobEnv(spec, number);
    for (const [i, [stage, command]] of jobs.entries()) {
      if (stage !== 'check' && stage !== 'test') break;
      this.#setStage(app, stage);
      const index = indexes[i]!;
      const result = await this.#timed(app, number, index, async (): Promise<JobEnd> => {
        const ran = await runJob({
          command,
          cwd: work,
          env,
          timeoutMs: spec.pipeline.timeoutMs,
          signal,
          scrub: this.#o.scrub,
          onOutput: this.#appender(app, number, index),
        });
        return { status: jobStatusOf(ran.outcome, ran.code), reason: ran.reason };
      });
      if (result.status !== 'succeeded') {
        return this.#stopRun(app, number, signal, `${stage} failed: \`${command}\` ${result.reason}`);
      }
    }
    if (signal.aborted) return this.#stopRun(app, number, signal, 'cancelled');
    this.#setStage(app, 'build');
    await this.#waitForDeployLock(app, signal);
    if (signal.aborted) return this.#stopRun(app, number, signal, 'cancelled');
    const buildIndex = indexes[jobs.findIndex(([stage]) => stage === 'build')]!;
    let prepared: PreparedRelease | undefined;
    const built = await this.#timed(app, number, buildIndex, async (): Promise<JobEnd> => {
      try {
        // Build output streams into the job as it comes (an image build can take minutes).
        const append = this.#appender(app, number, buildIndex);
        const target = spec.pipeline.target ?? spec.target;
        // Before the build: an image the target's nodes cannot pull is not worth building and pushing.
        if (target !== undefined) await this.#o.kube?.checkRegistry(spec, target);
        prepared = await this.#o.deployer.build(source, {
          app,
          onOutput: (text) => append(this.#o.scrub(text)),
          toCluster: target !== undefined,
        });
        const nothing = prepared.artifact.commands.length
          ? ''
          : '(nothing to build: no build command, no package-lock.json or build script)\n';
        append(this.#o.scrub(`${nothing}artifact ${prepared.artifact.digest}\n`));
        return { status: 'succeeded', reason: `built ${prepared.artifact.digest.slice(0, 19)}` };
      } catch (error) {
        this.#runs.appendOutput(app, number, buildIndex, this.#o.scrub(`${describeError(error)}\n`));
        return { status: 'failed', reason: (error as Error).message };
      }
    });
    if (built.status !== 'succeeded' || prepared === undefined) {
      return this.#stopRun(app, number, signal, `build failed: ${built.reason}`);
    }
    if (signal.aborted) return this.#stopRun(app, number, signal, 'cancelled');
    if (spec.pipeline.deploy === 'manual') {
      this.#saveBuild(app, number, { prepared });
      this.#runs.transitionRun(app, number, 'waiting', {
        reason: `waiting for \`berth pipeline promote ${app} ${number}\``,
        event: () => ({
          actor: 'pipeline',
          kind: 'pipeline.waiting',
          app,
          message: `${app} pipeline run ${number} passed and waits for promotion`,
          data: { run: number },
        }),
      });
      return;
    }
    await this.#deploy(this.get(app, number), prepared, signal, queued.actor);
  }

  /** Release phase, then the health-gated deployment, followed until it ends. */
  async #deploy(
    run: PipelineRun,
    prepared: PreparedRelease,
    signal: AbortSignal,
    actor: string,
  ): Promise<void> {
    const { app, number } = run;
    for (const job of run.jobs.filter((j) => j.stage === 'release')) {
      if (signal.aborted) return this.#stopRun(app, number, signal, 'cancelled');
      this.#setStage(app, 'release');
      const result = await this.#timed(app, number, job.index, async (): Promise<JobEnd> => {
        try {
          await this.#o.releasePhase.run(
            prepared.spec,
            prepared.artifact.dir,
            [job.command],
            this.#appender(app, number, job.index),
            signal,
          );
          return { status: 'succeeded', reason: 'exited with code 0' };
        } catch (error) {
          if (!(error instanceof ReleasePhaseFailed)) throw error;
          return {
            status: jobStatusOf(error.result.outcome, error.result.code),
            reason: error.result.reason,
          };
        }
      });
      if (result.status !== 'succeeded') {
        return this.#stopRun(
          app,
          number,
          signal,
          `release phase failed: \`${job.command}\` ${result.reason}; nothing was deployed`,
        );
      }
    }
    if (signal.aborted) return this.#stopRun(app, number, signal, 'cancelled');
    const deployJob = run.jobs.find((j) => j.stage === 'deploy');
    if (!deployJob) throw new BerthError('internal', `${app} run ${number} has no deploy job`);
    this.#setStage(app, 'deploy');
    await this.#waitForDeployLock(app, signal);
    const outcome = await this.#timed(app, number, deployJob.index, async (): Promise<JobEnd> => {
      const say = (text: string): void => this.#runs.appendOutput(app, number, deployJob.index, text);
      const target = prepared.spec.pipeline.target ?? prepared.spec.target;
      let result: ApplyResult;
      if (target === undefined)
        result = (await this.#o.deployer.release({ ...prepared, releaseCommands: [] }, actor)).result;
      else if (this.#o.kube === undefined)
        throw new BerthError('internal', 'this control plane deploys to no Kubernetes target');
      else result = this.#o.kube.deploy(prepared.spec, prepared.artifact.dir, target, actor);
      this.#runs.setRunDetails(app, number, { release: result.release, deployment: result.deployment });
      if (!result.created) {
        say(`no changes: v${result.release} is current\n`);
        return { status: 'succeeded', reason: `no changes (v${result.release})` };
      }
      say(`release v${result.release}\n${result.changes.map((c) => `  ${c}\n`).join('')}`);
      if (result.deployment === null) {
        const reason = `v${result.release} is current (no process replaced)`;
        say(`${reason}\n`);
        return { status: 'succeeded', reason };
      }
      const id = result.deployment;
      // Woken by every change of a deployment; the deployment goes on without us when the run is stopped (the
      // reconciler finishes it, also after a restart).
      const ended = await this.#o.store.deploymentsChanged.until(
        () => {
          const deployment = this.#o.store.getDeployment(id);
          return deployment && DEPLOYMENT_STATES.isFinal(deployment.state) ? deployment : undefined;
        },
        { signal, clock: this.#clock },
      );
      const end: JobEnd =
        ended === undefined
          ? {
              status: 'failed',
              reason: `stopped following deployment ${id}; \`berth releases ${app}\` shows how it ended`,
            }
          : ended.state === 'succeeded'
            ? { status: 'succeeded', reason: `v${result.release} is live` }
            : {
                status: 'failed',
                reason: `deployment ${ended.state.replace('_', ' ')}: ${ended.reason ?? ''}`,
              };
      say(`${this.#o.scrub(end.reason)}\n`);
      return end;
    });
    this.#finish(
      this.get(app, number),
      outcome.status === 'succeeded' ? 'succeeded' : 'failed',
      outcome.reason,
      'pipeline',
    );
    rmSync(join(this.#runDir(app, number), 'build.json'), { force: true });
  }

  /** Runs a job body, recording its status and times; a body that throws ends its job failed. */
  async #timed(app: string, run: number, index: number, body: () => Promise<JobEnd>): Promise<JobEnd> {
    this.#runs.transitionJob(app, run, index, 'running');
    let end: JobEnd;
    try {
      end = await body();
    } catch (error) {
      this.#runs.transitionJob(app, run, index, 'failed', describeError(error));
      throw error;
    }
    this.#runs.transitionJob(app, run, index, end.status, end.reason);
    return end;
  }

  /** Appends to a job's stored output, up to `MAX_JOB_OUTPUT_CHARS`, then counts what it drops. */
  #appender(app: string, run: number, index: number): (text: string) => void {
    let kept = 0;
    let dropped = 0;
    return (text) => {
      // Once something was dropped, keep nothing after it: the kept output must be a prefix.
      if (dropped === 0 && kept + text.length <= MAX_JOB_OUTPUT_CHARS) {
        kept += text.length;
        this.#runs.appendOutput(app, run, index, text);
        return;
      }
      if (dropped === 0) {
        this.#runs.appendOutput(app, run, index, '\n[berth: output beyond 4 MiB is not kept]\n');
      }
      dropped += text.length;
    };
  }

  #setStage(app: string, stage: Stage): void {
    const active = this.#active.get(app);
    if (active) active.stage = stage;
  }

  /** Ends the run after a failed job or a cancel; nothing after it runs. */
  #stopRun(app: string, number: number, signal: AbortSignal, reason: string): void {
    const run = this.get(app, number);
    if (signal.aborted) this.#finish(run, 'cancelled', run.reason ?? 'cancelled', 'pipeline');
    else this.#finish(run, 'failed', reason, 'pipeline');
  }

  #fail(app: string, number: number, error: unknown, actor: string): void {
    const run = this.#runs.getRun(app, number);
    if (!run || isFinished(run.status)) return;
    this.#finish(run, 'failed', describeError(error), actor);
  }

  #finish(
    run: PipelineRun,
    status: 'succeeded' | 'failed' | 'cancelled',
    reason: string,
    actor: string,
  ): void {
    const { app, number } = run;
    this.#runs.endOpenJobs(app, number, status === 'cancelled', reason);
    this.#end(run, status, reason, actor);
    if (status !== 'succeeded') rmSync(join(this.#runDir(app, number), 'build.json'), { force: true });
  }

  /** The run's last transition, with its `pipeline.<status>` event. */
  #end(run: PipelineRun, status: 'succeeded' | 'failed' | 'cancelled', reason: string, actor: string): void {
    const { app, number } = run;
    this.#runs.transitionRun(app, number, status, {
      reason,
      event: () => ({
        actor,
        kind: `pipeline.${status}`,
        app,
        message: `${app} pipeline run ${number} ${status}: ${this.#o.scrub(reason)}`,
        data: { run: number, revision: run.revision },
      }),
    });
  }

  /** Waits (woken by deployment changes) until no deployment of the app is in progress; returns if aborted. */
  async #waitForDeployLock(app: string, signal: AbortSignal): Promise<void> {
    const free = await this.#o.store.deploymentsChanged.until(
      () => (this.#o.store.activeDeployment(app) === undefined ? true : undefined),
      { signal, timeoutMs: DEPLOY_LOCK_WAIT_MS, clock: this.#clock },
    );
    if (free === undefined && !signal.aborted) this.#o.apps.assertNotDeploying(app);
  }

  #jobEnv(spec: AppSpec, run: number): Record<string, string> {
    return {
      ...this.#o.baseEnv,
      ...this.#o.secrets.configVars(spec.app),
      ...this.#o.secrets.resolve(spec.app, spec.pipeline.secrets),
      CI: 'true',
      BERTH_APP: spec.app,
      BERTH_PIPELINE_RUN: String(run),
    };
  }

  #saveBuild(app: string, number: number, build: SavedBuild): void {
    writeFileSync(join(this.#runDir(app, number), 'build.json'), JSON.stringify(build));
  }

  #loadBuild(app: string, number: number): SavedBuild {
    const path = join(this.#runDir(app, number), 'build.json');
    if (!existsSync(path)) throw new BerthError('not_found', `${app} run ${number} has no build to promote`);
    const saved = JSON.parse(readFileSync(path, 'utf8')) as SavedBuild;
    if (!existsSync(saved.prepared.artifact.dir)) {
      throw new BerthError('conflict', `the artifact of ${app} run ${number} was pruned; push again`);
    }
    return saved;
  }

  #runDir(app: string, number: number): string {
    return join(this.#o.workDir, app, String(number));
  }
}

function copySource(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  cpSync(from, to, {
    recursive: true,
    verbatimSymlinks: true,
    filter: (path) => !NOT_COPIED.has(path.slice(from.length + 1).split('/')[0] ?? ''),
  });
}

function packageScripts(dir: string): Record<string, string> | undefined {
  const path = join(dir, 'package.json');
  if (!existsSync(path)) return undefined;
  try {
    return (JSON.parse(readFileSync(path, 'utf8')) as { scripts?: Record<string, string> }).scripts;
  } catch {
    return undefined;
  }
}

function describeError(error: unknown): string {
  if (error instanceof BerthError) {
    const details = error.issues.map((i) => i.message).filter((m) => m !== '');
    return [error.message, ...details].join('\n');
  }
  return error instanceof Error ? error.message : String(error);
}

function shortRevision(revision: string): string {
  return revision.startsWith('sha256:') ? revision.slice(0, 19) : revision.slice(0, 7);
}

/** A job's status from how its command ended. */
function jobStatusOf(outcome: JobOutcome, code: number): JobEnd['status'] {
  if (outcome === 'cancelled') return 'cancelled';
  return outcome === 'exited' && code === 0 ? 'succeeded' : 'failed';
}
