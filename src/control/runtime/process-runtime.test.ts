// The process runtime with its real shim: output to one JSON-lines file, exit status, stop, bursts without loss.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
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

/** Running: in /proc and not a zombie (an orphan's zombie waits for init, which may take a while to reap it). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Polls `check` until it holds; fails after `ms` (and stops polling, so nothing keeps the test alive). */
async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The first `count` lines the app printed (numbers: pids), once they are in its output file. */
async function printedPids(logPath: string, count: number): Promise<number[]> {
  let pids: number[] = [];
  await until('the app to print its pids', () => {
    pids = records(logPath).map((r) => Number(r.l));
    return pids.length >= count;
  });
  return pids.slice(0, count);
}

/**
 * Another process (a control plane that then goes away or stops answering) starts `command` under the shim with
 * its own runtime; resolves with the handle it printed and the process itself.
 */
async function startElsewhere(
  command: string,
  owner?: string,
): Promise<{ handle: InstanceRef; logPath: string; starter: ReturnType<typeof spawn> }> {
  const logPath = join(mkdtempSync(join(tmpdir(), 'berth-runtime-')), 'app', 'i.log');
  const request = { instanceId: 'i', cwd: tmpdir(), command, env: { PATH: process.env.PATH ?? '' }, logPath };
  const script = `
    const { ProcessRuntime } = await import(${JSON.stringify(new URL('./process-runtime.js', import.meta.url).href)});
    const runtime = new ProcessRuntime({ cgroups: null, owner: ${JSON.stringify(owner)} });
    const handle = await runtime.start(${JSON.stringify(request)});
    process.stdout.write(JSON.stringify(handle) + '\\n');
    setInterval(() => {}, 1000);`;
  const starter = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const handle = await deadline(
    new Promise<InstanceRef>((resolve, reject) => {
      let out = '';
      starter.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('\n')) {
          const started = JSON.parse(out.split('\n')[0]!) as { pid: number; processStart: number };
          resolve({ ...started, instanceId: 'i', logPath });
        }
      });
      starter.once('exit', (code) => reject(new Error(`the starter exited with ${code}`)));
    }),
    10_000,
    'the other runtime to start the instance',
  );
  return { handle, logPath, starter };
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].some((path) => existsSync(path));

describe('an instance never outlives its shim', () => {
  it('ends the app the moment its shim dies, with nothing watching (parent-death signal)', {
    skip: SETPRIV ? false : 'needs setpriv (Debian package util-linux)',
  }, async () => {
    const { handle, logPath, starter } = await startElsewhere(
      `${process.execPath} -e 'console.log(process.pid); setInterval(() => {}, 1000)'`,
    );
    const [appPid] = await printedPids(logPath, 1);
    // The control plane that started it is gone: the shim's parent is now init, and no runtime looks at it.
    starter.kill('SIGKILL');
    process.kill(handle.pid, 'SIGKILL');
    await until('the app to die with its shim', () => !running(appPid!), 2000);
  });

  it('ends what is left of the group when it finds an adopted shim gone, even as an unreaped zombie', async () => {
    // The app (sh) has a child of its own, which no parent-death signal covers.
    const { handle, logPath, starter } = await startElsewhere(
      `/bin/sh -c 'echo $$; sleep 600 & echo $!; wait'`,
    );
    const [shPid, sleepPid] = await printedPids(logPath, 2);
    // The shim's parent stops reaping (as init may be slow to, or a container's never does): it stays a zombie.
    starter.kill('SIGSTOP');
    try {
      process.kill(handle.pid, 'SIGKILL');
      await until('the shim to be a zombie', () => !running(handle.pid));
      assert.ok(existsSync(`/proc/${handle.pid}`), 'the shim is a zombie, not reaped');
      assert.ok(running(sleepPid!), "the app's child is still there");
      const adopter = new ProcessRuntime({ cgroups: null });
      const exits: string[] = [];
      adopter.onExit((exit) => exits.push(exit.instanceId));
      adopter.adopt(handle);
      assert.deepEqual(exits, ['i'], 'reported gone on adoption');
      await until('the rest of the group to be ended', () => !running(sleepPid!) && !running(shPid!));
      await adopter.close();
    } finally {
      starter.kill('SIGKILL');
    }
  });

  it('reclaims the processes of its owner that no handle accounts for, and only those', async () => {
    const owner = randomBytes(8).toString('hex');
    const app = `${process.execPath} -e 'console.log(process.pid); setInterval(() => {}, 1000)'`;
    const kept = await startElsewhere(app, owner);
    const lost = await startElsewhere(app, owner);
    const other = await startElsewhere(app, randomBytes(8).toString('hex'));
    const [keptApp = 0, lostApp = 0, otherApp = 0] = await Promise.all(
      [kept, lost, other].map(async (s) => (await printedPids(s.logPath, 1))[0]!),
    );
    for (const s of [kept, lost, other]) s.starter.kill('SIGKILL');
    const runtime = new ProcessRuntime({ cgroups: null, owner });
    try {
      const killed = await runtime.reclaim([kept.handle]);
      // Both are found before either is killed, so both are reported whichever comes first in /proc.
      assert.deepEqual(
        [...killed].sort((a, b) => a - b),
        [lost.handle.pid, lostApp].sort((a, b) => a - b),
        'the unowned shim and its app are killed, and nothing else',
      );
      await until('the unowned instance to be gone', () => !running(lostApp) && !running(lost.handle.pid));
      assert.ok(running(keptApp) && running(kept.handle.pid), 'the owned instance runs on');
      assert.ok(running(otherApp), "another owner's instance runs on");
    } finally {
      for (const s of [kept, other]) process.kill(-s.handle.pid, 'SIGKILL');
    }
  });
});
