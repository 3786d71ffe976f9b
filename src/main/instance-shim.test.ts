// The native instance shim's output file, through the process runtime: JSON lines as node would write them (checked
// differentially on random bytes), partial and long lines, a failed start, a bounded queue that counts its drops.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { OutputRecord } from '../control/runtime/output-log.js';
import { ProcessRuntime, type ShimTuning } from '../control/runtime/process-runtime.js';
import type { ExitStatus } from '../control/runtime/runtime.js';
import { StreamScrubber } from '../control/secrets/scrubber.js';

const DEADLINE_MS = 15_000;

/** Runs `script` (an ES module) under the shim; resolves with the log path once the instance has ended. */
async function runApp(
  script: string,
  options: {
    scrub?: Record<string, string>;
    tuning?: ShimTuning;
    env?: Record<string, string>;
    cwd?: string;
    logPath?: string;
  } = {},
): Promise<{ logPath: string; status: ExitStatus }> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-shim-test-'));
  const scriptPath = join(dir, 'app.mjs');
  writeFileSync(scriptPath, script);
  const logPath = options.logPath ?? join(dir, 'app', 'i.log');
  const runtime = new ProcessRuntime({
    cgroups: null,
    ...(options.tuning ? { shimTuning: options.tuning } : {}),
  });
  const ended = new Promise<ExitStatus>((resolve) => runtime.onExit((exit) => resolve(exit.status)));
  await runtime.start({
    instanceId: 'i',
    cwd: options.cwd ?? dir,
    command: `${process.execPath} ${scriptPath}`,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LOG_PATH: logPath, ...options.env },
    logPath,
    scrub: options.scrub ?? {},
  });
  const status = await deadline(ended, 'the app to end');
  await runtime.close();
  return { logPath, status };
}

/** `promise`, or a failure after DEADLINE_MS (the timer also keeps the process up while the shim is unref'd). */
function deadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`timed out after ${DEADLINE_MS}ms waiting for ${what}`)),
        DEADLINE_MS,
      );
    }),
  ]);
}

function lines(path: string): string[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '');
}

function records(path: string): OutputRecord[] {
  return lines(path).map((line) => JSON.parse(line) as OutputRecord);
}

/** The largest cut ≤ `limit` that does not split a UTF-8 character. */
function utf8Boundary(buffer: Buffer, limit: number): number {
  let cut = limit;
  while (cut > limit - 4 && cut > 0 && ((buffer[cut] ?? 0) & 0xc0) === 0x80) cut--;
  return cut > 0 ? cut : limit;
}

/**
 * What the shim must write for one stream's bytes, computed the plain way (no streaming): scrubbed as a whole by
 * the TypeScript scrubber, split into lines, lines longer than `maxLine` bytes cut at character boundaries, a
 * trailing CR dropped, decoded as node decodes UTF-8.
 */
function expectedLines(bytes: Buffer, secrets: Record<string, string>, maxLine: number): string[] {
  const scrubber = new StreamScrubber(secrets);
  const scrubbed = Buffer.concat([scrubber.push(bytes), scrubber.flush()]);
  const result: string[] = [];
  const piece = (part: Buffer): void => {
    const end = part.length > 0 && part[part.length - 1] === 0x0d ? part.length - 1 : part.length;
    result.push(part.toString('utf8', 0, end));
  };
  let start = 0;
  const pieces = (line: Buffer): void => {
    let rest = line;
    while (rest.length > maxLine) {
      const cut = utf8Boundary(rest, maxLine);
      piece(rest.subarray(0, cut));
      rest = rest.subarray(cut);
    }
    piece(rest);
  };
  for (let newline = scrubbed.indexOf(0x0a); newline !== -1; newline = scrubbed.indexOf(0x0a, start)) {
    pieces(scrubbed.subarray(start, newline));
    start = newline + 1;
  }
  if (start < scrubbed.length) pieces(scrubbed.subarray(start));
  return result;
}

