// Pid files name one process: a stale file, or one whose pid now belongs to another process, names nothing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { livePid, processIdentity, readPidFile, removePidFile, writePidFile } from './pid-file.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-pid-'));

describe('pid files', () => {
  it('names the running process by pid, start time and command line', () => {
    const path = join(dir, 'self.pid');
    writePidFile(path);
    assert.equal(readFileSync(path, 'utf8').split('\n')[0], String(process.pid));
    assert.deepEqual(readPidFile(path), processIdentity(process.pid));
    assert.equal(livePid(path), process.pid);
  });

  it('names nothing once that process has exited', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    await once(child, 'spawn');
    const path = join(dir, 'child.pid');
    writePidFile(path, child.pid);
    assert.equal(livePid(path), child.pid);
    child.kill('SIGKILL');
    await once(child, 'exit');
    assert.equal(livePid(path), null);
  });

  it('names nothing when the pid now belongs to another process (other start time or command line)', () => {
    const path = join(dir, 'reused.pid');
    const me = processIdentity(process.pid)!;
    writeFileSync(
      path,
      `${process.pid}\n${JSON.stringify({ startTicks: me.startTicks - 1, cmdline: me.cmdline })}\n`,
    );
    assert.equal(livePid(path), null);
    writeFileSync(
      path,
      `${process.pid}\n${JSON.stringify({ startTicks: me.startTicks, cmdline: ['other'] })}\n`,
    );
    assert.equal(livePid(path), null);
  });

  it('names nothing for a bare number (no identity to check) or a missing file', () => {
    const path = join(dir, 'bare.pid');
    writeFileSync(path, `${process.pid}\n`);
    assert.equal(readPidFile(path), null);
    assert.equal(livePid(path), null);
    assert.equal(livePid(join(dir, 'missing.pid')), null);
  });

  it('is removed only by the process it names', () => {
    const path = join(dir, 'remove.pid');
    writePidFile(path);
    removePidFile(path, process.pid + 1);
    assert.equal(livePid(path), process.pid);
    removePidFile(path);
    assert.equal(readPidFile(path), null);
  });
});
