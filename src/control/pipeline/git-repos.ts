// Each app's bare git repository under `<data-dir>/git/<app>.git`, with the pre-receive hook that runs its pipeline.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../../domain/errors.js';
import { shellQuote } from '../../lib/shell-quote.js';

/** Pushes to this branch run the pipeline unless `git config berth.branch` in the repository says otherwise. */
export const DEFAULT_DEPLOY_BRANCH = 'main';

const APP_NAME = /^[a-z][a-z0-9-]{0,62}$/;

export interface GitRemote {
  app: string;
  /** The repository's path: what `git remote add berth <path>` takes. */
  path: string;
  branch: string;
}

export class GitRepos {
  readonly #root: string;
  readonly #hookMain: string;

  /** `hookMain` is the compiled `src/cli/git-hook.js` that the hook script runs with this node. */
  constructor(root: string, hookMain: string) {
    this.#root = root;
    this.#hookMain = hookMain;
  }

  /**
   * The app's repository, created (with its hook) on first use; `branch` changes the deploy branch.
   * The hook is rewritten every time, so a moved Berth installation keeps working after `berth git-remote`.
   */
  ensure(app: string, branch?: string): GitRemote {
    if (!APP_NAME.test(app)) {
      throw new BerthError('invalid_request', `${app}: an app name is lowercase letters, digits and dashes`);
    }
    if (branch !== undefined && !/^[A-Za-z0-9._/-]+$/.test(branch)) {
      throw new BerthError('invalid_request', `${branch}: not a branch name`);
    }
    const path = join(this.#root, `${app}.git`);
    if (!existsSync(join(path, 'HEAD'))) {
      mkdirSync(path, { recursive: true });
      git(path, ['init', '--quiet', '--bare', `--initial-branch=${branch ?? DEFAULT_DEPLOY_BRANCH}`]);
    }
    if (branch !== undefined) git(path, ['config', 'berth.branch', branch]);
    const hook = join(path, 'hooks', 'pre-receive');
    mkdirSync(join(path, 'hooks'), { recursive: true });
    writeFileSync(
      hook,
      [
        '#!/bin/sh',
        '# Installed by Berth (`berth git-remote`): a push to the deploy branch runs the pipeline; a failed run',
        '# rejects the push. The hook finds the data directory from this repository: <data-dir>/git/<app>.git.',
        `exec ${shellQuote(process.execPath)} ${shellQuote(this.#hookMain)}`,
        '',
      ].join('\n'),
    );
    chmodSync(hook, 0o755);
    return { app, path, branch: branchOf(path) };
  }
}

/** The deploy branch of a repository: `berth.branch` in its config, else `main`. */
export function branchOf(repository: string): string {
  try {
    return git(repository, ['config', '--get', 'berth.branch']).trim() || DEFAULT_DEPLOY_BRANCH;
  } catch {
    return DEFAULT_DEPLOY_BRANCH;
  }
}

function git(repository: string, args: string[]): string {
  return execFileSync('git', ['-C', repository, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}
