// Kernel-enforced resource limits per instance: a cgroup (v2, or v1's cpu and memory hierarchies) when Berth may make one.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** What a service asks for: memory in bytes, CPU in cores (0.5 = half of one core). */
export interface ResourceLimits {
  memoryBytes?: number;
  cpu?: number;
}

/** CFS period; the quota is `cpu × period`. 100 ms is the kernel's default period. */
const CPU_PERIOD_US = 100_000;

/** One instance's cgroup directories: the app's pid is written into each directory's `cgroup.procs`. */
export interface CgroupDriver {
  readonly kind: 'v1' | 'v2';
  /** Creates the instance's cgroups with `limits` set; returns the directories to join. */
  create(name: string, limits: ResourceLimits): string[];
  /** Removes the instance's cgroups (once no process is left in them); missing ones are ignored. */
  remove(name: string): void;
  /** SIGKILL to every process in the instance's cgroups, including those that left its process group. */
  kill(name: string): void;
  /** Removes every empty cgroup left by instances that ended while no runtime watched them (after a restart). */
  sweep(): void;
  /** How many of the instance's processes the kernel killed for going over its memory limit. */
  oomKills(name: string): number;
}

/**
 * The cgroup driver this machine allows, or null (no writable hierarchy: limits are then enforced from /proc).
 * Instances go under `berth/<scope>/`: each data dir (its owner mark) sweeps only its own cgroups, never those of
 * another Berth on the same machine whose instance is between its cgroup's creation and its first process.
 */
export function detectCgroups(root = '/sys/fs/cgroup', scope = 'shared'): CgroupDriver | null {
  const unified = join(root, 'cgroup.controllers');
  if (existsSync(unified)) {
    const controllers = readFileSync(unified, 'utf8').split(/\s+/);
    const parent = join(root, 'berth', scope);
    if (controllers.includes('cpu') && controllers.includes('memory') && canMake(parent)) {
      try {
        // Each level hands the controllers down to the next: berth/ to berth/<scope>/ to the instances.
        writeFileSync(join(root, 'berth', 'cgroup.subtree_control'), '+cpu +memory');
        writeFileSync(join(parent, 'cgroup.subtree_control'), '+cpu +memory');
        return new CgroupV2(parent);
      } catch {
        return null;
      }
    }
    return null;
  }
  const cpu = join(root, 'cpu', 'berth', scope);
  const memory = join(root, 'memory', 'berth', scope);
  return canMake(cpu) && canMake(memory) ? new CgroupV1(cpu, memory) : null;
}

function canMake(dir: string): boolean {
  try {
    mkdirSync(dir, { recursive: true });
    return true;
  } catch {
    return false;
  }
}

/** The `oom_kill N` count of a v1 `memory.oom_control` or a v2 `memory.events` file (0 if unreadable). */
function oomKillCount(file: string): number {
  try {
    return Number(/^oom_kill (\d+)$/m.exec(readFileSync(file, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** SIGKILL to each pid listed in `<dir>/cgroup.procs`; a missing cgroup or a process already gone is fine. */
function killProcs(dir: string): void {
  let pids: string[];
  try {
    pids = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n');
  } catch {
    return;
  }
  for (const pid of pids) {
    if (pid === '') continue;
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Exited meanwhile.
    }
  }
}

function sweepDir(parent: string): void {
  for (const name of readdirSync(parent, { withFileTypes: true })) {
    if (name.isDirectory()) removeDir(join(parent, name.name));
  }
}

function removeDir(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // Gone already, or a process is still in it: it is removed with the next instance of that name, never reused.
  }
}

class CgroupV1 implements CgroupDriver {
  readonly kind = 'v1';
  readonly #cpu: string;
  readonly #memory: string;

  constructor(cpu: string, memory: string) {
    this.#cpu = cpu;
    this.#memory = memory;
  }

  create(name: string, limits: ResourceLimits): string[] {
    const dirs: string[] = [];
    if (limits.cpu !== undefined) {
      const dir = join(this.#cpu, name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
      writeFileSync(
        join(dir, 'cpu.cfs_quota_us'),
        String(Math.max(1000, Math.round(limits.cpu * CPU_PERIOD_US))),
      );
      dirs.push(dir);
    }
    if (limits.memoryBytes !== undefined) {
      const dir = join(this.#memory, name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limits.memoryBytes));
      dirs.push(dir);
    }
    return dirs;
  }

  remove(name: string): void {
    removeDir(join(this.#cpu, name));
    removeDir(join(this.#memory, name));
  }

  kill(name: string): void {
    killProcs(join(this.#cpu, name));
    killProcs(join(this.#memory, name));
  }

  sweep(): void {
    sweepDir(this.#cpu);
    sweepDir(this.#memory);
  }

  oomKills(name: string): number {
    return oomKillCount(join(this.#memory, name, 'memory.oom_control'));
  }
}

class CgroupV2 implements CgroupDriver {
  readonly kind = 'v2';
  readonly #parent: string;

  constructor(parent: string) {
    this.#parent = parent;
  }

  create(name: string, limits: ResourceLimits): string[] {
    if (limits.cpu === undefined && limits.memoryBytes === undefined) return [];
    const dir = join(this.#parent, name);
    mkdirSync(dir, { recursive: true });
    if (limits.cpu !== undefined) {
      writeFileSync(
        join(dir, 'cpu.max'),
        `${Math.max(1000, Math.round(limits.cpu * CPU_PERIOD_US))} ${CPU_PERIOD_US}`,
      );
    }
    if (limits.memoryBytes !== undefined) writeFileSync(join(dir, 'memory.max'), String(limits.memoryBytes));
    return [dir];
  }

  remove(name: string): void {
    removeDir(join(this.#parent, name));
  }

  kill(name: string): void {
    const dir = join(this.#parent, name);
    try {
      // One write kills the whole cgroup at once (Linux 5.14+), so nothing can fork out of it meanwhile.
      writeFileSync(join(dir, 'cgroup.kill'), '1');
    } catch {
      killProcs(dir);
    }
  }

  sweep(): void {
    sweepDir(this.#parent);
  }

  oomKills(name: string): number {
    return oomKillCount(join(this.#parent, name, 'memory.events'));
  }
}
