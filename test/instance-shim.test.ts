// Integration: the instance shim with a real control plane: an exit while the control plane is down keeps its code.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  type ControlPlaneProcess,
  processExists,
  proxyUnavailable,
  runCli,
  shutDown,
  startControlPlane,
  tempDir,
  waitFor,
  writeApp,
} from './control-harness.js';

const APP = `import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
createServer((req, res) => res.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');
const exitFile = join(process.env.EXIT_DIR, process.env.BERTH_INSTANCE);
setInterval(() => {
  if (existsSync(exitFile)) {
    console.log('told to exit: code 3');
    process.exit(3);
  }
}, 50);
`;

describe('instance shim', { skip: proxyUnavailable }, () => {
  const dataDir = tempDir('berth-shim-');
  const exitDir = tempDir('berth-shim-exit-');
  let plane: ControlPlaneProcess | undefined;

  after(async () => {
    await shutDown(plane, dataDir);
  });

  it('reports the exit code of an instance that exited while the control plane was down, with its last output', async () => {
    plane = await startControlPlane(dataDir);
    const spec = [
      'app: exits',
      'services:',
      '  web:',
      '    run: node server.mjs',
      '    instances: 1',
      '    health: { path: /, interval: 200ms, timeout: 150ms, healthy: 1, grace: 10s }',
      `    env: { EXIT_DIR: ${exitDir} }`,
    ].join('\n');
    const deployed = await runCli(dataDir, ['deploy', writeApp({ 'berth.yaml': spec, 'server.mjs': APP })]);
    assert.equal(deployed.code, 0, deployed.stderr + deployed.stdout);
    const [instance] = await waitFor('a healthy instance', async () => {
      const live = await plane!.client.instances({ app: 'exits' });
      return live.length === 1 && live[0]!.state === 'healthy' ? live : undefined;
    });

    await plane.stop();
    writeFileSync(join(exitDir, instance!.id), '');
    await waitFor('the instance to exit', () => (processExists(instance!.pid!) ? undefined : true), 10_000);
    plane = await startControlPlane(dataDir);

    const crashed = await waitFor('the crash to be recorded', async () =>
      (await plane!.client.events({ app: 'exits' })).find(
        (e) => e.kind === 'instance.crashed' && e.instance === instance!.id,
      ),
    );
    assert.match(crashed.message, /exited with code 3 while the control plane was down/);
    assert.equal(crashed.data.exitCode, 3);
    const logs = await runCli(dataDir, ['logs', 'exits', '--instance', instance!.id]);
    assert.match(
      logs.stdout,
      new RegExp(`${instance!.id.replace(/\./g, '\\.')}\\[out\\] told to exit: code 3`),
    );
  });
});
