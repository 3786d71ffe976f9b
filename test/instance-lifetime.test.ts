// Integration: an instance never outlives its shim, however it was started or adopted, and nothing is left unowned.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ownerMark, ProcessRuntime } from '../src/control/runtime/process-runtime.js';
import type { InstanceView } from '../src/domain/api-types.js';
import {
  type ControlPlaneProcess,
  FIXTURE_APP,
  getJson,
  runCli,
  shutDown,
  startControlPlane,
  tempDir,
  waitFor,
  writeApp,
} from './control-harness.js';

const SPEC = [
  'app: keep',
  'services:',
  '  web:',
  `    run: node ${FIXTURE_APP}/server.js`,
  '    instances: 2',
  '    health: { path: /health, interval: 200ms, timeout: 150ms, healthy: 1, unhealthy: 2, grace: 1s }',
  '    deploy: { stopTimeout: 5s }',
].join('\n');

/** Running: in /proc and not a zombie (an orphan's zombie waits for init to reap it). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function processGroup(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return undefined;
  }
}

/** Every running process that carries this data dir's mark (shims, apps and their children). */
function markedProcesses(dataDir: string): number[] {
  const entry = `BERTH_OWNER=${ownerMark(dataDir)}`;
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const environ = readFileSync(`/proc/${name}/environ`, 'latin1').split('\0');
      if (environ.includes(entry) && running(Number(name))) found.push(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

async function appPid(instance: InstanceView): Promise<number> {
  const answer = await waitFor(`${instance.id} to answer`, () => getJson(instance.port!));
  return answer.pid as number;
}

describe('instances never outlive their shim', () => {
  const dataDir = tempDir('berth-lifetime-');
  let plane: ControlPlaneProcess;

  async function healthy(count: number, except: string[] = []): Promise<InstanceView[]> {
    return waitFor(`${count} healthy instances`, async () => {
      const live = await plane.client.instances({ app: 'keep' });
      return live.length === count && live.every((i) => i.state === 'healthy' && !except.includes(i.id))
        ? live
        : undefined;
    });
  }

  before(async () => {
    plane = await startControlPlane(dataDir);
    const result = await runCli(dataDir, ['deploy', writeApp({ 'berth.yaml': SPEC })]);
    assert.equal(result.code, 0, result.stderr + result.stdout);
  });

  after(async () => {
    await shutDown(plane, dataDir);
  });

  it('ends the app when the shim of an adopted instance is killed, and replaces the instance', async () => {
    const [victim] = await healthy(2);
    const app = await appPid(victim!);
    await plane.stop();
    plane = await startControlPlane(dataDir);
    await waitFor('the instances to be adopted', async () =>
      (await plane.client.events({ app: 'keep' })).some(
        (e) => e.kind === 'instance.adopted' && e.instance === victim!.id,
      )
        ? true
        : undefined,
    );

    process.kill(victim!.pid!, 'SIGKILL');
    await waitFor('the app of the killed shim to be gone', () => (running(app) ? undefined : true), 5000);
    await healthy(2, [victim!.id]);
    const crashed = (await plane.client.events({ app: 'keep' })).find(
      (e) => e.kind === 'instance.crashed' && e.instance === victim!.id,
    );
    assert.ok(crashed, 'the crash is recorded');
  });

  it('ends the processes of a start interrupted half-way at the next start', async () => {
    const live = await healthy(2);
    await plane.stop();
    // What a control plane that died between spawning an instance and recording it leaves: a marked shim and app
    // that no record owns.
    const stray = await new ProcessRuntime({ owner: ownerMark(dataDir), cgroups: null }).start({
      instanceId: 'keep.web.stray0',
      cwd: FIXTURE_APP,
      command: `node ${join(FIXTURE_APP, 'server.js')}`,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PORT: '0' },
      logPath: join(dataDir, 'logs', 'keep', 'keep.web.stray0.log'),
    });
    const strayProcesses = await waitFor('the stray app to run', () => {
      const found = markedProcesses(dataDir).filter((pid) => processGroup(pid) === stray.pid);
      return found.length >= 2 ? found : undefined;
    });

    plane = await startControlPlane(dataDir);
    await waitFor(
      'the stray processes to be ended',
      () => (strayProcesses.some(running) ? undefined : true),
      5000,
    );
    const reclaimed = (await plane.client.events({ limit: 1000 })).find(
      (e) => e.kind === 'runtime.reclaimed',
    );
    assert.ok(reclaimed, 'an event says so');
    assert.ok((reclaimed.data.pids as number[]).includes(stray.pid));
    const after = await healthy(2);
    assert.deepEqual(
      after.map((i) => i.id).sort(),
      live.map((i) => i.id).sort(),
      'the adopted instances run on untouched',
    );
  });

  it('leaves no process behind after berth down', async () => {
    await healthy(2);
    assert.ok(markedProcesses(dataDir).length >= 4, 'shims and apps carry the mark');
    const result = await runCli(dataDir, ['down', 'keep']);
    assert.equal(result.code, 0, result.stderr);
    await waitFor('every instance to stop', async () =>
      (await plane.client.instances({ app: 'keep' })).length === 0 ? true : undefined,
    );
    await waitFor('no marked process to remain', () =>
      markedProcesses(dataDir).length === 0 ? true : undefined,
    );
  });
});
