// Tests of pipeline jobs: exit codes, scrubbed output, and a timeout or cancel that kills the whole process group.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { groupAlive, runJob } from './job-runner.js';

const base = { cwd: process.cwd(), env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, timeoutMs: 10_000 };

describe('runJob', () => {
  it('reports the exit code and replaces secret values in output, even split across writes', async () => {
    let output = '';
    const result = await runJob({
      ...base,
      command: "printf 'token=hun'; sleep 0.05; printf 'ter2\\n'; exit 3",
      scrub: (text) => text.replaceAll('hunter2', '[secret:TOKEN]'),
      onOutput: (text) => {
        output += text;
      },
    });
    assert.deepEqual(result, { outcome: 'exited', code: 3, reason: 'exited with code 3' });
    assert.equal(output, 'token=[secret:TOKEN]\n');
  });

  it('kills the whole process group on timeout', async () => {
    let pgid = 0;
    const result = await runJob({
      ...base,
      command: 'sleep 30 & sleep 30',
      timeoutMs: 200,
      scrub: (t) => t,
      onOutput: () => {},
      onStart: (id) => {
        pgid = id;
      },
    });
    assert.equal(result.code, 124);
    assert.equal(result.outcome, 'timed_out');
    assert.match(result.reason, /timed out after 200ms/);
    assert.equal(groupAlive(pgid), false, 'no process of the job is left');
  });

  it('kills the whole process group on cancel', async () => {
    const abort = new AbortController();
    let pgid = 0;
    const done = runJob({
      ...base,
      command: 'sleep 30 & sleep 30',
      signal: abort.signal,
      scrub: (t) => t,
      onOutput: () => {},
      onStart: (id) => {
        pgid = id;
      },
    });
    assert.ok(groupAlive(pgid));
    abort.abort();
    assert.deepEqual(await done, { outcome: 'cancelled', code: 130, reason: 'was cancelled' });
    assert.equal(groupAlive(pgid), false);
  });
});
