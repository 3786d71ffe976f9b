// Loopback ports: a free one for a server Berth starts, and whether one is still free.
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The lowest port handed out; the highest is the one below the kernel's ephemeral range. */
const FIRST_PORT = 20_000;
/** Below this many ports between FIRST_PORT and the ephemeral range, the kernel chooses instead. */
const MIN_RANGE = 1000;

/**
 * The ports Berth hands out: from FIRST_PORT up to the one below the kernel's ephemeral range
 * (`net.ipv4.ip_local_port_range`, 32768–60999 by default), as Kubernetes keeps its NodePorts (30000–32767) there.
 * A port of the ephemeral range can be taken by any outgoing connection on the machine (the proxy's to an
 * instance, a client's to an add-on) between the moment it was found free and the server's bind: a PostgreSQL
 * add-on failed to provision that way, "could not bind 127.0.0.1: Address already in use", under load. Below the
 * range only a server binding that very port explicitly can take it.
 */
function allocationRange(): { first: number; size: number } | undefined {
  let ephemeralLow = 32_768;
  try {
    ephemeralLow = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0],
    );
  } catch {
    // Not Linux, or no /proc: the kernel's default.
  }
  const size = ephemeralLow - FIRST_PORT;
  return Number.isInteger(size) && size >= MIN_RANGE ? { first: FIRST_PORT, size } : undefined;
}

/**
 * Where this process's next search starts: it moves on past every port handed out, so one control plane never
 * hands the same port out twice before its server could bind it (a random start keeps two processes apart).
 */
let cursor: number | undefined;

/**
 * A free port on 127.0.0.1 for a server about to start: the next one found free (nothing bound to it) in the
 * allocation range, or, without such a range or after 200 ports in use, one from the kernel (bind port 0).
 */
export async function allocatePort(): Promise<number> {
  const range = allocationRange();
  if (range !== undefined) {
    cursor ??= randomInt(range.size);
    for (let tries = 0; tries < 200; tries++) {
      const port = range.first + (cursor++ % range.size);
      if (await portIsFree(port)) return port;
    }
  }
  return kernelPort();
}

/** A free port chosen by the kernel: bind port 0, read what it gave, release it for its user. */
function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Whether nothing listens on 127.0.0.1:`port` (binding it succeeds). */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
