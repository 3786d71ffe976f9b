// Integration: a real control plane keeps real processes at their desired count, across kills and restarts.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { InstanceView } from '../src/domain/api-types.js';
import {
  type ControlPlaneProcess,
  FIXTURE_APP,
  getJson,
  processExists,
  proxyUnavailable,
  runCli,
  shutDown,
  startControlPlane,
  tempDir,
  waitFor,
  writeApp,
} from './control-harness.js';

function specFor(app: string, instances: number, extra = ''): string {
  return [
    `app: ${app}`,
    'routes:',
    `  - host: ${app}.localhost`,
    '    service: web',
    'services:',
    '  web:',
    `    run: node ${FIXTURE_APP}/server.js`,
    `    instances: ${instances}`,
    '    health: { path: /health, interval: 200ms, timeout: 150ms, healthy: 1, unhealthy: 2, grace: 1s }',
    '    deploy: { stopTimeout: 5s }',
    extra,
  ].join('\n');
}

async function healthyInstances(
  plane: ControlPlaneProcess,
  app: string,
  count: number,
): Promise<InstanceView[]> {
  return waitFor(`${count} healthy instances of ${app}`, async () => {
    const live = await plane.client.instances({ app });
    return live.length === count && live.every((i) => i.state === 'healthy') ? live : undefined;
  });
}

