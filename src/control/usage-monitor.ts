// Samples CPU and memory of every live instance every few seconds, so reads show a recent figure at no cost.
import type { Instance, InstanceUsage } from '../domain/instance.js';
import type { Logger } from '../lib/logger.js';
import { every, type Ticker } from '../lib/ticker.js';
import { type InstanceRef, instanceRef, type Runtime } from './runtime/runtime.js';
import type { Store } from './store/store.js';

export class UsageMonitor {
  readonly #store: Store;
  readonly #runtime: Runtime;
  readonly #log: Logger;
  #latest = new Map<string, InstanceUsage>();
  #ticker: Ticker | undefined;
  readonly #others: () => InstanceRef[];

  /**
   * `others`: processes the runtime runs besides instances (add-on servers), sampled in the same call (the
   * runtime's CPU figures are deltas between its samples: it has one sampler).
   */
  constructor(store: Store, runtime: Runtime, log: Logger, others: () => InstanceRef[] = () => []) {
    this.#store = store;
    this.#runtime = runtime;
    this.#log = log;
    this.#others = others;
  }

  start(intervalMs = 2000): void {
    this.#ticker ??= every(intervalMs, () => this.sampleNow(), {
      name: 'usage sampling',
      log: this.#log,
      immediate: true,
    });
  }

  async stop(): Promise<void> {
    await this.#ticker?.stop();
    this.#ticker = undefined;
  }

  async sampleNow(): Promise<void> {
    const refs = this.#store
      .listInstances({ live: true })
      .map((instance) => instanceRef(instance))
      .filter((ref): ref is InstanceRef => ref !== null);
    this.#latest = await this.#runtime.sample([...refs, ...this.#others()]);
  }

  usageOf(instance: Instance): InstanceUsage | null {
    return this.#latest.get(instance.id) ?? null;
  }

  /** The latest sample of a process by its runtime id (an instance's or an add-on server's). */
  usageById(id: string): InstanceUsage | null {
    return this.#latest.get(id) ?? null;
  }
}
