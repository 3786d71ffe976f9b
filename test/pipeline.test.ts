// Integration: pipelines from a real `git push` to an app's Berth remote: tests gate the deploy (zero failed
// requests when they pass, push rejected with their output when they fail), manual promote, cancel killing a job's
// process group, a Procfile-only app, and a failing release phase that changes nothing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { groupAlive } from '../src/control/pipeline/job-runner.js';
import type { PipelineRun } from '../src/domain/pipeline.js';
import { proxyPaths } from '../src/domain/proxy-paths.js';
import {
  CLI,
  type ControlPlaneProcess,
  FIXTURE_APP,
  proxyUnavailable,
  runCli,
  shutDown,
  startControlPlane,
  tempDir,
  waitFor,
  withDeadline,
} from './control-harness.js';
import { answersAfter, LoadClient } from './load-client.js';
import { requireTool } from './require-tool.js';

interface GitResult {
  code: number;
  output: string;
}

/** Runs git without blocking the event loop (the load client shares it). */
async function git(cwd: string, ...args: string[]): Promise<GitResult> {
  const child = spawn('git', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk) => {
    output += String(chunk);
  });
  child.stderr.on('data', (chunk) => {
    output += String(chunk);
  });
  const [code] = (await withDeadline(once(child, 'exit'), 45_000, `git ${args.join(' ')}`)) as [number];
  return { code, output };
}

async function mustGit(cwd: string, ...args: string[]): Promise<string> {
  const result = await git(cwd, ...args);
  assert.equal(result.code, 0, `git ${args.join(' ')}: ${result.output}`);
  return result.output;
}

/** A working copy with the fixture server, committed by a configured test user. */
async function workingCopy(files: Record<string, string>): Promise<string> {
  const dir = tempDir('berth-repo-');
  await mustGit(dir, 'init', '--quiet', '--initial-branch=main');
  await mustGit(dir, 'config', 'user.name', 'Berth Test');
  await mustGit(dir, 'config', 'user.email', 'test@berth.invalid');
  copyFileSync(join(FIXTURE_APP, 'server.js'), join(dir, 'server.js'));
  await commit(dir, files, 'initial');
  return dir;
}

async function commit(dir: string, files: Record<string, string>, message: string): Promise<void> {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  await mustGit(dir, 'add', '-A');
  await mustGit(dir, 'commit', '--quiet', '-m', message);
}

/** berth.yaml of `shop`: fast health checks, `npm test` from package.json by default. */
function shopSpec(greeting: string, deploy: 'auto' | 'manual' = 'auto', test?: string): string {
  return [
    'app: shop',
    'routes:',
    '  - host: shop.localhost',
    '    service: web',
    'services:',
    '  web:',
    '    run: node server.js',
    '    instances: 2',
    '    health: { path: /health, interval: 250ms, timeout: 200ms, healthy: 1, unhealthy: 2, grace: 1s }',
    '    deploy: { drain: 5s, stopTimeout: 5s }',
    `    env: { GREETING: "${greeting}" }`,
    'pipeline:',
    `  deploy: ${deploy}`,
    ...(test === undefined ? [] : [`  test: ${JSON.stringify(test)}`]),
    '',
  ].join('\n');
}

/** A package.json whose `npm test` checks test/expected.txt against 2 + 1. */
const PACKAGE_JSON = JSON.stringify({
  name: 'shop',
  private: true,
  scripts: { test: 'node check.js' },
});
const CHECK_JS = [
  "const expected = require('fs').readFileSync('expected.txt', 'utf8').trim();",
  'if (String(2 + 1) !== expected) { console.error("assertion failed: expected 2 + 1 to equal " + expected); process.exit(1); }',
  "console.log('1 test passed');",
  '',
].join('\n');

function greetingOf(body: string): string {
  return (JSON.parse(body) as { greeting: string }).greeting;
}

