import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import {
  identify,
  isRunning,
  readPidFile,
  runningPid,
  signalRecorded,
  writePidFile,
} from './process-identity.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-pid-'));

/** A child that stays until signalled; its identity once it runs node (after exec). */
async function sleeper() {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000); console.log("up")'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  await once(child.stdout!, 'data');
  return child;
}

describe('process identity', () => {
  it('reads pid, start time and command line of a running process', () => {
    const self = identify(process.pid);
    assert.ok(self);
    assert.equal(self.pid, process.pid);
    assert.ok(self.startTicks > 0);
    // The script this process runs (the test file, or the runner's entry of a group of unit test files).
    assert.ok(self.command.some((arg) => resolve(arg) === process.argv[1]));
    assert.ok(isRunning(self));
    assert.equal(identify(2 ** 22 + 17), undefined);
  });

  it('does not take another start time or command line for the same process', () => {
    const self = identify(process.pid)!;
    assert.equal(isRunning({ ...self, startTicks: self.startTicks + 1 }), false);
    assert.equal(isRunning({ ...self, command: [...self.command, '--other'] }), false);
  });

  it('never trusts a pid file that holds only a pid (an older format, or anything else)', () => {
    const path = join(dir, 'bare.pid');
    writeFileSync(path, `${process.pid}\n`);
    assert.equal(readPidFile(path), undefined);
    assert.equal(runningPid(path), undefined);
    assert.deepEqual(signalRecorded(path, 'SIGTERM'), { outcome: 'no_record' });
    assert.deepEqual(signalRecorded(join(dir, 'missing.pid'), 'SIGTERM'), { outcome: 'no_record' });
  });

  it('signals the recorded process while it runs, and nothing once it has exited', async () => {
    const child = await sleeper();
    const path = join(dir, 'child.pid');
    writePidFile(path, identify(child.pid!)!, { url: 'http://127.0.0.1:1' });
    assert.equal(readPidFile<{ url: string }>(path)?.url, 'http://127.0.0.1:1');
    assert.equal(runningPid(path), child.pid);
    const exited = once(child, 'exit');
    assert.deepEqual(signalRecorded(path, 'SIGTERM'), { outcome: 'signalled', pid: child.pid });
    assert.deepEqual(await exited, [null, 'SIGTERM']);
    assert.deepEqual(signalRecorded(path, 'SIGTERM'), { outcome: 'not_running', pid: child.pid });
  });

  it('refuses to signal a live process whose start time differs from the record (a reused pid)', async () => {
    const child = await sleeper();
    try {
      const path = join(dir, 'reused.pid');
      const real = identify(child.pid!)!;
      writePidFile(path, { ...real, startTicks: real.startTicks - 1 });
      assert.deepEqual(signalRecorded(path, 'SIGKILL'), { outcome: 'not_running', pid: child.pid });
      assert.equal(runningPid(path), undefined);
      assert.ok(isRunning(real), 'the process was left alone');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
