// Reading Linux's /proc: a process's identity (start time), state, process group and CPU/memory counters.
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';

export interface ProcStat {
  pid: number;
  /** One-letter state: R, S, D, Z (zombie), T, ... */
  state: string;
  pgrp: number;
  /** User + system CPU time, in clock ticks. */
  cpuTicks: number;
  /** Start time in clock ticks since boot. */
  startTicks: number;
  /** Resident set size in bytes. */
  rssBytes: number;
}

let ticksPerSecond: number | undefined;
let pageSize: number | undefined;

// The kernel hands every process these two values in its auxiliary vector (AT_CLKTCK, AT_PAGESZ): reading them
// there spares a control plane two synchronous `getconf` runs at start.
const AT_PAGESZ = 6;
const AT_CLKTCK = 17;

/** A value of this process's auxiliary vector (64-bit entries of key and value), else undefined. */
function auxValue(key: number): number | undefined {
  try {
    const vector = readFileSync('/proc/self/auxv');
    for (let at = 0; at + 16 <= vector.length; at += 16) {
      const found = Number(vector.readBigUInt64LE(at));
      if (found === 0) break; // AT_NULL ends the vector
      if (found === key) return Number(vector.readBigUInt64LE(at + 8));
    }
  } catch {
    // Not Linux, or /proc not mounted: getconf answers instead.
  }
  return undefined;
}

function sysconf(auxKey: number, name: string, fallback: number): number {
  const fromVector = auxValue(auxKey);
  if (fromVector !== undefined && fromVector > 0) return fromVector;
  try {
    const value = Number.parseInt(execFileSync('getconf', [name], { encoding: 'utf8' }).trim(), 10);
    return Number.isFinite(value) && value > 0 ? value : fallback;
  } catch {
    return fallback;
  }
}

export function clockTicksPerSecond(): number {
  ticksPerSecond ??= sysconf(AT_CLKTCK, 'CLK_TCK', 100);
  return ticksPerSecond;
}

export function bytesPerPage(): number {
  pageSize ??= sysconf(AT_PAGESZ, 'PAGESIZE', 4096);
  return pageSize;
}

/** Parses /proc/PID/stat; the command name may hold spaces and parentheses, so fields are read after the last `)`. */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const pid = Number.parseInt(text.slice(0, open), 10);
  // Fields after the name start at field 3 (state); field n is at index n - 3.
  const fields = text.slice(close + 2).split(' ');
  const field = (n: number): number => Number(fields[n - 3]);
  return {
    pid,
    state: fields[0] ?? '?',
    pgrp: field(5),
    cpuTicks: field(14) + field(15),
    startTicks: field(22),
    rssBytes: field(24) * bytesPerPage(),
  };
}

/** One buffer for every read: a stat line is a few hundred bytes (the command name is at most 64). */
const statBuffer = Buffer.alloc(4096);

export function readProcStat(pid: number): ProcStat | undefined {
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/stat`, 'r');
  } catch {
    return undefined;
  }
  try {
    const length = readSync(fd, statBuffer, 0, statBuffer.length, 0);
    return parseProcStat(statBuffer.toString('latin1', 0, length));
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Every process on the machine, for summing usage per process group. A scan reads one small file per process
 * (about 10 µs each): callers scan every few seconds at most.
 */
export function readAllProcStats(): ProcStat[] {
  const stats: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (name.charCodeAt(0) < 48 || name.charCodeAt(0) > 57) continue;
    const stat = readProcStat(Number(name));
    if (stat) stats.push(stat);
  }
  return stats;
}
