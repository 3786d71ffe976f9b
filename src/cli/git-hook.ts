// The pre-receive hook of an app's Berth repository: a push to the deploy branch runs the pipeline, streamed back
// to the pusher (git prefixes each line with `remote:`); a run that fails or is cancelled rejects the push.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type { PipelineRun } from '../domain/pipeline.js';
import { ApiClient } from './client.js';
import { followRun } from './commands/pipeline.js';

const ZERO = /^0+$/;

async function main(): Promise<number> {
  // git runs the hook in the bare repository: <data-dir>/git/<app>.git
  const repository = process.cwd();
  const app = basename(repository).replace(/\.git$/, '');
  const dataDir = resolve(repository, '..', '..');
  const branch = gitConfig('berth.branch') || 'main';
  const updates = readUpdates();
  const write = (text: string): void => {
    process.stdout.write(text);
  };
  let code = 0;
  for (const { next, ref } of updates) {
    if (ref !== `refs/heads/${branch}`) {
      write(`-----> ${ref}: not the deploy branch (${branch}); stored, not deployed\n`);
      continue;
    }
    if (ZERO.test(next)) {
      write(`-----> ${ref} deleted; what runs is unchanged\n`);
      continue;
    }
    // The pushed objects are still in quarantine: only this process (with git's environment) can read them.
    const source = mkdtempSync(join(tmpdir(), `berth-push-${app}-`));
    try {
      const archive = spawnSync(
        '/bin/sh',
        ['-c', 'git archive --format=tar "$1" | tar -x -C "$2"', 'sh', next, source],
        {
          stdio: ['ignore', 'inherit', 'inherit'],
        },
      );
      if (archive.status !== 0) {
        write(`!      could not export ${next.slice(0, 7)}\n`);
        return 1;
      }
      write(`-----> Berth: ${app} ${next.slice(0, 7)} (${ref.replace('refs/heads/', '')})\n`);
      const client = ApiClient.fromDataDir(dataDir);
      const run = await client.request<PipelineRun>('POST', '/v1/pipeline/runs', {
        directory: source,
        app,
        revision: next,
        ref,
        source: 'git',
      });
      // The run has its own copy now.
      rmSync(source, { recursive: true, force: true });
      write(`-----> pipeline run ${run.number} queued\n`);
      const ended = await followRun(client, app, run.number, write);
      if (ended.status === 'failed' || ended.status === 'cancelled') code = 1;
    } catch (error) {
      write(`!      ${error instanceof Error ? error.message : String(error)}\n`);
      for (const issue of (error as { issues?: { location?: string; path: string; message: string }[] })
        .issues ?? []) {
        write(`!      ${issue.location ?? issue.path} ${issue.message}\n`);
      }
      code = 1;
    } finally {
      rmSync(source, { recursive: true, force: true });
    }
  }
  if (code !== 0) write('!      push rejected: nothing was deployed\n');
  return code;
}

function readUpdates(): { previous: string; next: string; ref: string }[] {
  const text = readFileSync(0, 'utf8');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [previous = '', next = '', ref = ''] = line.trim().split(/\s+/);
      return { previous, next, ref };
    });
}

function gitConfig(key: string): string {
  try {
    return execFileSync('git', ['config', '--get', key], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stdout.write(`!      berth hook: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
