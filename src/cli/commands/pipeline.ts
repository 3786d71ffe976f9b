// `berth pipeline run|runs|show|promote|cancel`, `berth git-remote` and `berth import heroku`.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { PipelineJob, PipelineRun, PipelineStreamEvent } from '../../domain/pipeline.js';
import type { ApiClient } from '../client.js';
import type { CliContext } from '../context.js';
import { formatTime, printJson, printTable, UsageError } from '../output.js';

export function registerPipeline(program: Command, context: CliContext): void {
  const pipeline = program
    .command('pipeline')
    .description('pipeline runs: check, test, build, release phase, deploy (auto or on promote)');

  pipeline
    .command('run')
    .description('run the pipeline on a directory (as a push would)')
    .argument('[dir]', 'the app directory', '.')
    .option('--no-follow', 'return once the run is queued')
    .action(async (dir: string, options: { follow: boolean }) => {
      const directory = resolve(dir);
      if (!existsSync(directory) || !statSync(directory).isDirectory())
        throw new UsageError(`${dir}: not a directory`);
      const client = context.client();
      const run = await client.request<PipelineRun>('POST', '/v1/pipeline/runs', { directory });
      process.stdout.write(`${run.app}: pipeline run ${run.number} queued (${short(run.revision)})\n`);
      if (options.follow) await followAndExit(client, run.app, run.number, (t) => process.stdout.write(t));
    });

  pipeline
    .command('runs')
    .description("list an app's pipeline runs")
    .argument('<app>', 'the app')
    .option('--json', 'print as JSON')
    .action(async (app: string, options: { json?: boolean }) => {
      const runs = await context.client().request<PipelineRun[]>('GET', `/v1/apps/${enc(app)}/pipeline/runs`);
      if (options.json) return printJson(runs);
      printTable(
        ['run', 'status', 'revision', 'created', 'took', 'release', 'reason'],
        runs.map((r) => [
          r.number,
          r.status,
          `${short(r.revision)}${r.ref ? ` ${r.ref.replace('refs/heads/', '')}` : ''}`,
          formatTime(r.createdAt),
          took(r.startedAt, r.endedAt),
          r.release === null ? '-' : `v${r.release}`,
          r.reason ?? '',
        ]),
      );
    });

  pipeline
    .command('show')
    .description("a run's jobs and their output; -f follows it live")
    .argument('<app>', 'the app')
    .argument('<run>', 'the run number')
    .option('-f, --follow', 'stream the output until the run ends')
    .option('--json', 'print as JSON')
    .action(async (app: string, number: string, options: { follow?: boolean; json?: boolean }) => {
      const n = runNumber(number);
      const client = context.client();
      if (options.follow) return followAndExit(client, app, n, (t) => process.stdout.write(t));
      const run = await client.request<PipelineRun>('GET', `/v1/apps/${enc(app)}/pipeline/runs/${n}`);
      if (options.json) return printJson(run);
      const out = (t: string): void => {
        process.stdout.write(t);
      };
      out(`${summary(run)}\n`);
      const renderer = new RunRenderer(out);
      for (const job of run.jobs) {
        if (job.status === 'pending' || job.status === 'skipped') {
          out(`       ${job.stage}: ${job.command} (${job.status})\n`);
          continue;
        }
        renderer.feed({ type: 'output', index: job.index, stage: job.stage, command: job.command, text: '' });
        renderer.feed({
          type: 'output',
          index: job.index,
          stage: job.stage,
          command: job.command,
          text: job.output ?? '',
        });
        renderer.feed({ type: 'job', job });
      }
    });

  pipeline
    .command('promote')
    .description('deploy a run that waits for promotion (the manual deploy action)')
    .argument('<app>', 'the app')
    .argument('<run>', 'the run number')
    .option('--no-follow', 'return once the deploy has started')
    .action(async (app: string, number: string, options: { follow: boolean }) => {
      const client = context.client();
      const n = runNumber(number);
      const promoted = await client.request<PipelineRun>(
        'POST',
        `/v1/apps/${enc(app)}/pipeline/runs/${n}/promote`,
        {},
      );
      process.stdout.write(`${app}: run ${n} promoted\n`);
      // Only what the promote runs: the jobs that passed before it were shown when they ran.
      const earlier = new Set(promoted.jobs.filter((j) => j.endedAt !== null).map((j) => j.index));
      if (options.follow) await followAndExit(client, app, n, (t) => process.stdout.write(t), earlier);
    });

  pipeline
    .command('cancel')
    .description('cancel a queued, running or waiting run (a running job is killed with its process group)')
    .argument('<app>', 'the app')
    .argument('<run>', 'the run number')
    .action(async (app: string, number: string) => {
      const n = runNumber(number);
      const run = await context
        .client()
        .request<PipelineRun>('POST', `/v1/apps/${enc(app)}/pipeline/runs/${n}/cancel`, {});
      process.stdout.write(
        `${app}: run ${n} ${run.status === 'cancelled' ? 'cancelled' : 'is being cancelled'}\n`,
      );
    });

  program
    .command('git-remote')
    .description(
      "print the app's git remote (created on first use); a push to its deploy branch runs the pipeline",
    )
    .argument('<app>', 'the app')
    .option('--branch <name>', 'the deploy branch (default main)')
    .action(async (app: string, options: { branch?: string }) => {
      const remote = await context
        .client()
        .request<{ path: string; branch: string }>(
          'POST',
          `/v1/apps/${enc(app)}/git`,
          options.branch === undefined ? {} : { branch: options.branch },
        );
      process.stdout.write(`${remote.path}\n`);
      process.stderr.write(
        `add it with:  git remote add berth ${remote.path}\ndeploy with:  git push berth ${remote.branch}\n`,
      );
    });

  program
    .command('import')
    .description('import from another platform')
    .command('heroku')
    .description(
      "turn a Heroku app's config (`heroku config --shell > config.env`) into config vars and secrets",
    )
    .argument('<app>', 'the Berth app')
    .requiredOption('--env-file <file>', 'KEY=value lines')
    .action(async (app: string, options: { envFile: string }) => {
      if (!existsSync(options.envFile)) throw new UsageError(`${options.envFile}: no such file`);
      // Loaded here: it brings the spec's parser (zod, yaml), which no other command of the CLI needs at start.
      const { parseEnvFile, splitHerokuConfig } = await import('../../domain/heroku.js');
      const values = parseEnvFile(readFileSync(options.envFile, 'utf8'), options.envFile);
      const { config, secrets } = splitHerokuConfig(values);
      const client = context.client();
      // Secrets first: a config var that names one is never set without it.
      if (Object.keys(secrets).length > 0)
        await client.request('POST', `/v1/apps/${enc(app)}/secrets`, { values: secrets });
      if (Object.keys(config).length > 0)
        await client.request('POST', `/v1/apps/${enc(app)}/config`, { values: config });
      const names = (o: Record<string, string>): string => Object.keys(o).sort().join(', ') || '(none)';
      process.stdout.write(
        `${app}: ${Object.keys(values).length} vars from ${options.envFile}\n` +
          `  secrets (encrypted; a Procfile-only app gets them all, a berth.yaml names them per service): ${names(secrets)}\n` +
          `  config vars: ${names(config)}\n`,
      );
    });
}

