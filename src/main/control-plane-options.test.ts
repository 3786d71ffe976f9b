import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ArgumentError, parseControlPlaneArgs } from './control-plane-options.js';

describe('parseControlPlaneArgs', () => {
  it('takes ports and the listen address from the BERTH_* variables, with defaults', () => {
    const defaults = parseControlPlaneArgs(['--data-dir', '/d'], {});
    assert.deepEqual(
      [defaults.apiPort, defaults.httpPort, defaults.httpsPort, defaults.listen, defaults.dataDir],
      [7070, 8080, 8443, undefined, '/d'],
    );
    const env = {
      BERTH_API_PORT: '0',
      BERTH_HTTP_PORT: '9080',
      BERTH_HTTPS_PORT: '9443',
      BERTH_LISTEN: '127.0.0.1',
      BERTH_HOME: '/from-env',
    };
    const fromEnv = parseControlPlaneArgs([], env);
    assert.deepEqual(
      [fromEnv.apiPort, fromEnv.httpPort, fromEnv.httpsPort, fromEnv.listen, fromEnv.dataDir],
      [0, 9080, 9443, '127.0.0.1', '/from-env'],
    );
  });

  it('lets flags win over the environment, and keeps --port as the older name of --api-port', () => {
    const env = { BERTH_API_PORT: '1', BERTH_HTTP_PORT: '2' };
    const args = parseControlPlaneArgs(['--api-port', '7171', '--http-port', '80', '--listen', '::'], env);
    assert.deepEqual([args.apiPort, args.httpPort, args.listen], [7171, 80, '::']);
    assert.equal(parseControlPlaneArgs(['--port', '0'], env).apiPort, 0);
  });

  it('names the flag or the variable that holds a bad value', () => {
    assert.throws(() => parseControlPlaneArgs(['--https-port', 'x'], {}), {
      name: 'Error',
      message: '--https-port: expected a port number from 0 to 65535, got x',
    });
    assert.throws(
      () => parseControlPlaneArgs([], { BERTH_HTTP_PORT: '70000' }),
      /^Error: BERTH_HTTP_PORT: expected a port/,
    );
    assert.throws(() => parseControlPlaneArgs(['--listen', 'a b'], {}), /--listen: expected an address/);
    assert.throws(() => parseControlPlaneArgs(['--bogus'], {}), ArgumentError);
  });
});
