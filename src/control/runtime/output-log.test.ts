// Unit tests of the instance output file: JSON lines, scrubbing, partial and long lines, bounded queue with drops.
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { OutputLog, type OutputRecord } from './output-log.js';

function tempFile(): { path: string; fd: number } {
  const path = join(mkdtempSync(join(tmpdir(), 'berth-output-')), 'i.log');
  return { path, fd: openSync(path, 'a') };
}

function records(path: string): OutputRecord[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as OutputRecord);
}

describe('OutputLog', () => {
  it('writes each line of both streams as a timestamped JSON record, with secrets scrubbed', async () => {
    const { path, fd } = tempFile();
    const log = new OutputLog({ fd, scrub: { API_KEY: 'k-123456' }, now: () => 42 });
    const out = log.stream('out');
    const err = log.stream('err');
    out.push(Buffer.from('one\r\ntwo k-12'));
    err.push(Buffer.from('oops\n'));
    out.push(Buffer.from('3456\n'));
    await log.close();
    closeSync(fd);
    assert.deepEqual(records(path), [
      { t: 42, s: 'out', l: 'one' },
      { t: 42, s: 'err', l: 'oops' },
      { t: 42, s: 'out', l: 'two [secret:API_KEY]' },
    ]);
  });

  it('writes a partial last line after a quiet spell, and the rest of it as the next line', async () => {
    const { path, fd } = tempFile();
    const log = new OutputLog({ fd, partialFlushMs: 20 });
    const out = log.stream('out');
    out.push(Buffer.from('progress 50%'));
    const deadline = Date.now() + 5000;
    while (records(path).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    out.push(Buffer.from(' done\n'));
    await log.close();
    closeSync(fd);
    assert.deepEqual(
      records(path).map((r) => r.l),
      ['progress 50%', ' done'],
    );
  });

  it('keeps a tail that may start a secret through a quiet spell, so a secret split by one is still scrubbed', async () => {
    const { path, fd } = tempFile();
    const log = new OutputLog({ fd, scrub: { DB_URL: 'postgres://u:pw@db/x' }, partialFlushMs: 20 });
    const out = log.stream('out');
    out.push(Buffer.from('connecting with post'));
    const deadline = Date.now() + 5000;
    while (records(path).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    out.push(Buffer.from('gres://u:pw@db/x now\n'));
    await log.close();
    closeSync(fd);
    assert.deepEqual(
      records(path).map((r) => r.l),
      ['connecting with ', '[secret:DB_URL] now'],
    );
  });

  it('writes a held-back tail at the end of the stream when nothing completes it', async () => {
    const { path, fd } = tempFile();
    const log = new OutputLog({ fd, scrub: { DB_URL: 'postgres://u:pw@db/x' }, partialFlushMs: 20 });
    const out = log.stream('out');
    out.push(Buffer.from('last word: post'));
    out.end();
    await log.close();
    closeSync(fd);
    assert.deepEqual(
      records(path).map((r) => r.l),
      ['last word: post'],
    );
  });

  it('splits very long lines at 16 KiB without cutting a UTF-8 character', async () => {
    const { path, fd } = tempFile();
    const log = new OutputLog({ fd });
    const line = `${'a'.repeat(16 * 1024 - 1)}é${'b'.repeat(20_000)}`;
    log.stream('out').push(Buffer.from(`${line}\n`));
    await log.close();
    closeSync(fd);
    const pieces = records(path).map((r) => r.l);
    assert.equal(pieces.join(''), line);
    assert.ok(pieces.length === 3, `${pieces.length} pieces`);
    for (const piece of pieces) assert.ok(Buffer.byteLength(piece) <= 16 * 1024);
  });

  it('drops lines past its bounded queue when the disk is slow, and says how many', async () => {
    const { path, fd } = tempFile();
    const writes: (() => void)[] = [];
    const log = new OutputLog({
      fd,
      maxQueueBytes: 1000,
      // A disk that completes a write only when told to.
      write: (target, data, callback) => {
        writes.push(() => callback(null, writeSync(target, data)));
      },
    });
    const out = log.stream('out');
    for (let i = 0; i < 200; i++) out.push(Buffer.from(`line ${i}\n`));
    const closed = log.close();
    while (writes.length > 0) {
      writes.shift()!();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await closed;
    closeSync(fd);
    const lines = records(path).map((r) => r.l);
    const marker = lines.find((l) => l.startsWith('[berth: '));
    assert.ok(marker, 'a drop marker was written');
    const dropped = Number(/\[berth: (\d+) lines dropped\]/.exec(marker!)?.[1]);
    assert.equal(lines.length - 1 + dropped, 200, 'every line is either written or counted');
    assert.equal(log.droppedTotal, dropped);
  });
});