/** Streams a run to `write` (Heroku style) until it ends or waits; exit code 1 unless it succeeded or waits. */
export async function followRun(
  client: ApiClient,
  app: string,
  number: number,
  write: (text: string) => void,
  skip: ReadonlySet<number> = new Set(),
): Promise<PipelineRun> {
  const renderer = new RunRenderer(write, skip);
  for await (const line of client.stream(`/v1/apps/${enc(app)}/pipeline/runs/${number}/stream`)) {
    if (line.trim() === '') continue;
    const event = JSON.parse(line) as PipelineStreamEvent;
    renderer.feed(event);
  }
  const run = await client.request<PipelineRun>('GET', `/v1/apps/${enc(app)}/pipeline/runs/${number}`);
  write(`${resultLine(run)}\n`);
  return run;
}

async function followAndExit(
  client: ApiClient,
  app: string,
  number: number,
  write: (text: string) => void,
  skip: ReadonlySet<number> = new Set(),
): Promise<void> {
  const run = await followRun(client, app, number, write, skip);
  if (run.status !== 'succeeded' && run.status !== 'waiting') process.exitCode = 1;
}

/** Prints a run's jobs the way Heroku prints a build: a `----->` header per job, its output indented. */
export class RunRenderer {
  readonly #write: (text: string) => void;
  readonly #skip: ReadonlySet<number>;
  readonly #started = new Set<number>();
  readonly #ended = new Set<number>();
  #partial = '';

