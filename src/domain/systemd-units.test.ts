import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { requireTool } from '../../test/require-tool.js';
import { CONTROL_UNIT, PROXY_UNIT, renderUnits, type SystemdInstall } from './systemd-units.js';

/** This checkout: dist/ exists beside the compiled test, so ExecStart's script paths are real. */
const INSTALL_DIR = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
const INSTALL: SystemdInstall = {
  node: process.execPath,
  installDir: INSTALL_DIR,
  dataDir: '/var/lib/berth',
  user: 'berth',
  httpPort: 80,
  httpsPort: 443,
  apiPort: 7070,
};

/** `systemd-analyze verify` on the units written to a directory: its complaints, or '' when there are none. */
function verify(install: SystemdInstall): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-units-'));
  const units = renderUnits(install);
  for (const unit of units) writeFileSync(join(dir, unit.name), unit.text);
  const result = spawnSync('systemd-analyze', ['verify', ...units.map((u) => join(dir, u.name))], {
    encoding: 'utf8',
  });
  return `${result.status === 0 ? '' : `exit ${result.status}\n`}${result.stdout}${result.stderr}`.trim();
}

function unitText(name: string, install = INSTALL): string {
  return renderUnits(install).find((u) => u.name === name)!.text;
}

describe('systemd units', () => {
  it('runs the proxy as its own unit, with only CAP_NET_BIND_SERVICE to bind ports below 1024', () => {
    const proxy = unitText(PROXY_UNIT);
    assert.match(
      proxy,
      /^ExecStart=\S+ \S+\/dist\/src\/main\/proxy-keeper\.js --data-dir \/var\/lib\/berth --http-port 80 --https-port 443$/m,
    );
    assert.match(proxy, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    assert.match(proxy, /^AmbientCapabilities=CAP_NET_BIND_SERVICE$/m);
    assert.match(proxy, /^CapabilityBoundingSet=CAP_NET_BIND_SERVICE$/m);
    assert.match(proxy, /^User=berth$/m);
    assert.match(proxy, /^Restart=always$/m);
    const high = unitText(PROXY_UNIT, { ...INSTALL, httpPort: 8080, httpsPort: 8443, listen: '127.0.0.1' });
    assert.doesNotMatch(high, /CAP_NET_BIND_SERVICE/);
    assert.match(high, / --host 127\.0\.0\.1$/m);
  });

  it('stops only the control plane process, never the apps, and waits for the proxy unit instead of starting one', () => {
    const control = unitText(CONTROL_UNIT);
    assert.match(control, /^KillMode=process$/m);
    assert.match(control, /--api-port 7070 --external-proxy$/m);
    assert.match(control, /^Wants=network-online\.target berth-proxy\.service$/m);
    assert.doesNotMatch(control, /Requires=|BindsTo=/, 'a proxy restart never restarts the control plane');
  });

  it('quotes paths with spaces and escapes % for systemd', () => {
    const odd = unitText(CONTROL_UNIT, { ...INSTALL, dataDir: '/srv/my berth/100%' });
    assert.match(odd, /--data-dir "\/srv\/my berth\/100%%"/);
  });

  it('writes units that systemd-analyze verify accepts', {
    skip: requireTool('systemd-analyze', 'systemd'),
  }, () => {
    assert.equal(verify(INSTALL), '');
    assert.equal(
      verify({ ...INSTALL, user: undefined, httpPort: 8080, httpsPort: 8443, dataDir: '/srv/my berth' }),
      '',
    );
    // The check can fail: a unit naming a missing executable is refused.
    assert.match(verify({ ...INSTALL, node: '/nonexistent/node' }), /not executable|No such file/);
  });
});