/** A small seeded generator (mulberry32), so a failing case can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes that stress the shim: secrets (whole, cut, one inside another), newlines, CRs, quotes, bad UTF-8. */
function nastyBytes(next: () => number, secrets: string[], size: number): Buffer {
  const parts: Buffer[] = [];
  let length = 0;
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const fragments = [
    '\n',
    '\r\n',
    '"',
    '\\',
    '\t',
    '\u0001',
    '\u001f',
    '\u007f',
    'é',
    '€',
    '😀',
    '\u2028',
    'plain text ',
    'x'.repeat(70),
  ];
  while (length < size) {
    const roll = next();
    let part: Buffer;
    if (roll < 0.15) part = Buffer.from(pick(secrets));
    else if (roll < 0.25) {
      const secret = Buffer.from(pick(secrets));
      part = secret.subarray(0, 1 + Math.floor(next() * (secret.length - 1)));
    } else if (roll < 0.35) part = Buffer.from([0x80 + Math.floor(next() * 0x80)]);
    else if (roll < 0.4) part = Buffer.from([pick([0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xf5, 0xff])]);
    else part = Buffer.from(pick(fragments));
    parts.push(part);
    length += part.length;
  }
  return Buffer.concat(parts);
}

describe('the native instance shim', () => {
  it('writes what node would write for random bytes with secrets, in random chunks (differential)', async () => {
    const secrets = { A: 'hunter2-secret', B: 'hunter2-secret-longer', C: 'é-😀-key', D: 'x'.repeat(8) };
    for (const seed of [1, 2, 3]) {
      const next = random(seed);
      const maxLine = 64;
      const out = nastyBytes(next, Object.values(secrets), 20_000);
      const err = nastyBytes(next, Object.values(secrets), 5_000);
      const dir = mkdtempSync(join(tmpdir(), 'berth-shim-bytes-'));
      writeFileSync(join(dir, 'out.bin'), out);
      writeFileSync(join(dir, 'err.bin'), err);
      // Random chunk sizes, written one after the other: values and characters are cut across writes.
      const cuts = (total: number): number[] => {
        const list: number[] = [];
        for (let at = 0; at < total; at += 1 + Math.floor(next() * 300)) list.push(at);
        return [...list, total];
      };
      const app = `
        import { readFileSync, writeSync } from 'node:fs';
        const out = readFileSync(${JSON.stringify(join(dir, 'out.bin'))});
        const err = readFileSync(${JSON.stringify(join(dir, 'err.bin'))});
        const outCuts = ${JSON.stringify(cuts(out.length))};
        const errCuts = ${JSON.stringify(cuts(err.length))};
        for (let i = 1; i < outCuts.length; i++) writeSync(1, out.subarray(outCuts[i - 1], outCuts[i]));
        for (let i = 1; i < errCuts.length; i++) writeSync(2, err.subarray(errCuts[i - 1], errCuts[i]));
      `;
      const { logPath, status } = await runApp(app, {
        scrub: secrets,
        // A partial line is only written at the end: no quiet spell on a busy machine changes where lines break.
        tuning: { maxLineBytes: maxLine, partialFlushMs: 600_000 },
      });
      assert.deepEqual(status, { code: 0, signal: null });
      const written = lines(logPath);
      const parsed = written.map((line) => JSON.parse(line) as OutputRecord);
      // Each line is exactly node's JSON.stringify of the record.
      for (const [i, line] of written.entries())
        assert.equal(line, JSON.stringify(parsed[i]), `seed ${seed} line ${i}`);
      for (const [stream, bytes] of [
        ['out', out],
        ['err', err],
      ] as const) {
        assert.deepEqual(
          parsed.filter((r) => r.s === stream).map((r) => r.l),
          expectedLines(bytes, secrets, maxLine),
          `seed ${seed}, std${stream}`,
        );
      }
    }
  });

  it('writes a partial last line after a quiet spell, and the rest of it as the next line', async () => {
    const app = `
      import { existsSync, readFileSync } from 'node:fs';
      process.stdout.write('progress 50%');
      const deadline = Date.now() + 10_000;
      const poll = () => {
        if (existsSync(process.env.LOG_PATH) && readFileSync(process.env.LOG_PATH, 'utf8').includes('progress 50%')) {
          process.stdout.write(' done\\n');
        } else if (Date.now() < deadline) setTimeout(poll, 10);
      };
      poll();
    `;
    const { logPath } = await runApp(app, { tuning: { partialFlushMs: 20 } });
    assert.deepEqual(
      records(logPath).map((r) => r.l),
      ['progress 50%', ' done'],
    );
  });

  it('keeps a tail that may start a secret through a quiet spell, so a secret split by one is still scrubbed', async () => {
    const app = `
      import { existsSync, readFileSync } from 'node:fs';
      process.stdout.write('connecting with post');
      const deadline = Date.now() + 10_000;
      const poll = () => {
        if (existsSync(process.env.LOG_PATH) && readFileSync(process.env.LOG_PATH, 'utf8').includes('connecting with')) {
          process.stdout.write('gres://u:pw@db/x now\\n');
        } else if (Date.now() < deadline) setTimeout(poll, 10);
      };
      poll();
    `;
    const { logPath } = await runApp(app, {
      scrub: { DB_URL: 'postgres://u:pw@db/x' },
      tuning: { partialFlushMs: 20 },
    });
    assert.deepEqual(
      records(logPath).map((r) => r.l),
      ['connecting with ', '[secret:DB_URL] now'],
    );
  });

  it('splits very long lines at 16 KiB without cutting a UTF-8 character', async () => {
    const line = `${'a'.repeat(16 * 1024 - 1)}é${'b'.repeat(20_000)}`;
    const { logPath } = await runApp(`process.stdout.write(${JSON.stringify(`${line}\n`)});`);
    const pieces = records(logPath).map((r) => r.l);
    assert.equal(pieces.join(''), line);
    assert.equal(pieces.length, 3);
    for (const piece of pieces) assert.ok(Buffer.byteLength(piece) <= 16 * 1024);
  });

  it('keeps what the shell says when the command cannot run, and its code', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-shim-missing-'));
    const runtime = new ProcessRuntime({ cgroups: null });
    const ended = new Promise<ExitStatus>((resolve) => runtime.onExit((exit) => resolve(exit.status)));
    const logPath = join(dir, 'i.log');
    await runtime.start({
      instanceId: 'i',
      cwd: dir,
      command: 'no-such-command-here',
      env: { PATH: '/usr/bin:/bin' },
      logPath,
    });
    assert.deepEqual(await deadline(ended, 'the instance to end'), { code: 127, signal: null });
    assert.match(records(logPath)[0]!.l, /no-such-command-here: not found/);
    await runtime.close();
  });

  it('never makes the app wait for a slow disk: lines past its bounded queue are dropped, and counted', {
    skip: existsSync('/usr/bin/mkfifo') ? false : 'needs mkfifo (Debian package coreutils)',
  }, async () => {
    // The output "file" is a FIFO nobody reads until the app is done: the shim's writer blocks once its buffer
    // (64 KiB) is full, as on a stalled disk. Held open read-write here, so the shim can open it at once.
    const dir = mkdtempSync(join(tmpdir(), 'berth-shim-fifo-'));
    const logPath = join(dir, 'i.log');
    execFileSync('mkfifo', [logPath]);
    const done = join(dir, 'done');
    const holder = openSync(logPath, 'r+');
    const app = `
        import { writeFileSync } from 'node:fs';
        for (let i = 0; i < 200; i++) console.log('line ' + i + ' ' + 'x'.repeat(1000));
        writeFileSync(${JSON.stringify(done)}, '');
      `;
    const running = runApp(app, { logPath, tuning: { maxQueueBytes: 10_000 } });
    const deadline = Date.now() + DEADLINE_MS;
    while (!existsSync(done)) {
      if (Date.now() > deadline) throw new Error('the app never finished writing: it was blocked');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // Now read everything; the shim ends once its queue is written.
    const chunks: Buffer[] = [];
    const reader = createReadStream(logPath);
    reader.on('data', (chunk) => chunks.push(chunk as Buffer));
    const readAll = new Promise<void>((resolve) => reader.once('end', () => resolve()));
    // Opened before the holder closes: once the shim has exited (it may, when its lines fit the FIFO's buffer), the
    // holder is the only writer, and opening a FIFO with no writer blocks a thread-pool thread forever (the buffered
    // lines are thrown away with the last writer too). CI on Node 24 hung here for the whole test timeout.
    await once(reader, 'open', { signal: AbortSignal.timeout(DEADLINE_MS) });
    const { status } = await running;
    // The FIFO ends for the reader once its last writer (this holder, opened read-write) closes it.
    closeSync(holder);
    await readAll;
    assert.deepEqual(status, { code: 0, signal: null });
    const written = Buffer.concat(chunks)
      .toString('utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (JSON.parse(l) as OutputRecord).l);
    const markers = written.filter((l) => l.startsWith('[berth: '));
    const dropped = markers.reduce((total, marker) => {
      const count = /^\[berth: (\d+) lines dropped\]$/.exec(marker)?.[1];
      assert.ok(count !== undefined, marker);
      return total + Number(count);
    }, 0);
    assert.ok(dropped > 0, 'lines were dropped, and a marker says how many');
    assert.equal(written.length - markers.length + dropped, 200, 'every line is either written or counted');
  });
});
