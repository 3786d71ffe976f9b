import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FileLock } from './file-lock.js';

const MODULE = fileURLToPath(new URL('./file-lock.js', import.meta.url));

/** Another process that tries the lock: prints `held` or `busy`, then keeps it until killed. */
function contender(path: string) {
  const code = `import(${JSON.stringify(MODULE)}).then(({ FileLock }) => {
    const lock = FileLock.tryAcquire(${JSON.stringify(path)});
    console.log(lock ? 'held' : 'busy');
    if (lock) setInterval(() => {}, 1000); else process.exit(0);
  });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const answer = once(child.stdout!, 'data').then(([chunk]) => String(chunk).trim());
  return { child, answer };
}

describe('FileLock', () => {
  it('is held by one owner at a time, in this process and across processes', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'berth-lock-')), 'x.lock');
    const lock = FileLock.tryAcquire(path);
    assert.ok(lock?.held);
    assert.equal(FileLock.tryAcquire(path), undefined, 'a second acquire in the same process is refused');
    const other = contender(path);
    assert.equal(await other.answer, 'busy');
    await once(other.child, 'exit');
    lock.release();
    assert.equal(lock.held, false);
    const again = FileLock.tryAcquire(path);
    assert.ok(again, 'released locks can be taken again');
    again.release();
  });

  it('is freed by the kernel when its holder is killed with SIGKILL', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'berth-lock-')), 'x.lock');
    const holder = contender(path);
    assert.equal(await holder.answer, 'held');
    assert.equal(FileLock.tryAcquire(path), undefined);
    const exited = once(holder.child, 'exit');
    holder.child.kill('SIGKILL');
    await exited;
    const lock = FileLock.tryAcquire(path);
    assert.ok(lock, 'nothing stale is left behind');
    lock.release();
  });
});
