// Samples CPU and memory of every live instance every few seconds, so reads show a recent figure at no cost.
import type { Instance, InstanceUsage } from '../domain/instance.js';
import type { Runtime } from './runtime/runtime.js';
import type { Store } from './store/store.js';

export class UsageMonitor {
  readonly #store: Store;
  readonly #runtime: Runtime;
  #latest = new Map<string, InstanceUsage>();
  #timer: NodeJS.Timeout | undefined;

  constructor(store: Store, runtime: Runtime) {
    this.#store = store;
    this.#runtime = runtime;
  }

  start(intervalMs = 2000): void {
    this.sampleNow();
    this.#timer = setInterval(() => this.sampleNow(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  sampleNow(): void {
    const live = this.#store
      .listInstances({ live: true })
      .filter((i) => i.pid !== null && i.processStart !== null);
    const usage = this.#runtime.sample(live.map((i) => ({ pid: i.pid!, processStart: i.processStart! })));
    const latest = new Map<string, InstanceUsage>();
    for (const instance of live) {
      const sample = usage.get(instance.pid!);
      if (sample) latest.set(instance.id, sample);
    }
    this.#latest = latest;
  }

  usageOf(instance: Instance): InstanceUsage | null {
    return this.#latest.get(instance.id) ?? null;
  }
}
