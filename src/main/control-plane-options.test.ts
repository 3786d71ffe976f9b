import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ArgumentError, parseControlPlaneArgs } from './control-plane-options.js';

describe('parseControlPlaneArgs', () => {
  it('takes ports and the listen address from the BERTH_* variables, with defaults', () => {
    const defaults = parseControlPlaneArgs(['--data-dir', '/d'], {}, () => false);
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
    const fromEnv = parseControlPlaneArgs([], env, () => true);
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

  it('defaults to ports 80 and 443 when the proxy may bind them, 8080 and 8443 otherwise', () => {
    const privileged = parseControlPlaneArgs([], {}, () => true);
    assert.deepEqual([privileged.httpPort, privileged.httpsPort], [80, 443]);
    const unprivileged = parseControlPlaneArgs([], {}, (port) => port >= 1024);
    assert.deepEqual([unprivileged.httpPort, unprivileged.httpsPort], [8080, 8443]);
    // 443 allowed but not 80 (ip_unprivileged_port_start = 443): both fall back, never a mixed pair.
    const mixed = parseControlPlaneArgs([], {}, (port) => port >= 443);
    assert.deepEqual([mixed.httpPort, mixed.httpsPort], [8080, 8443]);
    const flagged = parseControlPlaneArgs(['--http-port', '80', '--https-port', '443'], {}, () => false);
    assert.deepEqual([flagged.httpPort, flagged.httpsPort], [80, 443]);
  });

  it("reads the ACME CA (a URL, a known CA's name, or off), the contact and external account binding", () => {
    const defaults = parseControlPlaneArgs([], {});
    assert.deepEqual(defaults.acme, {
      directoryUrl: 'https://acme-v02.api.letsencrypt.org/directory',
      email: undefined,
      eab: undefined,
      dnsHook: undefined,
    });
    assert.equal(parseControlPlaneArgs(['--acme-directory', 'off'], {}).acme.directoryUrl, null);
    assert.equal(
      parseControlPlaneArgs([], { BERTH_ACME_DIRECTORY: 'letsencrypt-staging' }).acme.directoryUrl,
      'https://acme-staging-v02.api.letsencrypt.org/directory',
    );
    const custom = parseControlPlaneArgs(
      ['--acme-directory', 'https://127.0.0.1:14000/dir', '--acme-email', 'ops@example.com'],
      {
        BERTH_ACME_EAB_KID: 'kid-1',
        BERTH_ACME_EAB_HMAC_KEY: 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG4',
        BERTH_ACME_DNS_HOOK: './dns.sh',
      },
    );
    assert.deepEqual(custom.acme, {
      directoryUrl: 'https://127.0.0.1:14000/dir',
      email: 'ops@example.com',
      eab: { kid: 'kid-1', hmacKey: 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG4' },
      dnsHook: './dns.sh',
    });
  });

  it('refuses a directory that is not an https URL, a bad contact, and half an external account binding', () => {
    assert.throws(
      () => parseControlPlaneArgs(['--acme-directory', 'http://ca.example.com/dir'], {}),
      /^Error: --acme-directory: expected an https:\/\/ URL of an ACME directory, off, or one of letsencrypt, /,
    );
    assert.throws(
      () => parseControlPlaneArgs(['--acme-email', 'ops'], {}),
      /--acme-email: expected an e-mail/,
    );
    assert.throws(
      () => parseControlPlaneArgs(['--acme-eab-kid', 'k'], {}),
      /--acme-eab-kid needs its HMAC key in BERTH_ACME_EAB_HMAC_KEY/,
    );
    assert.throws(
      () => parseControlPlaneArgs([], { BERTH_ACME_EAB_HMAC_KEY: 'abc' }),
      /BERTH_ACME_EAB_HMAC_KEY is set but --acme-eab-kid is not/,
    );
  });
});
