// Enforces `resources.memory` from /proc samples: an app over its limit is killed, which the reconciler counts as a crash.
import type { Instance } from '../../domain/instance.js';
import type { Logger } from '../../lib/logger.js';
import { every, type Ticker } from '../../lib/ticker.js';
import { type ProcStat, readAllProcStats } from '../runtime/proc.js';
import type { EventStore } from '../store/event-store.js';
import type { Store } from '../store/store.js';

export interface MemoryLimiterOptions {
  store: Pick<Store, 'listServices' | 'listInstances'>;
  events: Pick<EventStore, 'record'>;
  log: Logger;
  /** How often to sample; default 1 s (an allocation burst can outrun a slower check). */
  intervalMs?: number;
  /** Samples in a row over the limit before the kill, so one transient peak is forgiven; default 2. */
  overSamples?: number;
  /** Injected for tests. */
  readProcs?: () => ProcStat[];
  kill?: (pid: number, signal: NodeJS.Signals) => void;
}

export const DEFAULT_MEMORY_CHECK_MS = 1000;

/**
 * Where the kernel cannot enforce a limit for us (cgroup v2 with a writable hierarchy), this does it: the resident
 * memory of an instance's app processes (its process group minus the shim that leads it; the shim's ~8 MB private
 * memory is the platform's, not the app's) is compared with `resources.memory`; over it for `overSamples` checks in a
 * row, the app processes get SIGKILL (what the kernel's OOM killer would send). The shim records the signal, the
 * reconciler sees the exit, records `instance.crashed` and starts a replacement under the crash-loop backoff.
 */
export class MemoryLimiter {
  readonly #options: MemoryLimiterOptions;
  readonly #over = new Map<string, number>();
  #ticker: Ticker | undefined;

  constructor(options: MemoryLimiterOptions) {
    this.#options = options;
  }

  start(): void {
    this.#ticker ??= every(this.#options.intervalMs ?? DEFAULT_MEMORY_CHECK_MS, () => void this.checkNow(), {
      name: 'memory limit check',
      log: this.#options.log,
    });
  }

  async stop(): Promise<void> {
    await this.#ticker?.stop();
    this.#ticker = undefined;
  }

  /** One check of every live instance whose service sets a memory limit; returns the ids of instances killed. */
  checkNow(): string[] {
    const { store } = this.#options;
    const limits = new Map<string, number>();
    for (const service of store.listServices()) {
      const limit = service.spec.resources?.memoryBytes;
      if (limit !== undefined) limits.set(`${service.app}/${service.name}`, limit);
    }
    if (limits.size === 0) {
      this.#over.clear();
      return [];
    }
    const instances = store
      .listInstances({ live: true })
      .filter((i) => i.pid !== null && limits.has(`${i.app}/${i.service}`));
    const members = new Map<number, ProcStat[]>();
    const leaders = new Set(instances.map((i) => i.pid!));
    for (const stat of (this.#options.readProcs ?? readAllProcStats)()) {
      if (!leaders.has(stat.pgrp) || stat.pid === stat.pgrp || stat.state === 'Z') continue;
      const list = members.get(stat.pgrp) ?? [];
      list.push(stat);
      members.set(stat.pgrp, list);
    }
    const killed: string[] = [];
    const seen = new Set<string>();
    for (const instance of instances) {
      seen.add(instance.id);
      const limit = limits.get(`${instance.app}/${instance.service}`)!;
      const apps = members.get(instance.pid!) ?? [];
      const rss = apps.reduce((total, stat) => total + stat.rssBytes, 0);
      if (rss <= limit) {
        this.#over.delete(instance.id);
        continue;
      }
      const count = (this.#over.get(instance.id) ?? 0) + 1;
      this.#over.set(instance.id, count);
      if (count < (this.#options.overSamples ?? 2)) continue;
      this.#over.delete(instance.id);
      this.#kill(instance, apps, rss, limit);
      killed.push(instance.id);
    }
    for (const id of [...this.#over.keys()]) if (!seen.has(id)) this.#over.delete(id);
    return killed;
  }

  #kill(instance: Instance, apps: readonly ProcStat[], rss: number, limit: number): void {
    const kill = this.#options.kill ?? ((pid, signal) => process.kill(pid, signal));
    this.#options.events.record({
      actor: 'limits',
      kind: 'instance.memory_exceeded',
      app: instance.app,
      service: instance.service,
      instance: instance.id,
      message: `${instance.id} uses ${mib(rss)} of its ${mib(limit)} memory limit: killed (SIGKILL), to be replaced`,
      data: { rssBytes: rss, limitBytes: limit, pids: apps.map((s) => s.pid) },
    });
    for (const stat of apps) {
      try {
        kill(stat.pid, 'SIGKILL');
      } catch {
        // Gone already: nothing left to enforce.
      }
    }
  }
}

function mib(bytes: number): string {
  return `${(bytes / 1_048_576).toFixed(1)} MiB`;
}