describe('pipeline from git push', { skip: proxyUnavailable || requireTool('git', 'git') }, () => {
  const dataDir = tempDir('berth-pipeline-');
  let plane: ControlPlaneProcess;
  let load: LoadClient;
  let repo: string;

  async function converged(app: string): Promise<void> {
    await waitFor(
      `${app} to converge`,
      async () => ((await plane.client.app(app)).converged ? true : undefined),
      20_000,
    );
  }

  async function runs(app: string): Promise<PipelineRun[]> {
    return plane.client.request<PipelineRun[]>('GET', `/v1/apps/${app}/pipeline/runs`);
  }

  before(async () => {
    plane = await startControlPlane(dataDir);
    load = new LoadClient(plane.proxyPorts.https, 'shop.localhost', proxyPaths(dataDir).caCert);
    const remote = await runCli(dataDir, ['git-remote', 'shop']);
    assert.equal(remote.code, 0, remote.stderr);
    assert.equal(remote.stdout.trim(), join(dataDir, 'git', 'shop.git'));
    repo = await workingCopy({
      'berth.yaml': shopSpec('one'),
      'package.json': PACKAGE_JSON,
      'check.js': CHECK_JS,
      'expected.txt': '3\n',
    });
    await mustGit(repo, 'remote', 'add', 'berth', remote.stdout.trim());
  });

  after(async () => {
    load.close();
    await shutDown(plane, dataDir);
  });

  it('runs the tests of a push, then deploys it with zero failed requests', async () => {
    const first = await git(repo, 'push', 'berth', 'main');
    assert.equal(first.code, 0, first.output);
    assert.match(first.output, /remote: -----> test: npm test/);
    assert.match(first.output, /remote: +1 test passed/);
    assert.match(first.output, /run 1 succeeded: v1 is live/);
    await converged('shop');

    await commit(repo, { 'berth.yaml': shopSpec('two') }, 'two');
    let pushedAt = 0;
    const { answers, failures } = await load.during(async (sofar) => {
      const second = await git(repo, 'push', 'berth', 'main');
      assert.equal(second.code, 0, second.output);
      assert.match(second.output, /run 2 succeeded: v2 is live/);
      pushedAt = Date.now();
      await answersAfter(sofar, pushedAt);
    });
    assert.deepEqual(failures, [], `${failures.length} of ${answers.length} requests failed`);
    assert.ok(answers.length > 50, `only ${answers.length} requests`);
    assert.deepEqual(
      [...new Set(answers.filter((a) => a.sentAt > pushedAt).map((a) => greetingOf(a.body)))],
      ['two'],
    );
    const run = (await runs('shop')).at(-1)!;
    assert.equal(run.status, 'succeeded');
    assert.equal(run.revision, (await mustGit(repo, 'rev-parse', 'HEAD')).trim());
    assert.deepEqual(
      run.jobs.map((j) => [j.stage, j.status]),
      [
        ['test', 'succeeded'],
        ['build', 'succeeded'],
        ['deploy', 'succeeded'],
      ],
    );
  });

  it('rejects a push whose test fails, shows the failing output to the pusher, and keeps the old release', async () => {
    await commit(repo, { 'berth.yaml': shopSpec('broken'), 'expected.txt': '4\n' }, 'broken');
    const push = await git(repo, 'push', 'berth', 'main');
    assert.notEqual(push.code, 0);
    assert.match(push.output, /remote: +assertion failed: expected 2 \+ 1 to equal 4/);
    assert.match(push.output, /run 3 FAILED: test failed: `npm test` exited with code 1/);
    assert.match(push.output, /pre-receive hook declined/);
    const run = (await runs('shop')).at(-1)!;
    assert.equal(run.status, 'failed');
    assert.deepEqual(
      run.jobs.map((j) => j.status),
      ['failed', 'skipped', 'skipped'],
    );
    assert.equal((await plane.client.app('shop')).release, 2);
    assert.equal(greetingOf((await load.get('/')).body), 'two');
    const shown = await runCli(dataDir, ['pipeline', 'show', 'shop', '3']);
    assert.match(shown.stdout, /assertion failed: expected 2 \+ 1 to equal 4/);
    // Put the branch back on what runs, as a developer would after fixing the test.
    await mustGit(repo, 'reset', '--quiet', '--hard', 'HEAD~1');
  });

  it('refuses bad input whole: an invalid berth.yaml rejects the push with its position; bad API calls say why', async () => {
    await commit(repo, { 'berth.yaml': shopSpec('bad').replace('instances: 2', 'instances: two') }, 'typo');
    const push = await git(repo, 'push', 'berth', 'main');
    assert.notEqual(push.code, 0);
    assert.match(push.output, /remote: ! {6}berth.yaml:8:16 expected a whole number/);
    assert.match(push.output, /pre-receive hook declined/);
    await mustGit(repo, 'reset', '--quiet', '--hard', 'HEAD~1');
    await assert.rejects(plane.client.request('POST', '/v1/pipeline/runs', { directory: 'relative/dir' }), {
      code: 'invalid_request',
      message: /body.directory: must be an absolute path/,
    });
    await assert.rejects(plane.client.request('POST', '/v1/apps/shop/pipeline/runs/1/promote', {}), {
      code: 'conflict',
      message: /run 1 is succeeded; only a run waiting for promotion can be promoted/,
    });
    await assert.rejects(plane.client.request('POST', '/v1/apps/shop/pipeline/runs/99/cancel', {}), {
      code: 'not_found',
    });
    assert.equal((await plane.client.app('shop')).release, 2);
  });

  it('deploys only pushes to the configured branch', async () => {
    const before = (await runs('shop')).length;
    const configured = await runCli(dataDir, ['git-remote', 'shop', '--branch', 'production']);
    assert.equal(configured.code, 0, configured.stderr);
    assert.match(configured.stderr, /git push berth production/);
    await commit(repo, { 'notes.txt': 'not deployed\n' }, 'notes');
    const push = await git(repo, 'push', 'berth', 'main');
    assert.equal(push.code, 0, push.output);
    assert.match(
      push.output,
      /refs\/heads\/main: not the deploy branch \(production\); stored, not deployed/,
    );
    assert.equal((await runs('shop')).length, before, 'no run');
    await runCli(dataDir, ['git-remote', 'shop', '--branch', 'main']);
  });

  it('waits for promotion in manual mode, across a control-plane restart, and deploys on promote', async () => {
    await commit(repo, { 'berth.yaml': shopSpec('three', 'manual') }, 'manual');
    const push = await git(repo, 'push', 'berth', 'main');
    assert.equal(push.code, 0, push.output);
    assert.match(push.output, /run 4 passed; deploy it with: berth pipeline promote shop 4/);
    assert.equal((await runs('shop')).at(-1)?.status, 'waiting');
    assert.equal((await plane.client.app('shop')).release, 2, 'nothing deployed before the promote');
    assert.equal(greetingOf((await load.get('/')).body), 'two');
    // A waiting run keeps its build across a control-plane restart.
    await plane.stop();
    plane = await startControlPlane(dataDir);
    assert.equal((await runs('shop')).at(-1)?.status, 'waiting');
    const promote = await runCli(dataDir, ['pipeline', 'promote', 'shop', '4']);
    assert.equal(promote.code, 0, promote.stdout + promote.stderr);
    assert.match(promote.stdout, /run 4 succeeded: v3 is live/);
    assert.doesNotMatch(promote.stdout, /-----> test/, 'promote shows only what it runs');
    assert.match(promote.stdout, /-----> deploy: deploy \(on promote\)/);
    await converged('shop');
    assert.equal(greetingOf((await load.get('/')).body), 'three');
  });

  it('cancels a running job by killing its whole process group', async () => {
    const scratch = tempDir('berth-cancel-');
    const pidFile = join(scratch, 'pgid');
    const dir = tempDir('berth-cancel-app-');
    copyFileSync(join(FIXTURE_APP, 'server.js'), join(dir, 'server.js'));
    // The shell is the group leader: $$ is the group id; `sleep` is a second process in the group.
    writeFileSync(join(dir, 'berth.yaml'), shopSpec('four', 'auto', `echo $$ > ${pidFile}; sleep 60; true`));
    const run = await plane.client.request<PipelineRun>('POST', '/v1/pipeline/runs', { directory: dir });
    const pgid = await waitFor(
      'the job to start',
      () =>
        existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== ''
          ? Number(readFileSync(pidFile, 'utf8'))
          : undefined,
      10_000,
    );
    assert.ok(groupAlive(pgid), 'the job group runs');
    const cancel = await runCli(dataDir, ['pipeline', 'cancel', 'shop', String(run.number)]);
    assert.equal(cancel.code, 0, cancel.stderr);
    await waitFor('the job group to be gone', () => (groupAlive(pgid) ? undefined : true), 10_000);
    const ended = await waitFor('the run to end', async () => {
      const r = (await runs('shop')).find((x) => x.number === run.number);
      return r?.status === 'cancelled' ? r : undefined;
    });
    assert.match(ended.reason ?? '', /cancelled by admin/);
    assert.deepEqual(
      ended.jobs.map((j) => j.status),
      ['cancelled', 'cancelled', 'cancelled'],
    );
    assert.equal((await plane.client.app('shop')).release, 3, 'nothing deployed');
  });

  it('queues runs of one app, and a newer run supersedes a queued one', async () => {
    const scratch = tempDir('berth-queue-');
    const started = join(scratch, 'started');
    const source = (greeting: string, test: string): string => {
      const dir = tempDir('berth-queue-app-');
      copyFileSync(join(FIXTURE_APP, 'server.js'), join(dir, 'server.js'));
      writeFileSync(join(dir, 'berth.yaml'), shopSpec(greeting, 'manual', test));
      return dir;
    };
    const start = (dir: string): Promise<PipelineRun> =>
      plane.client.request<PipelineRun>('POST', '/v1/pipeline/runs', { directory: dir });
    const first = await start(source('q1', `touch ${started}; sleep 60`));
    await waitFor('the first run to start its job', () => (existsSync(started) ? true : undefined), 10_000);
    const second = await start(source('q2', 'true'));
    const third = await start(source('q3', 'true'));
    const runsNow = await runs('shop');
    const byNumber = (n: number): PipelineRun | undefined => runsNow.find((r) => r.number === n);
    assert.equal(byNumber(first.number)?.status, 'running');
    assert.equal(byNumber(second.number)?.status, 'cancelled');
    assert.equal(byNumber(second.number)?.reason, `superseded by run ${third.number}`);
    assert.equal(byNumber(third.number)?.status, 'queued', 'it waits for the running one');
    await runCli(dataDir, ['pipeline', 'cancel', 'shop', String(first.number)]);
    const third2 = await waitFor('the newest run to pass', async () => {
      const r = (await runs('shop')).find((x) => x.number === third.number);
      return r?.status === 'waiting' ? r : undefined;
    });
    assert.equal(third2.jobs.find((j) => j.stage === 'test')?.status, 'succeeded');
    await runCli(dataDir, ['pipeline', 'cancel', 'shop', String(third.number)]);
  });

  it('streams a running job live to `show -f`, with the secrets the pipeline may use scrubbed', async () => {
    await plane.client.request('POST', '/v1/apps/shop/secrets', { values: { API_TOKEN: 'tok-9f8e7d6c5b' } });
    const scratch = tempDir('berth-follow-');
    const go = join(scratch, 'go');
    const dir = tempDir('berth-follow-app-');
    copyFileSync(join(FIXTURE_APP, 'server.js'), join(dir, 'server.js'));
    const spec = shopSpec(
      'six',
      'manual',
      `echo "token is $API_TOKEN"; while [ ! -f ${go} ]; do sleep 0.05; done`,
    );
    writeFileSync(
      join(dir, 'berth.yaml'),
      spec.replace('  deploy: manual', '  deploy: manual\n  secrets: [API_TOKEN]'),
    );
    const queued = await runCli(dataDir, ['pipeline', 'run', dir, '--no-follow']);
    assert.equal(queued.code, 0, queued.stderr);
    const number = Number(/pipeline run (\d+) queued/.exec(queued.stdout)?.[1]);
    const follower = spawn(process.execPath, [
      CLI,
      '--data-dir',
      dataDir,
      'pipeline',
      'show',
      'shop',
      String(number),
      '-f',
    ]);
    let followed = '';
    follower.stdout.on('data', (chunk) => {
      followed += String(chunk);
    });
    try {
      // The line the job printed (indented), not the header that shows its command, which says `token is` too.
      await waitFor(
        'the job output to reach the follower',
        () => (/^ +token is /m.test(followed) ? true : undefined),
        10_000,
      );
      assert.equal(
        (await runs('shop')).find((r) => r.number === number)?.status,
        'running',
        'streamed while it runs',
      );
      assert.match(followed, /^ +token is \[secret:API_TOKEN\]$/m);
    } finally {
      // Also when an assertion failed: a job left waiting would hold the app's pipeline queue for the next tests.
      writeFileSync(go, '');
    }
    const [code] = (await withDeadline(once(follower, 'exit'), 15_000, 'show -f to end')) as [number];
    assert.equal(code, 0);
    assert.match(
      followed,
      new RegExp(`run ${number} passed; deploy it with: berth pipeline promote shop ${number}`),
    );
    const stored = await plane.client.request<PipelineRun>('GET', `/v1/apps/shop/pipeline/runs/${number}`);
    assert.doesNotMatch(JSON.stringify(stored), /tok-9f8e7d6c5b/);
    await runCli(dataDir, ['pipeline', 'cancel', 'shop', String(number)]);
  });

  it('keeps the first 4 MiB of a runaway job output and says that the rest was dropped', async () => {
    const dir = tempDir('berth-loud-app-');
    copyFileSync(join(FIXTURE_APP, 'server.js'), join(dir, 'server.js'));
    writeFileSync(
      join(dir, 'berth.yaml'),
      shopSpec('loud', 'manual', 'yes 0123456789abcdef | head -c 6000000'),
    );
    const queued = await runCli(dataDir, ['pipeline', 'run', dir, '--no-follow']);
    const number = Number(/pipeline run (\d+) queued/.exec(queued.stdout)?.[1]);
    await waitFor('the loud run to pass', async () => {
      const r = (await runs('shop')).find((x) => x.number === number);
      return r?.status === 'waiting' ? r : undefined;
    });
    const run = await plane.client.request<PipelineRun>('GET', `/v1/apps/shop/pipeline/runs/${number}`);
    const output = run.jobs[0]?.output ?? '';
    assert.ok(output.length <= 4 * 1024 * 1024 + 100, `${output.length} characters kept`);
    assert.ok(output.length > 4 * 1024 * 1024 - 70_000, `${output.length} characters kept`);
    assert.match(output, /\[berth: output beyond 4 MiB is not kept\]\n$/);
    await runCli(dataDir, ['pipeline', 'cancel', 'shop', String(number)]);
  });

  it('stops the deploy when the release phase fails, and changes nothing', async () => {
    await commit(
      repo,
      {
        'berth.yaml': shopSpec('five'),
        Procfile: 'release: echo "migrating the database"; exit 4\n',
      },
      'release phase',
    );
    const push = await git(repo, 'push', 'berth', 'main');
    assert.notEqual(push.code, 0);
    assert.match(push.output, /remote: -----> release: echo "migrating the database"; exit 4/);
    assert.match(push.output, /remote: +migrating the database/);
    assert.match(push.output, /release phase failed: .* exited with code 4; nothing was deployed/);
    const status = await plane.client.app('shop');
    assert.equal(status.release, 3);
    assert.equal((await plane.client.releases('shop')).length, 3, 'no release was made');
    assert.equal(greetingOf((await load.get('/')).body), 'three');
    // `berth deploy` runs the same release phase.
    const direct = await runCli(dataDir, ['deploy', repo]);
    assert.equal(direct.code, 1);
    assert.match(
      direct.stdout + direct.stderr,
      /release phase failed: `echo "migrating the database"; exit 4` exited with code 4/,
    );
    assert.equal((await plane.client.releases('shop')).length, 3, 'no release was made');
  });

  it('deploys a Procfile-only app named after its repository, routed at <app>.localhost, with its Heroku config', async () => {
    const envFile = join(tempDir('berth-heroku-'), 'config.env');
    writeFileSync(envFile, 'GREETING="hello from heroku"\nDATABASE_URL=postgres://u:pw-4c3b2a@db/app\n');
    const imported = await runCli(dataDir, ['import', 'heroku', 'heroku-app', '--env-file', envFile]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stdout, /secrets .*: DATABASE_URL\n/);
    assert.match(imported.stdout, /config vars: GREETING\n/);
    assert.doesNotMatch(imported.stdout + imported.stderr, /pw-4c3b2a|hello from heroku/);
    const remote = await runCli(dataDir, ['git-remote', 'heroku-app']);
    const dir = await workingCopy({ Procfile: 'web: node server.js\n' });
    await mustGit(dir, 'remote', 'add', 'berth', remote.stdout.trim());
    const push = await git(dir, 'push', 'berth', 'main');
    assert.equal(push.code, 0, push.output);
    assert.match(push.output, /run 1 succeeded: v1 is live/);
    await converged('heroku-app');
    const procfileApp = new LoadClient(
      plane.proxyPorts.https,
      'heroku-app.localhost',
      proxyPaths(dataDir).caCert,
    );
    try {
      const answer = await procfileApp.get('/');
      assert.equal(answer.status, 200);
      assert.equal(greetingOf(answer.body), 'hello from heroku');
    } finally {
      procfileApp.close();
    }
  });
});