// One control plane for both suites: the API and CLI input checks below change nothing (refused requests, a file
// mode, an app that does not exist), so they cannot disturb the apps of the first suite, nor it them.
describe('control plane', { skip: proxyUnavailable }, () => {
  const dataDir = tempDir('berth-control-');
  let plane: ControlPlaneProcess;

  before(async () => {
    plane = await startControlPlane(dataDir);
  });

  after(async () => {
    await shutDown(plane, dataDir);
  });

  describe('with the process runtime', () => {
    it('applies a spec with 3 instances and all 3 answer on their own ports', async () => {
      const dir = writeApp({ 'berth.yaml': specFor('shop', 3) });
      const result = await runCli(dataDir, ['apply'], dir);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /shop: release v1/);
      assert.match(result.stdout, /\+ web: 3 ×/);
      assert.match(result.stdout, /v1 is live/);
      const instances = await healthyInstances(plane, 'shop', 3);
      const answers = await Promise.all(instances.map((i) => getJson(i.port!)));
      assert.deepEqual(
        answers.map((a) => a?.instance).sort(),
        instances.map((i) => i.id).sort(),
        'each port is answered by its own instance',
      );
    });

    it('replaces an instance killed with SIGKILL', async () => {
      const before = await healthyInstances(plane, 'shop', 3);
      const victim = before[0]!;
      process.kill(victim.pid!, 'SIGKILL');
      const afterKill = await waitFor('a replacement', async () => {
        const live = await plane.client.instances({ app: 'shop' });
        const healthy = live.filter((i) => i.state === 'healthy');
        return healthy.length === 3 && !healthy.some((i) => i.id === victim.id) ? healthy : undefined;
      });
      const replacement = afterKill.find((i) => !before.some((b) => b.id === i.id))!;
      assert.ok(await getJson(replacement.port!), 'the replacement answers');
      const events = await plane.client.events({ app: 'shop' });
      assert.ok(
        events.some(
          (e) => e.kind === 'instance.crashed' && e.instance === victim.id && /SIGKILL/.test(e.message),
        ),
      );
    });

    it('restarts a command that exits at once with growing delays, visible in events', async () => {
      const dir = writeApp({
        'berth.yaml': ['app: crashy', 'services:', '  worker:', '    run: node -e "process.exit(3)"'].join(
          '\n',
        ),
      });
      const result = await runCli(dataDir, ['apply', '--no-wait'], dir);
      assert.equal(result.code, 0, result.stderr);
      const crashes = await waitFor(
        'four crashes',
        async () => {
          const events = await plane.client.events({ app: 'crashy', limit: 1000 });
          const crashed = events.filter((e) => e.kind === 'instance.crashed');
          return crashed.length >= 4 ? crashed : undefined;
        },
        20_000,
      );
      const delays = crashes.slice(0, 4).map((e) => e.data.backoffMs);
      assert.deepEqual(delays, [0, 1000, 2000, 4000]);
      assert.match(crashes[1]!.message, /exited with code 3.*next start in 1s \(crash-loop backoff\)/);
      const shown = await runCli(dataDir, ['events', 'crashy']);
      assert.match(shown.stdout, /crash-loop backoff/);
      await plane.client.down('crashy'); // clean-up, through the API (`berth down` is not the subject here)
    });

    it('scales a service up and down', async () => {
      const up = await runCli(dataDir, ['scale', 'shop', 'web=5']);
      assert.equal(up.code, 0, up.stderr);
      await healthyInstances(plane, 'shop', 5);
      const down = await runCli(dataDir, ['scale', 'shop', 'web=2']);
      assert.equal(down.code, 0, down.stderr);
      const remaining = await healthyInstances(plane, 'shop', 2);
      const stopped = await waitFor('3 stopped instances', async () => {
        const all = await plane.client.instances({ app: 'shop', all: true });
        const gone = all.filter((i) => i.state === 'stopped' && i.reason === 'scale_in');
        return gone.length === 3 ? gone : undefined;
      });
      for (const instance of stopped)
        assert.equal(processExists(instance.pid!), false, `${instance.id} is gone`);
      for (const instance of remaining) assert.ok(await getJson(instance.port!));
    });

    it('refuses a bad berth.yaml whole and leaves the running instances untouched', async () => {
      const before = await healthyInstances(plane, 'shop', 2);
      const dir = writeApp({ 'berth.yaml': specFor('shop', 4).replace('instances: 4', 'instances: four') });
      const result = await runCli(dataDir, ['apply'], dir);
      assert.equal(result.code, 1);
      // The error names the file as deployed, so its position can be opened as it is.
      assert.ok(
        result.stderr.includes(`${dir}/berth.yaml:8:16 services.web.instances: expected a whole number`),
        result.stderr,
      );
      const after = await plane.client.instances({ app: 'shop' });
      assert.deepEqual(after.map((i) => i.pid).sort(), before.map((i) => i.pid).sort());
      const status = await plane.client.app('shop');
      assert.equal(status.release, 1, 'no release was made');
      assert.equal(status.services[0]!.desired, 2);
    });

    it('re-adopts the same instances after a restart of the control plane and starts none twice', async () => {
      const before = await healthyInstances(plane, 'shop', 2);
      const startsBefore = (await plane.client.events({ limit: 10_000 })).filter(
        (e) => e.kind === 'instance.started',
      );
      await plane.stop();
      for (const instance of before)
        assert.ok(processExists(instance.pid!), 'instances outlive the control plane');
      plane = await startControlPlane(dataDir);
      const after = await healthyInstances(plane, 'shop', 2);
      assert.deepEqual(
        after.map((i) => `${i.id}:${i.pid}`).sort(),
        before.map((i) => `${i.id}:${i.pid}`).sort(),
      );
      const events = await plane.client.events({ limit: 10_000 });
      const startsAfter = events.filter((e) => e.kind === 'instance.started');
      assert.equal(startsAfter.length, startsBefore.length, 'nothing started again');
      assert.equal(events.filter((e) => e.kind === 'instance.adopted' && e.app === 'shop').length, 2);
    });

    it('records an instance that died while the control plane was down as crashed, and replaces it', async () => {
      const before = await healthyInstances(plane, 'shop', 2);
      await plane.stop();
      process.kill(before[0]!.pid!, 'SIGKILL');
      await waitFor('the killed instance to be gone', () =>
        processExists(before[0]!.pid!) ? undefined : true,
      );
      plane = await startControlPlane(dataDir);
      const after = await healthyInstances(plane, 'shop', 2);
      assert.ok(!after.some((i) => i.id === before[0]!.id));
      const events = await plane.client.events({ app: 'shop' });
      assert.ok(
        events.some(
          (e) =>
            e.kind === 'instance.crashed' &&
            e.instance === before[0]!.id &&
            /while the control plane was down/.test(e.message),
        ),
      );
    });

    it('rolls a changed environment: new instances start before the old ones stop', async () => {
      const before = await healthyInstances(plane, 'shop', 2);
      const dir = writeApp({ 'berth.yaml': specFor('shop', 2, '    env: { GREETING: hey }') });
      const result = await runCli(dataDir, ['apply'], dir);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /~ web: env GREETING/);
      const after = await healthyInstances(plane, 'shop', 2);
      assert.ok(after.every((i) => !before.some((b) => b.id === i.id)));
      for (const instance of after) assert.equal((await getJson(instance.port!))?.greeting, 'hey');
      const events = await plane.client.events({ app: 'shop', limit: 1000 });
      const firstNewHealthy = events.findIndex(
        (e) => e.kind === 'instance.healthy' && e.instance === after[0]!.id,
      );
      const firstOldStopping = events.findIndex(
        (e) => e.kind === 'instance.stopping' && e.instance === before[0]!.id,
      );
      assert.ok(
        firstNewHealthy >= 0 && firstNewHealthy < firstOldStopping,
        'old ones stop after new ones are healthy',
      );
    });

    it('replaces an instance that turns unhealthy, stopping it only after the replacement is healthy', async () => {
      const sickDir = tempDir('berth-sick-');
      const dir = writeApp({ 'berth.yaml': specFor('clinic', 1, `    env: { SICK_DIR: ${sickDir} }`) });
      assert.equal((await runCli(dataDir, ['apply'], dir)).code, 0);
      const [patient] = await healthyInstances(plane, 'clinic', 1);
      writeFileSync(join(sickDir, patient!.id), '');
      const [replacement] = await waitFor('a healthy replacement, alone', async () => {
        const live = await plane.client.instances({ app: 'clinic' });
        return live.length === 1 && live[0]!.id !== patient!.id && live[0]!.state === 'healthy'
          ? live
          : undefined;
      });
      const events = await plane.client.events({ app: 'clinic' });
      const order = (kind: string, id: string): number =>
        events.findIndex((e) => e.kind === kind && e.instance === id);
      assert.ok(order('instance.unhealthy', patient!.id) >= 0, 'the patient was seen unhealthy');
      assert.ok(
        order('instance.healthy', replacement!.id) < order('instance.stopping', patient!.id),
        'the replacement was healthy before the patient was stopped',
      );
      assert.match(
        events[order('instance.stopping', patient!.id)]!.message,
        /unhealthy, and its replacement is healthy/,
      );
      await plane.client.down('clinic');
    });
  });

  describe('API and CLI input', () => {
    it('answers 401 to a request without a token or with a wrong one', async () => {
      const none = await fetch(new URL('/v1/apps', plane.client.url));
      assert.equal(none.status, 401);
      assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'unauthorized');
      const wrong = await fetch(new URL('/v1/apps', plane.client.url), {
        headers: { authorization: 'Bearer nope' },
      });
      assert.equal(wrong.status, 401);
    });

    it('stores the admin token readable by its owner only', async () => {
      const { statSync } = await import('node:fs');
      assert.equal(statSync(`${dataDir}/admin-token`).mode & 0o777, 0o600);
    });

    it('names the bad field of an API request', async () => {
      await assert.rejects(plane.client.request('POST', '/v1/deploy', { directory: 'relative' }), {
        code: 'invalid_request',
        message: /body\.directory: must be an absolute path/,
      });
    });

    it('exits with 2 on a usage error and names the argument', async () => {
      const result = await runCli(dataDir, ['scale', 'shop', 'web=lots']);
      assert.equal(result.code, 2);
      assert.match(result.stderr, /web=lots: expected SERVICE=COUNT/);
      assert.equal((await runCli(dataDir, ['no-such-command'])).code, 2);
    });

    it('exits with 1 when the app does not exist', async () => {
      const result = await runCli(dataDir, ['scale', 'ghost', 'web=1']);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /no app named ghost/);
    });
  });
});
