// What the scale benchmark reads of a process in /proc: CPU time (nanoseconds, every thread) and memory (PSS).
import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time of every thread of `pid` in nanoseconds (the first field of each task's `schedstat`: time on a CPU),
 * finer than `stat`'s 10 ms ticks; NaN when the process is gone.
 */
export function cpuNs(pid: number): number {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return Number.NaN;
  }
  let total = 0;
  for (const task of tasks) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // A thread that ended meanwhile.
    }
  }
  return total;
}

/** Memory of `pid` from `smaps_rollup`, in bytes: proportional (shared pages divided among their users) and resident. */
export function memory(pid: number): { pss: number; rss: number; private: number } {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  } catch {
    return { pss: Number.NaN, rss: Number.NaN, private: Number.NaN };
  }
  const field = (name: string): number =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { pss: field('Pss'), rss: field('Rss'), private: field('Private_Clean') + field('Private_Dirty') };
}

/** The direct children of `pid` (every thread's). */
export function childrenOf(pid: number): number[] {
  const children: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return children;
  }
  for (const task of tasks) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (text !== '') children.push(...text.split(/\s+/).map(Number));
    } catch {
      // Gone meanwhile.
    }
  }
  return children;
}

/** `pid` and every process below it. */
export function treeOf(pid: number): number[] {
  const all = [pid];
  for (let i = 0; i < all.length; i++) all.push(...childrenOf(all[i]!));
  return all;
}

/** A set of processes in one role (the control plane, the shims...): CPU over a window and memory at its end. */
export class Role {
  readonly #start = new Map<number, number>();
  readonly pids: number[];

  constructor(
    readonly name: string,
    pids: readonly number[],
  ) {
    this.pids = [...pids];
  }

  begin(): void {
    for (const pid of this.pids) this.#start.set(pid, cpuNs(pid));
  }

  /** CPU used since `begin` by the processes still running, in nanoseconds. */
  cpuSinceBegin(): number {
    let total = 0;
    for (const pid of this.pids) {
      const used = cpuNs(pid) - (this.#start.get(pid) ?? Number.NaN);
      if (!Number.isNaN(used)) total += used;
    }
    return total;
  }

  memory(): { pss: number; rss: number; private: number } {
    const total = { pss: 0, rss: 0, private: 0 };
    for (const pid of this.pids) {
      const m = memory(pid);
      if (Number.isNaN(m.pss)) continue;
      total.pss += m.pss;
      total.rss += m.rss;
      total.private += m.private;
    }
    return total;
  }
}
