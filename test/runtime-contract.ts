// The contract every Runtime passes (process, fake; Docker later): one exit report per instance, stop outcomes,
// adoption by a later runtime, samples. A runtime joins by giving a harness to `runtimeContract`.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type {
  ExitStatus,
  InstanceExit,
  InstanceRef,
  Runtime,
  StartRequest,
} from '../src/control/runtime/runtime.js';

/** The apps the contract starts; each runtime's harness says how to run them. */
export type ContractApp = 'serves' | 'exits 3' | 'ignores SIGTERM';

export interface RuntimeHarness {
  name: string;
  /** A new runtime on the harness's machine: a second one stands for the control plane after a restart. */
  runtime(): Runtime;
  /** How to start `app` as `instanceId`. */
  request(instanceId: string, app: ContractApp): StartRequest;
  /** Resolves once the app has started and set itself up (its signal handlers, for one). */
  ready(ref: InstanceRef): Promise<void>;
  /** Kills the app from outside the runtime, as `kill -9` or the OOM killer would. */
  kill(ref: InstanceRef, signal: NodeJS.Signals): void;
  /** Removes what the harness made (temp dirs, leftover instances). */
  cleanup?(): Promise<void>;
}

/** How long any one wait of the contract may take. */
const DEADLINE_MS = 15_000;

/** Collects a runtime's exit stream, and waits for an instance's end with a deadline. */
class ExitRecorder {
  readonly exits: InstanceExit[] = [];
  readonly #waiters = new Map<string, (exit: InstanceExit) => void>();
  readonly unsubscribe: () => void;

  constructor(runtime: Runtime) {
    this.unsubscribe = runtime.onExit((exit) => {
      this.exits.push(exit);
      this.#waiters.get(exit.instanceId)?.(exit);
    });
  }

  of(instanceId: string): InstanceExit[] {
    return this.exits.filter((exit) => exit.instanceId === instanceId);
  }

  next(instanceId: string): Promise<InstanceExit> {
    const seen = this.of(instanceId)[0];
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no exit of ${instanceId} within ${DEADLINE_MS}ms`)),
        DEADLINE_MS,
      );
      this.#waiters.set(instanceId, (exit) => {
        clearTimeout(timer);
        resolve(exit);
      });
    });
  }
}

function status(exit: InstanceExit): ExitStatus {
  return { code: exit.status.code, signal: exit.status.signal };
}

export function runtimeContract(harness: RuntimeHarness): void {
  describe(`Runtime contract: ${harness.name}`, () => {
    const runtimes: Runtime[] = [];
    let n = 0;
    const open = (): { runtime: Runtime; exits: ExitRecorder } => {
      const runtime = harness.runtime();
      runtimes.push(runtime);
      return { runtime, exits: new ExitRecorder(runtime) };
    };
    const start = async (runtime: Runtime, app: ContractApp): Promise<InstanceRef> => {
      const request = harness.request(`contract-${++n}`, app);
      const handle = await runtime.start(request);
      const ref = { ...handle, instanceId: request.instanceId, logPath: request.logPath };
      if (app !== 'exits 3') await harness.ready(ref);
      return ref;
    };

    after(async () => {
      for (const runtime of runtimes) await runtime.close();
      await harness.cleanup?.();
    });

    it('reports an app that exits on its own once, with its code', async () => {
      const { runtime, exits } = open();
      const ref = await start(runtime, 'exits 3');
      const exit = await exits.next(ref.instanceId);
      assert.deepEqual(status(exit), { code: 3, signal: null });
      assert.equal(exit.missed, false);
      assert.equal(await runtime.stop(ref, 1000), 'gone');
      assert.equal(exits.of(ref.instanceId).length, 1, 'reported once');
    });

    it('reports an app killed from outside with the signal', async () => {
      const { runtime, exits } = open();
      const ref = await start(runtime, 'serves');
      harness.kill(ref, 'SIGKILL');
      assert.deepEqual(status(await exits.next(ref.instanceId)), { code: null, signal: 'SIGKILL' });
    });

    it('stops an app with SIGTERM, and its end is reported once on the exit stream', async () => {
      const { runtime, exits } = open();
      const ref = await start(runtime, 'serves');
      assert.equal(await runtime.stop(ref, 5000), 'terminated');
      await exits.next(ref.instanceId);
      assert.equal(await runtime.stop(ref, 5000), 'gone');
      assert.equal(exits.of(ref.instanceId).length, 1);
    });

    it('kills an app that ignores SIGTERM once the stop timeout has passed', async () => {
      const { runtime, exits } = open();
      const ref = await start(runtime, 'ignores SIGTERM');
      assert.equal(await runtime.stop(ref, 300), 'killed');
      await exits.next(ref.instanceId);
      assert.equal(exits.of(ref.instanceId).length, 1);
    });

    it('lets a later runtime adopt a running instance and report its end', async () => {
      const first = open();
      const ref = await start(first.runtime, 'serves');
      // The first control plane is gone: it reports nothing more.
      first.exits.unsubscribe();
      await first.runtime.close();
      const later = open();
      later.runtime.adopt(ref);
      assert.equal(later.exits.of(ref.instanceId).length, 0, 'running: nothing to report');
      assert.ok(later.runtime.sample([ref]).has(ref.instanceId), 'the adopted instance is sampled');
      harness.kill(ref, 'SIGKILL');
      const exit = await later.exits.next(ref.instanceId);
      assert.deepEqual(status(exit), { code: null, signal: 'SIGKILL' });
      assert.equal(exit.missed, false);
    });

    it('reports an instance that ended while no runtime watched it on adoption, with how it ended', async () => {
      const first = open();
      const ref = await start(first.runtime, 'exits 3');
      await first.exits.next(ref.instanceId);
      first.exits.unsubscribe();
      await first.runtime.close();
      const later = open();
      later.runtime.adopt(ref);
      const [exit] = later.exits.of(ref.instanceId);
      assert.ok(exit, 'reported before adopt returned');
      assert.deepEqual(status(exit), { code: 3, signal: null });
      assert.equal(exit.missed, true);
    });

    it('samples the memory of running instances and nothing of ended ones', async () => {
      const { runtime, exits } = open();
      const running = await start(runtime, 'serves');
      const ended = await start(runtime, 'exits 3');
      await exits.next(ended.instanceId);
      const usage = runtime.sample([running, ended]);
      assert.ok((usage.get(running.instanceId)?.memoryBytes ?? 0) > 0);
      assert.equal(usage.has(ended.instanceId), false);
      await runtime.stop(running, 5000);
    });
  });
}
