// API routes of pipelines: start a run (from a directory or a git push), list, show, follow, promote, cancel; git remotes.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import {
  isFinished,
  type JobStatus,
  type PipelineRun,
  type PipelineStreamEvent,
} from '../../domain/pipeline.js';
import type { GitRepos } from '../pipeline/git-repos.js';
import type { PipelineService } from '../pipeline/pipeline-service.js';
import { parseInput } from './parse-input.js';

export interface PipelineRoutesOptions {
  pipelines: PipelineService;
  git: GitRepos;
  actor: string;
}

const runBody = z.strictObject({
  directory: z.string().startsWith('/', 'must be an absolute path'),
  app: z.string().min(1).optional(),
  revision: z.string().min(1).max(100).optional(),
  ref: z.string().min(1).max(200).optional(),
  source: z.enum(['git', 'directory']).optional(),
});

const runParams = z.object({
  app: z.string().min(1),
  number: z.coerce.number().int().min(1),
});

const gitBody = z.strictObject({ branch: z.string().min(1).max(200).optional() });

export function registerPipelineRoutes(api: FastifyInstance, options: PipelineRoutesOptions): void {
  const { pipelines, git, actor } = options;

  api.post('/v1/pipeline/runs', async (request) => {
    const body = parseInput(runBody, request.body, 'body');
    return pipelines.start({
      directory: body.directory,
      source: body.source ?? 'directory',
      actor: body.source === 'git' ? 'git push' : actor,
      ...(body.app === undefined ? {} : { app: body.app }),
      ...(body.revision === undefined ? {} : { revision: body.revision }),
      ...(body.ref === undefined ? {} : { ref: body.ref }),
    });
  });

  api.get<{ Params: { app: string } }>('/v1/apps/:app/pipeline/runs', async (request) =>
    pipelines.list(request.params.app),
  );

  api.get('/v1/apps/:app/pipeline/runs/:number', async (request) => {
    const { app, number } = parseInput(runParams, request.params, 'path');
    return pipelines.get(app, number, true);
  });

  api.post('/v1/apps/:app/pipeline/runs/:number/promote', async (request) => {
    const { app, number } = parseInput(runParams, request.params, 'path');
    return pipelines.promote(app, number, actor);
  });

  api.post('/v1/apps/:app/pipeline/runs/:number/cancel', async (request) => {
    const { app, number } = parseInput(runParams, request.params, 'path');
    return pipelines.cancel(app, number, actor);
  });

  api.post<{ Params: { app: string } }>('/v1/apps/:app/git', async (request) => {
    const body = parseInput(gitBody, request.body, 'body');
    return git.ensure(request.params.app, body.branch);
  });

  // NDJSON: the run, then each job's output as it is written and each job's status change, until the run ends
  // (or waits for promotion). A follower that joins late gets everything from the start.
  api.get('/v1/apps/:app/pipeline/runs/:number/stream', async (request, reply) => {
    const { app, number } = parseInput(runParams, request.params, 'path');
    let run: PipelineRun = pipelines.get(app, number);
    reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    const stop = new AbortController();
    request.raw.on('close', () => stop.abort());
    const send = (event: PipelineStreamEvent): void => {
      reply.raw.write(`${JSON.stringify(event)}\n`);
    };
    send({ type: 'run', run });
    const sentStatus = new Map<number, JobStatus>();
    const sentChars = new Map<number, number>();
    let lastRunStatus = run.status;
    for (;;) {
      run = pipelines.get(app, number);
      for (const job of run.jobs) {
        if (job.status === 'pending') continue;
        const offset = sentChars.get(job.index) ?? 0;
        const text = pipelines.runs.outputFrom(app, number, job.index, offset);
        if (text !== '') {
          send({ type: 'output', index: job.index, stage: job.stage, command: job.command, text });
          sentChars.set(job.index, offset + text.length);
        }
        if (sentStatus.get(job.index) !== job.status) {
          send({ type: 'job', job });
          sentStatus.set(job.index, job.status);
        }
      }
      if (run.status !== lastRunStatus) {
        send({ type: 'run', run });
        lastRunStatus = run.status;
      }
      if (isFinished(run.status) || run.status === 'waiting' || stop.signal.aborted) break;
      // Runs, jobs and output are written in this process: wait for the next change instead of polling.
      await pipelines.runs.changed.wait({ signal: stop.signal });
    }
    reply.raw.end();
    return reply;
  });
}