  /** Jobs whose index is in `skip` are not printed. */
  constructor(write: (text: string) => void, skip: ReadonlySet<number> = new Set()) {
    this.#write = write;
    this.#skip = skip;
  }

  feed(event: PipelineStreamEvent): void {
    if (event.type === 'run') return;
    if (this.#skip.has(event.type === 'job' ? event.job.index : event.index)) return;
    if (event.type === 'output') {
      this.#header(event.index, event.stage, event.command);
      this.#text(event.text);
      return;
    }
    const { job } = event;
    if (job.status === 'pending' || job.status === 'skipped') return;
    this.#header(job.index, job.stage, job.command);
    if (job.status === 'running' || this.#ended.has(job.index)) return;
    this.#ended.add(job.index);
    this.#flush();
    this.#write(`       ${mark(job)} ${job.reason ?? job.status} (${took(job.startedAt, job.endedAt)})\n`);
  }

  #header(index: number, stage: string, command: string): void {
    if (this.#started.has(index)) return;
    this.#flush();
    this.#started.add(index);
    this.#write(`-----> ${stage}: ${command}\n`);
  }

  #text(text: string): void {
    const lines = (this.#partial + text).split('\n');
    this.#partial = lines.pop() ?? '';
    for (const line of lines) this.#write(`       ${line}\n`);
  }

  #flush(): void {
    if (this.#partial !== '') this.#write(`       ${this.#partial}\n`);
    this.#partial = '';
  }
}

function mark(job: Pick<PipelineJob, 'status'>): string {
  return job.status === 'succeeded' ? 'ok:' : job.status === 'cancelled' ? 'cancelled:' : 'FAILED:';
}

function resultLine(run: PipelineRun): string {
  switch (run.status) {
    case 'succeeded':
      return `=====> run ${run.number} succeeded: ${run.reason ?? ''}`;
    case 'waiting':
      return `=====> run ${run.number} passed; deploy it with: berth pipeline promote ${run.app} ${run.number}`;
    case 'failed':
      return `=====> run ${run.number} FAILED: ${run.reason ?? ''}`;
    case 'cancelled':
      return `=====> run ${run.number} cancelled: ${run.reason ?? ''}`;
    default:
      return `=====> run ${run.number} is ${run.status}; follow it with: berth pipeline show ${run.app} ${run.number} -f`;
  }
}

function summary(run: PipelineRun): string {
  return [
    `${run.app} run ${run.number}: ${run.status}${run.reason ? ` (${run.reason})` : ''}`,
    `  revision ${run.revision}${run.ref ? ` ${run.ref}` : ''}, ${run.source}, by ${run.actor}, deploy ${run.deployMode}`,
    `  created ${formatTime(run.createdAt)}, took ${took(run.startedAt, run.endedAt)}${run.release === null ? '' : `, release v${run.release}`}`,
  ].join('\n');
}

function took(startedAt: number | null, endedAt: number | null): string {
  if (startedAt === null) return '-';
  return `${(((endedAt ?? Date.now()) - startedAt) / 1000).toFixed(1)}s`;
}

function short(revision: string): string {
  return revision.startsWith('sha256:') ? revision.slice(0, 19) : revision.slice(0, 7);
}

function runNumber(text: string): number {
  const n = Number(text.replace(/^#/, ''));
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${text}: expected a run number such as 3`);
  return n;
}

function enc(app: string): string {
  return encodeURIComponent(app);
}
