// The process runtime with its real shim: output to one JSON-lines file, exit status, stop, bursts without loss.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { OutputRecord } from './output-log.js';
import { exitPathOf, ProcessRuntime } from './process-runtime.js';
import type { ExitStatus, InstanceRef } from './runtime.js';

function records(path: string): OutputRecord[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as OutputRecord);
}

/** Starts `script` (node -e) under the shim and resolves with its handle and a promise of its exit. */
async function run(
  runtime: ProcessRuntime,
  script: string,
  scrub: Record<string, string> = {},
): Promise<{ handle: InstanceRef; logPath: string; exited: Promise<ExitStatus> }> {
  const logPath = join(mkdtempSync(join(tmpdir(), 'berth-runtime-')), 'app', 'i.log');
  let resolveExit: (status: ExitStatus) => void = () => {};
  const exited = new Promise<ExitStatus>((resolve) => {
    resolveExit = resolve;
  });
  const started = await runtime.start({
    instanceId: 'i',
    cwd: tmpdir(),
    command: `${process.execPath} -e '${script}'`,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SECRET: scrub.SECRET ?? '' },
    logPath,
    scrub,
  });
  runtime.onExit((exit) => {
    if (exit.instanceId === 'i') resolveExit(exit.status);
  });
  return { handle: { ...started, instanceId: 'i', logPath }, logPath, exited };
}

function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms);
    }),
  ]);
}

describe('ProcessRuntime with the instance shim', () => {
  it('writes stdout and stderr as timestamped records in one file and reports the app exit code', async () => {
    const runtime = new ProcessRuntime();
    const before = Date.now();
    const { logPath, exited } = await run(
      runtime,
      'console.log("to out"); console.error("to err"); process.exitCode = 3;',
    );
    assert.deepEqual(await deadline(exited, 10_000, 'exit'), { code: 3, signal: null });
    const lines = records(logPath);
    assert.deepEqual(lines.map((r) => [r.s, r.l]).sort(), [
      ['err', 'to err'],
      ['out', 'to out'],
    ]);
    for (const record of lines) assert.ok(record.t >= before && record.t <= Date.now());
    assert.deepEqual(await recordedExit(logPath), { code: 3, signal: null });
    const file = JSON.parse(readFileSync(exitPathOf(logPath), 'utf8')) as { t: number };
    assert.ok(file.t >= before);
  });

  it('scrubs the secrets it was given from the app output, even split across writes', async () => {
    const runtime = new ProcessRuntime();
    const { logPath, exited } = await run(
      runtime,
      'const s = process.env.SECRET; process.stdout.write("k=" + s.slice(0, 5)); setTimeout(() => console.log(s.slice(5) + "!"), 30);',
      { SECRET: 'correct-horse-battery' },
    );
    await deadline(exited, 10_000, 'exit');
    assert.deepEqual(
      records(logPath).map((r) => r.l),
      ['k=[secret:SECRET]!'],
    );
  });

  it('keeps every line of a 100k-line burst', async () => {
    const runtime = new ProcessRuntime();
    const { logPath, exited } = await run(
      runtime,
      'let s = ""; for (let i = 0; i < 100000; i++) { s += "line " + i + "\\n"; if (s.length > 65536) { process.stdout.write(s); s = ""; } } process.stdout.write(s);',
    );
    assert.deepEqual(await deadline(exited, 30_000, 'exit'), { code: 0, signal: null });
    const lines = records(logPath);
    assert.equal(lines.length, 100_000);
    assert.equal(lines[0]!.l, 'line 0');
    assert.equal(lines[99_999]!.l, 'line 99999');
    assert.ok(!lines.some((r) => r.l.startsWith('[berth:')), 'no drop marker');
  });

  it('stops the whole group with SIGTERM and keeps what the app printed on the way out', async () => {
    const runtime = new ProcessRuntime();
    const { handle, logPath, exited } = await run(
      runtime,
      'process.on("SIGTERM", () => { console.log("bye"); process.exit(0); }); console.log("up"); setInterval(() => {}, 1000);',
    );
    await deadline(
      (async () => {
        while (!records(logPath).some((r) => r.l === 'up')) await new Promise((r) => setTimeout(r, 20));
      })(),
      10_000,
      'the app to print',
    );
    const usage = (await runtime.sample([handle])).get('i');
    assert.ok(usage && usage.memoryBytes > 0);
    assert.equal(await runtime.stop(handle, 5000), 'terminated');
    assert.deepEqual(await deadline(exited, 5000, 'exit event'), { code: 0, signal: null });
    assert.deepEqual(
      records(logPath).map((r) => r.l),
      ['up', 'bye'],
    );
  });

  it('kills the app when its shim is killed with SIGKILL, reporting the kill', async () => {
    const runtime = new ProcessRuntime();
    const { handle, logPath, exited } = await run(
      runtime,
      'console.log(process.pid); setInterval(() => {}, 1000);',
    );
    const appPid = await deadline(
      (async () => {
        for (;;) {
          const line = records(logPath)[0];
          if (line) return Number(line.l);
          await new Promise((r) => setTimeout(r, 20));
        }
      })(),
      10_000,
      'the app to print its pid',
    );
    process.kill(handle.pid, 'SIGKILL');
    assert.deepEqual(await deadline(exited, 5000, 'exit'), { code: null, signal: 'SIGKILL' });
    await deadline(
      (async () => {
        while (alive(appPid)) await new Promise((r) => setTimeout(r, 20));
      })(),
      5000,
      'the orphaned app to be killed',
    );
  });

  it('reports an app killed by a signal', async () => {
    const runtime = new ProcessRuntime();
    const { exited, logPath } = await run(runtime, 'process.kill(process.pid, "SIGKILL");');
    assert.deepEqual(await deadline(exited, 10_000, 'exit'), { code: null, signal: 'SIGKILL' });
    assert.deepEqual(await recordedExit(logPath), { code: null, signal: 'SIGKILL' });
  });
});

/** What a runtime that adopts the ended instance after a restart reports: the status its shim recorded. */
async function recordedExit(logPath: string): Promise<ExitStatus> {
  const later = new ProcessRuntime();
  const reported = new Promise<ExitStatus>((resolve) => later.onExit((exit) => resolve(exit.status)));
  later.adopt({ instanceId: 'i', pid: 2 ** 22 + 1, processStart: 1, logPath });
  return reported;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
