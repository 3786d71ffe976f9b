// The DNS-01 hook: its environment, its failures, and that it never outlives its timeout or the control plane.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { waitFor, withDeadline } from '../../../test/wait.js';
import { runDnsHook } from './dns-hook.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-dns-hook-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Running and not a zombie (nobody may reap an orphan in a container). */
function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[0] !== 'Z';
  } catch {
    return false;
  }
}

/** A hook that records its pid and a background child's, then waits far longer than any test. */
function lingeringHook(name: string): { command: string; pids: () => number[] | undefined } {
  const file = join(dir, name);
  return {
    command: `sleep 120 & echo "$! $$" > ${file}.tmp && mv ${file}.tmp ${file}; sleep 120`,
    pids: () => {
      try {
        return readFileSync(file, 'utf8').trim().split(' ').map(Number);
      } catch {
        return undefined;
      }
    },
  };
}

test('the hook gets the action, host, record name and value, and succeeds on exit 0', async () => {
  const file = join(dir, 'env');
  await runDnsHook(
    `echo "$BERTH_ACME_ACTION $BERTH_ACME_DOMAIN $BERTH_ACME_NAME $BERTH_ACME_VALUE" > ${file}`,
    'set',
    '*.example.com',
    'v4lu3',
  );
  assert.equal(readFileSync(file, 'utf8'), 'set *.example.com _acme-challenge.example.com v4lu3\n');
});

test('a failing hook fails the order with its exit code and the end of its output', async () => {
  await assert.rejects(runDnsHook('echo provider said no >&2; exit 3', 'clear', 'example.com', 'x'), {
    problem: { type: 'berth:dnsHook', detail: 'the DNS hook (clear) exited with 3: provider said no' },
  });
});

test('at the timeout the whole hook is killed, what it started included', async () => {
  const hook = lingeringHook('timeout');
  const run = runDnsHook(hook.command, 'set', 'example.com', 'x', 1000);
  const pids = await waitFor('the hook to start', hook.pids, 10_000);
  await assert.rejects(withDeadline(run, 10_000, 'the timed-out hook to be reported'), {
    problem: { type: 'berth:dnsHook', detail: 'the DNS hook (set) was killed after 1s' },
  });
  await waitFor('the hook and its child to be gone', () => (pids.some(alive) ? undefined : true), 10_000);
});

test('when the control plane is killed (SIGKILL), the hook and what it started die with it', async () => {
  const hook = lingeringHook('orphan');
  const module = join(import.meta.dirname, 'dns-hook.js');
  const parent = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { runDnsHook } = await import(${JSON.stringify(module)});
       await runDnsHook(${JSON.stringify(hook.command)}, 'set', 'example.com', 'x').catch(() => {});`,
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise((resolve) => parent.once('exit', resolve));
  try {
    const pids = await waitFor('the hook to start', hook.pids, 10_000);
    assert.ok(pids.every(alive), 'the hook runs while the control plane does');
    parent.kill('SIGKILL');
    await exited;
    await waitFor('the orphaned hook to be gone', () => (pids.some(alive) ? undefined : true), 10_000);
  } finally {
    parent.kill('SIGKILL');
  }
});
