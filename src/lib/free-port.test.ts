// Port allocation: below the kernel's ephemeral range, never the same port twice in a row, past ports in use.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { describe, it } from 'node:test';
import { allocatePort, portIsFree } from './free-port.js';

const ephemeralLow = Number(
  readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0],
);

async function listenOn(port: number): Promise<Server | undefined> {
  const server = createServer();
  server.listen(port, '127.0.0.1');
  const [outcome] = await Promise.race([once(server, 'listening').then(() => ['ok']), once(server, 'error')]);
  return outcome === 'ok' ? server : undefined;
}

describe('allocatePort', () => {
  it('hands out free ports below the ephemeral range, none twice', async () => {
    const ports = [];
    for (let i = 0; i < 50; i++) ports.push(await allocatePort());
    assert.equal(new Set(ports).size, ports.length, 'no port twice');
    for (const port of ports) {
      assert.ok(port >= 20_000 && port < ephemeralLow, `${port} is in 20000..${ephemeralLow - 1}`);
    }
    const server = await listenOn(ports.at(-1)!);
    assert.ok(server, 'a server can bind the port it was given');
    server.close();
  });

  it('passes over ports a server holds', async () => {
    const first = await allocatePort();
    const held = (await Promise.all([listenOn(first + 1), listenOn(first + 2)])).filter(
      (s) => s !== undefined,
    );
    try {
      const next = await allocatePort();
      assert.ok(next !== first + 1 && next !== first + 2, `${next} is not a held port`);
      assert.equal(await portIsFree(next), true);
    } finally {
      for (const server of held) server.close();
    }
  });
});
