// Integration: `resources:` becomes kernel limits (a cgroup per instance) where the machine allows one.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { detectCgroups } from '../src/control/runtime/cgroups.js';
import { ownerMark } from '../src/control/runtime/process-runtime.js';
import type { InstanceView } from '../src/domain/api-types.js';
import {
  type ControlPlaneProcess,
  FIXTURE_APP,
  proxyUnavailable,
  runCli,
  shutDown,
  startControlPlane,
  tempDir,
  waitFor,
  writeApp,
} from './control-harness.js';

const driver = detectCgroups();
const CGROUP_ROOT = '/sys/fs/cgroup';

/**
 * The instance's cgroup directory for a controller (v1: one hierarchy per controller; v2: one unified tree), in
 * the scope of its data dir's owner mark.
 */
function cgroupDir(controller: 'cpu' | 'memory', dataDir: string, instance: string): string {
  const scope = ownerMark(dataDir);
  return driver?.kind === 'v2'
    ? join(CGROUP_ROOT, 'berth', scope, instance)
    : join(CGROUP_ROOT, controller, 'berth', scope, instance);
}

function childPidOf(shimPid: number): number {
  const children = readFileSync(`/proc/${shimPid}/task/${shimPid}/children`, 'utf8').trim().split(/\s+/);
  return Number(children[0]);
}

describe('resource limits', {
  skip: driver === null ? 'no writable cgroup hierarchy on this machine' : proxyUnavailable,
}, () => {
  const dataDir = tempDir('berth-limits-');
  let plane: ControlPlaneProcess;
  let instance: InstanceView;

  before(async () => {
    plane = await startControlPlane(dataDir);
    const spec = [
      'app: capped',
      'services:',
      '  web:',
      `    run: node ${FIXTURE_APP}/server.js`,
      // Lenient: the CPU test keeps the throttled app busy for over a second.
      '    health: { path: /health, interval: 500ms, timeout: 400ms, healthy: 1, unhealthy: 8, grace: 1s }',
      '    resources: { memory: 160Mi, cpu: 0.2 }',
    ].join('\n');
    const result = await runCli(dataDir, ['deploy', writeApp({ 'berth.yaml': spec })]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const [first] = await waitFor('a healthy instance', async () => {
      const live = await plane.client.instances({ app: 'capped' });
      return live.length === 1 && live[0]!.state === 'healthy' ? live : undefined;
    });
    instance = first!;
  });

  after(async () => {
    await shutDown(plane, dataDir);
  });

  it('puts the app, not its shim, in a cgroup with the limits of its service', () => {
    const app = childPidOf(instance.pid!);
    for (const controller of ['cpu', 'memory'] as const) {
      const procs = readFileSync(
        join(cgroupDir(controller, dataDir, instance.id), 'cgroup.procs'),
        'utf8',
      ).split('\n');
      assert.ok(procs.includes(String(app)), `the app (pid ${app}) is in the ${controller} cgroup`);
      assert.ok(!procs.includes(String(instance.pid)), 'the shim is not');
    }
    if (driver?.kind === 'v1') {
      assert.equal(
        readFileSync(join(cgroupDir('cpu', dataDir, instance.id), 'cpu.cfs_quota_us'), 'utf8').trim(),
        '20000',
      );
      assert.equal(
        readFileSync(join(cgroupDir('memory', dataDir, instance.id), 'memory.limit_in_bytes'), 'utf8').trim(),
        String(160 * 1024 * 1024),
      );
    } else {
      assert.equal(
        readFileSync(join(cgroupDir('cpu', dataDir, instance.id), 'cpu.max'), 'utf8').trim(),
        '20000 100000',
      );
    }
  });

  it('throttles the app to its CPU share', async () => {
    const started = Date.now();
    const response = await fetch(`http://127.0.0.1:${instance.port}/burn?ms=300`);
    assert.equal(response.status, 200);
    // 300 ms of CPU at 0.2 of a core takes at least 1.5 s of wall time (some slack for the first period).
    assert.ok(Date.now() - started >= 1200, `took ${Date.now() - started} ms`);
    const stat = readFileSync(join(cgroupDir('cpu', dataDir, instance.id), 'cpu.stat'), 'utf8');
    assert.match(stat, /nr_throttled [1-9]/);
  });

  it('kills an app over its memory limit; the instance is recorded as crashed and replaced', async () => {
    const [current] = await plane.client.instances({ app: 'capped' });
    const victim = current!.id;
    await fetch(`http://127.0.0.1:${current!.port}/hog?mb=200`).catch(() => undefined);
    await waitFor('the crash and a replacement', async () => {
      const events = await plane.client.events({ app: 'capped', limit: 200 });
      const crashed = events.some((e) => e.instance === victim && e.kind === 'instance.crashed');
      const live = await plane.client.instances({ app: 'capped' });
      return crashed && live.some((i) => i.id !== victim && i.state === 'healthy') ? true : undefined;
    });
    const exceeded = (await plane.client.events({ app: 'capped', limit: 200 })).find(
      (e) => e.kind === 'instance.memory_exceeded' && e.instance === victim,
    );
    assert.match(exceeded?.message ?? '', /of its 160\.0 MiB memory limit/);
    await waitFor('the cgroup of the crashed instance to be removed', () =>
      existsSync(cgroupDir('memory', dataDir, victim)) ? undefined : true,
    );
  });
});
