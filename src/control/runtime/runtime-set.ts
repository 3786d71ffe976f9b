// The runtimes of one control plane as one `Runtime`: each instance goes to the runtime that runs it.
import type { InstanceUsage } from '../../domain/instance.js';
import type {
  InstanceExit,
  InstanceRef,
  ProcessHandle,
  Runtime,
  RuntimeKind,
  StartRequest,
  StopOutcome,
} from './runtime.js';

/**
 * Processes and containers behind one interface, so the reconciler, deployments and metrics stay runtime-blind:
 * a request with an image starts a container, any other a process; a recorded instance goes back to the runtime
 * its record names. The exit streams are merged (each instance still ends once: only its runtime reports it).
 */
export class RuntimeSet implements Runtime {
  readonly #runtimes: Record<RuntimeKind, Runtime>;

  constructor(runtimes: Record<RuntimeKind, Runtime>) {
    this.#runtimes = runtimes;
  }

  start(request: StartRequest): Promise<ProcessHandle> {
    return this.#runtimes[request.image === undefined ? 'process' : 'docker'].start(request);
  }

  adopt(ref: InstanceRef): Promise<void> {
    return this.#of(ref).adopt(ref);
  }

  stop(ref: InstanceRef, timeoutMs: number, signal?: NodeJS.Signals): Promise<StopOutcome> {
    return this.#of(ref).stop(ref, timeoutMs, signal);
  }

  async sample(refs: readonly InstanceRef[]): Promise<Map<string, InstanceUsage>> {
    const merged = new Map<string, InstanceUsage>();
    for (const [kind, runtime] of Object.entries(this.#runtimes)) {
      const own = refs.filter((ref) => (ref.runtime ?? 'process') === kind);
      if (own.length === 0) continue;
      for (const [id, usage] of await runtime.sample(own)) merged.set(id, usage);
    }
    return merged;
  }

  async reclaim(owned: readonly InstanceRef[]): Promise<number[]> {
    const killed: number[] = [];
    for (const [kind, runtime] of Object.entries(this.#runtimes))
      killed.push(...(await runtime.reclaim(owned.filter((ref) => (ref.runtime ?? 'process') === kind))));
    return killed;
  }

  onExit(listener: (exit: InstanceExit) => void): () => void {
    const unsubscribe = Object.values(this.#runtimes).map((runtime) => runtime.onExit(listener));
    return () => {
      for (const stop of unsubscribe) stop();
    };
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.#runtimes).map((runtime) => runtime.close()));
  }

  #of(ref: InstanceRef): Runtime {
    return this.#runtimes[ref.runtime ?? 'process'];
  }
}
