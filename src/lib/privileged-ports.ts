// Whether this process may bind ports below 1024: root, CAP_NET_BIND_SERVICE, or a lowered unprivileged start.
import { readFileSync } from 'node:fs';

/** Bit of CAP_NET_BIND_SERVICE in the kernel's capability sets (linux/capability.h). */
const CAP_NET_BIND_SERVICE = 10n;

/** Reads a file as text, or undefined when it cannot be read; injectable for tests. */
export type ReadText = (path: string) => string | undefined;

const readText: ReadText = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

/**
 * True when `port` can be bound by this process (and by the children it starts, which inherit its user and
 * capabilities): any port from `net.ipv4.ip_unprivileged_port_start` up (1024 by default), or any port at all with
 * CAP_NET_BIND_SERVICE in the effective set (root has it unless a container dropped it).
 */
export function mayBindPort(port: number, read: ReadText = readText): boolean {
  const start = Number(read('/proc/sys/net/ipv4/ip_unprivileged_port_start')?.trim() ?? '1024');
  if (port >= (Number.isInteger(start) ? start : 1024)) return true;
  const status = read('/proc/self/status');
  const effective = status === undefined ? undefined : /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(status)?.[1];
  if (effective === undefined) return process.getuid?.() === 0;
  return ((BigInt(`0x${effective}`) >> CAP_NET_BIND_SERVICE) & 1n) === 1n;
}
