// The contract every Runtime passes (process, Docker, fake): one exit report per instance, stop outcomes, adoption by
// a later runtime, samples, output and scrubbing, secrets out of sight, OOM kills. A runtime joins with a harness.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type {
  ExitStatus,
  InstanceExit,
  InstanceRef,
  Runtime,
  StartRequest,
} from '../src/control/runtime/runtime.js';

/**
 * The apps the contract starts; each runtime's harness says how to run them. `prints` writes
 * `token=$CONTRACT_TOKEN` on stdout and `warning` on stderr, then exits 0; `exceeds memory` allocates without end;
 * `ignores SIGTERM` exits with code 7 on SIGINT.
 */
export type ContractApp = 'serves' | 'exits 3' | 'ignores SIGTERM' | 'prints' | 'exceeds memory';

/** A secret every contract app gets in its environment as `CONTRACT_TOKEN`, and the runtime is asked to scrub. */
export const CONTRACT_SECRET = { CONTRACT_TOKEN: 'contract-s3cr3t-value-9f2c' } as const;

export interface RuntimeHarness {
  name: string;
  /** A new runtime on the harness's machine: a second one stands for the control plane after a restart. */
  runtime(): Runtime;
  /** Prepares what the apps need (an image), once before the suite. */
  setup?(): Promise<void>;
  /** How to start `app` as `instanceId`, with `CONTRACT_SECRET` in its env and to scrub. */
  request(instanceId: string, app: ContractApp): StartRequest;
  /** Resolves once the app has started and set itself up (its signal handlers, for one). */
  ready(ref: InstanceRef): Promise<void>;
  /** Kills the app from outside the runtime, as `kill -9` or the OOM killer would. */
  kill(ref: InstanceRef, signal: NodeJS.Signals): void;
  /**
   * Everything about a running instance that others on the machine can read besides the app's own environment:
   * command lines of its processes, the runtime's records of it (a container's `docker inspect` without its env).
   */
  exposed(ref: InstanceRef): Promise<string>;
  /** Why this machine cannot enforce a memory limit for this runtime (no writable cgroup), or false. */
  noMemoryLimits?: string | false;
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
    const start = async (
      runtime: Runtime,
      app: ContractApp,
      extra: Partial<StartRequest> = {},
    ): Promise<InstanceRef> => {
      const request = { ...harness.request(`contract-${++n}`, app), ...extra };
      const handle = await runtime.start(request);
      const ref: InstanceRef = {
        ...handle,
        instanceId: request.instanceId,
        logPath: request.logPath,
        ...(request.limits ? { limits: request.limits } : {}),
        ...(request.image === undefined ? {} : { runtime: 'docker' as const }),
      };
      if (app === 'serves' || app === 'ignores SIGTERM') await harness.ready(ref);
      return ref;
    };

    before(async () => {
      await harness.setup?.();
    });

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

    it('stops an app with the signal asked for (a server whose clean shutdown is not SIGTERM)', async () => {
      const { runtime, exits } = open();
      const ref = await start(runtime, 'ignores SIGTERM');
      assert.equal(await runtime.stop(ref, 5000, 'SIGINT'), 'terminated');
      assert.deepEqual(status(await exits.next(ref.instanceId)), { code: 7, signal: null });
      assert.equal(exits.of(ref.instanceId).length, 1);
    });

    it('lets a later runtime adopt a running instance and report its end', async () => {
      const first = open();
      const ref = await start(first.runtime, 'serves');
      // The first control plane is gone: it reports nothing more.
      first.exits.unsubscribe();
      await first.runtime.close();
      const later = open();
      await later.runtime.adopt(ref);
      assert.equal(later.exits.of(ref.instanceId).length, 0, 'running: nothing to report');
      assert.ok((await later.runtime.sample([ref])).has(ref.instanceId), 'the adopted instance is sampled');
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
      await later.runtime.adopt(ref);
      const [exit] = later.exits.of(ref.instanceId);
      assert.ok(exit, 'reported before adopt resolved');
      assert.deepEqual(status(exit), { code: 3, signal: null });
      assert.equal(exit.missed, true);
    });

    it('lets a later runtime end the instances that no ref accounts for, and only those', async () => {
      const first = open();
      const kept = await start(first.runtime, 'serves');
      const lost = await start(first.runtime, 'serves');
      // The first control plane died before it recorded `lost`.
      first.exits.unsubscribe();
      await first.runtime.close();
      const later = open();
      await later.runtime.adopt(kept);
      const killed = await later.runtime.reclaim([kept]);
      assert.ok(killed.includes(lost.pid), `the unowned instance is ended (killed: ${killed.join(', ')})`);
      assert.ok(!killed.includes(kept.pid));
      const deadline = Date.now() + DEADLINE_MS;
      while ((await later.runtime.sample([lost])).has(lost.instanceId)) {
        assert.ok(Date.now() < deadline, 'the unowned instance is gone in time');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok((await later.runtime.sample([kept])).has(kept.instanceId), 'the owned instance runs on');
      assert.equal(await later.runtime.stop(kept, 5000), 'terminated');
    });

    it('samples the memory of running instances and nothing of ended ones', async () => {
      const { runtime, exits } = open();
      const running = await start(runtime, 'serves');
      const ended = await start(runtime, 'exits 3');
      await exits.next(ended.instanceId);
      const usage = await runtime.sample([running, ended]);
      assert.ok((usage.get(running.instanceId)?.memoryBytes ?? 0) > 0);
      assert.equal(usage.has(ended.instanceId), false);
      await runtime.stop(running, 5000);
    });

    it('writes the output of the app to its log file, one JSON line per line, with secret values scrubbed', async () => {
      const { runtime, exits } = open();
      const ref = await start(runtime, 'prints');
      assert.deepEqual(status(await exits.next(ref.instanceId)), { code: 0, signal: null });
      const text = readFileSync(ref.logPath, 'utf8');
      assert.equal(text.includes(CONTRACT_SECRET.CONTRACT_TOKEN), false, 'no secret value in the file');
      const lines = text
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { t: number; s: string; l: string });
      assert.deepEqual(
        lines.map(({ s, l }) => ({ s, l })).sort((a, b) => a.s.localeCompare(b.s)),
        [
          { s: 'err', l: 'warning' },
          { s: 'out', l: 'token=[secret:CONTRACT_TOKEN]' },
        ],
      );
      for (const line of lines) assert.ok(Math.abs(line.t - Date.now()) < 60_000, 'stamped with the time');
    });

    it('keeps secret values out of the command lines and records of a running instance', async () => {
      const { runtime } = open();
      const ref = await start(runtime, 'serves');
      const exposed = await harness.exposed(ref);
      assert.ok(exposed.length > 0, 'something is visible: the check looked');
      assert.equal(exposed.includes(CONTRACT_SECRET.CONTRACT_TOKEN), false, exposed);
      await runtime.stop(ref, 5000);
    });

    it('reports an app the kernel killed for going over its memory limit, with that limit', {
      skip: harness.noMemoryLimits ?? false,
    }, async () => {
      const { runtime, exits } = open();
      const limit = 64 * 1024 * 1024;
      const ref = await start(runtime, 'exceeds memory', { limits: { memoryBytes: limit } });
      const exit = await exits.next(ref.instanceId);
      assert.deepEqual(exit.status, { code: null, signal: 'SIGKILL', memoryLimitBytes: limit });
    });
  });
}
