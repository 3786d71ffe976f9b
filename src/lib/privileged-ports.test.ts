// Reading the capability set and the unprivileged port start from /proc-shaped text.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mayBindPort } from './privileged-ports.js';

const files =
  (status: string | undefined, start = '1024') =>
  (path: string): string | undefined =>
    path.endsWith('ip_unprivileged_port_start') ? `${start}\n` : status;

describe('mayBindPort', () => {
  it('allows any port from the unprivileged start up', () => {
    assert.equal(mayBindPort(8080, files('CapEff:\t0000000000000000\n')), true);
    assert.equal(mayBindPort(80, files('CapEff:\t0000000000000000\n', '80')), true);
    assert.equal(mayBindPort(443, files('CapEff:\t0000000000000000\n', '443')), true);
    assert.equal(mayBindPort(80, files('CapEff:\t0000000000000000\n', '443')), false);
  });

  it('allows ports below it with CAP_NET_BIND_SERVICE (bit 10) in the effective set only', () => {
    assert.equal(mayBindPort(80, files('Name:\tnode\nCapEff:\t000001ffffffffff\n')), true);
    assert.equal(mayBindPort(443, files('CapEff:\t0000000000000400\n')), true);
    assert.equal(mayBindPort(443, files('CapPrm:\t0000000000000400\nCapEff:\t00000000a80425fb\n')), true);
    assert.equal(mayBindPort(443, files('CapEff:\t00000000a80421fb\n')), false);
    assert.equal(mayBindPort(80, files('CapInh:\t0000000000000400\nCapEff:\t0000000000000000\n')), false);
  });
});
