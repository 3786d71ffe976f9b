// The one loop that keeps every service at its desired count: observe → plan (pure) → apply, then wait for a kick.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Instance } from '../../domain/instance.js';
import { isLive } from '../../domain/instance.js';
import { DEFAULT_DRAIN_MS, DEFAULT_STOP_TIMEOUT_MS } from '../../domain/spec.js';
import type { TargetHealthStatus } from '../../domain/target-health.js';
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF, nextFailureCount } from '../../lib/backoff.js';
import type { Clock } from '../../lib/clock.js';
import { formatDuration } from '../../lib/duration.js';
import { allocatePort } from '../../lib/free-port.js';
import type { Logger } from '../../lib/logger.js';
import { every, type Ticker } from '../../lib/ticker.js';
import {
  describeExit,
  type ExitStatus,
  type InstanceExit,
  type InstanceRef,
  instanceRef,
  type Runtime,
} from '../runtime/runtime.js';
import type { EventInput, EventStore } from '../store/event-store.js';
import type { ServiceRecord, Store } from '../store/store.js';
import { homeTargetGroup } from '../traffic/target-groups.js';
import { type DesiredService, planChanges, type StopAction } from './plan.js';

/** Where an instance's secrets and app config come from (the secrets module's `SecretsService`). */
export interface InstanceSecrets {
  /** Current values of `names` for `app`; throws naming a missing one. */
  resolve(app: string, names: readonly string[]): Record<string, string>;
  /** The app's plain config vars (`berth config set`). */
  configVars(app: string): Record<string, string>;
}

/** Deployments in progress: told of failed instances (the circuit breaker), asked to conclude after each pass. */
export interface DeploymentWatcher {
  instanceFailed(instance: Instance, reason: string): void;
  checkProgress(): void;
}

/** Target health as the proxy (the one authority on it) last reported it: `TargetHealthFeed`. */
export interface TargetHealthView {
  healthOf(instanceId: string): Pick<TargetHealthStatus, 'health' | 'reason'> | undefined;
}

/** The load balancer as the reconciler needs it: send who takes traffic, and drain one before it stops. */
export interface TrafficControl {
  sync(): Promise<unknown>;
  drain(instance: Instance, drainMs: number): Promise<void>;
}

export interface ReconcilerOptions {
  store: Store;
  runtime: Runtime;
  clock: Clock;
  log: Logger;
  /** Instance output files go under `<logDir>/<app>/`. */
  logDir: string;
  /**
   * Target health from the proxy, for services with an HTTP health check; without it (tests of the runtime alone)
   * every service is judged by its runtime: running is healthy.
   */
  health?: TargetHealthView;
  /** Deployments in progress; without it instance failures only feed the crash-loop backoff. */
  deployments?: DeploymentWatcher;
  /** The proxy; without it instances run but take no routed traffic (tests of the runtime alone). */
  traffic?: TrafficControl;
  backoff?: BackoffOptions;
  /** Secrets and config vars for instances' environments; without it instances get only their spec's env. */
  secrets?: InstanceSecrets;
  /** Environment variables every instance inherits from the platform (PATH, HOME, ...). */
  baseEnv?: Record<string, string>;
  /** A free port for a new instance; by default one the kernel gives on 127.0.0.1. */
  allocatePort?: () => Promise<number>;
  /**
   * Processes the runtime runs that are not instances (add-on servers, supervised by their own module): counted as
   * owned when the processes no record accounts for are reclaimed.
   */
  otherProcesses?: () => InstanceRef[];
  /**
   * How often the loop looks whether anything it reads changed without waking it: a pass runs then only if the
   * store changed since the last one (its generation) or a backoff ended. Exits, health changes, applies and scales
   * wake it at once.
   */
  pollMs?: number;
  /** A full pass at least this often even when nothing seems to have changed: a resync, as Kubernetes has. */
  resyncMs?: number;
}

const ACTOR = 'reconciler';

export class Reconciler {
  readonly #options: Required<
    Omit<
      ReconcilerOptions,
      | 'health'
      | 'backoff'
      | 'baseEnv'
      | 'traffic'
      | 'secrets'
      | 'deployments'
      | 'allocatePort'
      | 'otherProcesses'
    >
  > & {
    otherProcesses: () => InstanceRef[];
    health: TargetHealthView | undefined;
    allocatePort: () => Promise<number>;
    events: EventStore;
    secrets: InstanceSecrets | undefined;
    backoff: BackoffOptions;
    baseEnv: Record<string, string>;
    traffic: TrafficControl | undefined;
    deployments: DeploymentWatcher | undefined;
  };
  readonly #stopping = new Map<string, Promise<void>>();
  /** Exits reported by the runtime, not yet applied to the store. */
  readonly #exits = new Map<string, InstanceExit>();
  #loop: Ticker | undefined;
  /** Something woke the loop since the last pass (a kick): the next tick passes whatever the store says. */
  #kicked = true;
  /** The store's generation when the last pass began, when it wants to look again, and when it ran. */
  #seen = { generation: -1, wakeAt: null as number | null, at: 0 };
  /** The adoption of what a previous control plane left running: the first pass waits for it. */
  #adopted: Promise<void> | undefined;

  constructor(options: ReconcilerOptions) {
    this.#options = {
      pollMs: 1000,
      resyncMs: 60_000,
      ...options,
      health: options.health,
      allocatePort: options.allocatePort ?? allocatePort,
      otherProcesses: options.otherProcesses ?? (() => []),
      events: options.store.events,
      backoff: options.backoff ?? DEFAULT_BACKOFF,
      traffic: options.traffic,
      deployments: options.deployments,
      secrets: options.secrets,
      baseEnv: options.baseEnv ?? platformEnv(process.env),
    };
    // The one way the reconciler learns an instance ended: it waits in `#exits` for the next pass.
    this.#options.runtime.onExit((exit) => {
      this.#exits.set(exit.instanceId, exit);
      this.kick();
    });
  }

  /**
   * Re-adopts the instances that survived a restart (before the first pass), then runs the loop until `stop`.
   * Resolves once the first pass has run: from then on the store says which instances still live (an instance
   * that died while the control plane was down is recorded), so the API can be trusted.
   */
  start(): Promise<void> {
    if (this.#loop) return Promise.resolve();
    const { log, clock } = this.#options;
    let firstPass!: () => void;
    const first = new Promise<void>((resolve) => {
      firstPass = resolve;
    });
    // A kick during a pass means something changed that the pass may have missed: the ticker looks again at once.
    this.#loop = every(
      this.#options.pollMs,
      async () => {
        try {
          // Adoption asks the runtimes (a container's engine over its socket); a failure is tried again next pass.
          this.#adopted ??= this.#adopt().catch((error: unknown) => {
            this.#adopted = undefined;
            throw error;
          });
          await this.#adopted;
          if (!this.#due()) return this.#seen.wakeAt === null ? undefined : this.#seen.wakeAt - clock.now();
          const wakeAt = await this.reconcileOnce();
          return wakeAt === null ? undefined : wakeAt - clock.now();
        } finally {
          firstPass();
        }
      },
      { name: 'reconcile pass', log, clock, immediate: true },
    );
    return first;
  }

  /** Stops the loop. Instances keep running: a restart of Berth disturbs no app. */
  async stop(): Promise<void> {
    await this.#loop?.stop();
    await Promise.all(this.#stopping.values());
    await this.#options.runtime.close();
  }

  /** Asks the loop to look again now (after an apply, a scale, an exit, a health change). */
  kick(): void {
    this.#kicked = true;
    this.#loop?.kick();
  }

  /**
   * Whether a pass could change anything: the loop was kicked, the store changed since the last pass began (a
   * write nobody kicked for, or the last pass's own), a backoff ends, exits wait, or the resync is due. An idle
   * control plane reads nothing: a pass re-reads every service and live instance and rebuilds the route table.
   */
  #due(): boolean {
    const { store, clock } = this.#options;
    const now = clock.now();
    return (
      this.#kicked ||
      this.#exits.size > 0 ||
      store.generation !== this.#seen.generation ||
      (this.#seen.wakeAt !== null && now >= this.#seen.wakeAt) ||
      now - this.#seen.at >= this.#options.resyncMs
    );
  }

  /** Resolves after the next full pass of the loop: used by callers that want to see its effect. */
  settled(): Promise<void> {
    this.#kicked = true;
    return this.#loop?.runNow() ?? Promise.resolve();
  }

  /**
   * One pass: observe (exits from the runtime, health from the proxy) → plan (pure) → apply (starts, stops, the
   * route table), then let deployments conclude. Returns when the loop should look again at the latest.
   */
  async reconcileOnce(): Promise<number | null> {
    const { store, clock } = this.#options;
    this.#kicked = false;
    this.#seen = { generation: store.generation, wakeAt: null, at: clock.now() };
    this.#observeExits();
    const services = store.listServices();
    const byName = new Map(services.map((s) => [`${s.app}/${s.name}`, s]));
    this.#observeHealth(byName);
    const live = store.listInstances({ live: true });
    const canaries = new Set(
      store
        .listDeployments({ state: 'canary' })
        .flatMap((d) => (d.canary?.services ?? []).map((name) => `${d.app}/${name}`)),
    );
    const plan = planChanges(
      services.map((s) => ({ ...toDesired(s), keepOutdated: canaries.has(`${s.app}/${s.name}`) })),
      live,
      clock.now(),
    );
    for (const action of plan.stop) this.#beginStop(action, live.find((i) => i.id === action.instanceId)!);
    for (const action of plan.start) {
      const service = byName.get(`${action.app}/${action.service}`)!;
      for (let n = 0; n < action.count; n++) await this.#startInstance(service);
    }
    await this.#options.traffic?.sync();
    this.#options.deployments?.checkProgress();
    // What was just started is looked at again at once: a service judged by its runtime is healthy when running.
    const wakeAt = plan.start.length > 0 ? clock.now() : plan.wakeAt;
    this.#seen.wakeAt = wakeAt;
    return wakeAt;
  }

  /**
   * Takes over the instances a previous control plane left running. The runtime reports those that are gone on
   * its exit stream (during `adopt`), so they end through the same path as any other exit.
   */
  async #adopt(): Promise<void> {
    const { store, runtime, events } = this.#options;
    for (const instance of store.listInstances({ live: true })) {
      const ref = instanceRef(instance, store.getService(instance.app, instance.service)?.spec.resources);
      if (ref === null) {
        // Started, but its process was never recorded: the control plane stopped in between.
        this.#recordCrash(instance, 'process gone while the control plane was down', null);
        continue;
      }
      await runtime.adopt(ref);
      if (this.#exits.has(instance.id)) continue;
      events.record({
        actor: 'system',
        kind: 'instance.adopted',
        app: instance.app,
        service: instance.service,
        instance: instance.id,
        message: `${instance.id} adopted after a restart of the control plane (pid ${instance.pid}, ${instance.state})`,
        data: { pid: instance.pid, state: instance.state },
      });
      if (instance.state === 'draining') this.#finishStop(instance, 'the stop was interrupted by a restart');
    }
    // Processes of ours that no live record accounts for (a start interrupted between the spawn and its record)
    // would run unowned and invisible: end them before anything new starts.
    const owned = store
      .listInstances({ live: true })
      .map((instance) => instanceRef(instance))
      .filter((ref): ref is InstanceRef => ref !== null);
    const reclaimed = await runtime.reclaim([...owned, ...this.#options.otherProcesses()]);
    if (reclaimed.length > 0) {
      events.record({
        actor: 'system',
        kind: 'runtime.reclaimed',
        message: `ended ${reclaimed.length} process${reclaimed.length === 1 ? '' : 'es'} of instances that no record owns (pid ${reclaimed.join(', ')}): left by a start the control plane did not finish`,
        data: { pids: reclaimed },
      });
    }
  }

  /**
   * Applies what the exit stream reported since the last pass (level-triggered: the reports wait in a map keyed by
   * instance until a pass reads them against the store). An exit nobody asked for is a crash; the end of an
   * instance being stopped is recorded by its stop.
   */
  #observeExits(): void {
    const { store } = this.#options;
    for (const [id, exit] of [...this.#exits]) {
      const instance = store.getInstance(id);
      if (!instance || !isLive(instance.state)) {
        this.#exits.delete(id);
        continue;
      }
      if (instance.state === 'draining') {
        if (this.#stopping.has(id)) continue;
        this.#exits.delete(id);
        this.#end(instance, 'stopped', 'stopped while the control plane was down', exit.status, {
          actor: 'system',
          kind: 'instance.stopped',
          app: instance.app,
          service: instance.service,
          instance: instance.id,
          message: `${instance.id} stopped while the control plane was down`,
          data: { outcome: 'gone', reason: instance.reason },
        });
        continue;
      }
      this.#exits.delete(id);
      const known = exit.status.code !== null || exit.status.signal !== null;
      const reason = !exit.missed
        ? describeExit(exit.status)
        : known
          ? `${describeExit(exit.status)} while the control plane was down`
          : 'process gone while the control plane was down';
      this.#recordCrash(instance, reason, known ? exit.status : null, exit.status.memoryLimitBytes);
    }
  }

  /**
   * The instance ended on its own (or never started): `crashed`, counted toward the crash-loop backoff. Killed for
   * going over its memory limit, it is first an `instance.memory_exceeded` event, in the same transaction.
   */
  #recordCrash(
    instance: Instance,
    reason: string,
    status: ExitStatus | null,
    memoryLimitBytes?: number,
  ): void {
    this.#options.store.transaction(() => {
      if (memoryLimitBytes !== undefined) {
        const limit = `${(memoryLimitBytes / 1_048_576).toFixed(1)} MiB`;
        this.#options.events.record({
          actor: 'limits',
          kind: 'instance.memory_exceeded',
          app: instance.app,
          service: instance.service,
          instance: instance.id,
          message: `${instance.id} used all of its ${limit} memory limit: killed by the kernel (OOM), to be replaced`,
          data: { limitBytes: memoryLimitBytes, by: 'kernel' },
        });
      }
      const failure = this.#countFailure(instance, 'instance.crashed', reason, status);
      this.#end(instance, 'crashed', reason, status, failure);
    });
    this.#options.deployments?.instanceFailed(instance, reason);
  }

  /**
   * A failed instance counts toward its service's crash-loop backoff; returns the event that says so, with the
   * numbers, for the transition that records the failure.
   */
  #countFailure(instance: Instance, kind: string, reason: string, status: ExitStatus | null): EventInput {
    const { store, clock, backoff } = this.#options;
    const now = clock.now();
    const upMs = now - instance.createdAt;
    const service = store.getService(instance.app, instance.service);
    const failures = service ? nextFailureCount(service.failures, upMs, backoff) : 1;
    const delay = service ? backoffDelay(failures, backoff) : 0;
    if (service) store.setRestartBackoff(service.app, service.name, failures, now + delay);
    return {
      actor: ACTOR,
      kind,
      app: instance.app,
      service: instance.service,
      instance: instance.id,
      message:
        `${instance.id} ${reason} after ${formatDuration(upMs)}; ` +
        (delay === 0
          ? 'replacing it now'
          : `${failures} failures in a row, next start in ${formatDuration(delay)} (crash-loop backoff)`),
      data: {
        reason,
        upMs,
        failures,
        backoffMs: delay,
        exitCode: status?.code ?? null,
        signal: status?.signal ?? null,
      },
    };
  }

  /** The last transition of an instance: `stopped` or `crashed`, with how its process ended. */
  #end(
    instance: Instance,
    state: 'stopped' | 'crashed',
    reason: string,
    status: ExitStatus | null,
    event: EventInput,
  ): void {
    this.#options.store.transitionInstance(instance.id, state, reason, {
      facts: {
        endedAt: this.#options.clock.now(),
        exitCode: status?.code ?? null,
        exitSignal: status?.signal ?? null,
      },
      event: () => event,
    });
  }

  async #startInstance(service: ServiceRecord): Promise<void> {
    const { store, runtime, events, clock } = this.#options;
    const id = `${service.app}.${service.name}.${randomBytes(3).toString('hex')}`;
    const port = await this.#options.allocatePort();
    // A container runs its release's image (resolved to a digest by the build); its environment is its image's.
    const image = service.spec.image;
    const instance = store.insertInstance({
      id,
      app: service.app,
      service: service.name,
      release: service.release,
      configHash: service.configHash,
      pid: null,
      processStart: null,
      port,
      createdAt: clock.now(),
      healthyAt: null,
      endedAt: null,
      exitCode: null,
      exitSignal: null,
      reason: null,
      logPath: join(this.#options.logDir, service.app, `${id}.log`),
      runtime: image === undefined ? 'process' : 'docker',
      targetGroup: homeTargetGroup(store.listDeployments({ app: service.app }), service.app, service.name),
    });
    let secrets: Record<string, string> = {};
    let configVars: Record<string, string> = {};
    try {
      secrets = this.#options.secrets?.resolve(service.app, service.spec.secrets) ?? {};
      configVars = this.#options.secrets?.configVars(service.app) ?? {};
    } catch (error) {
      this.#recordCrash(instance, `failed to start: ${(error as Error).message}`, null);
      return;
    }
    const env: Record<string, string> = {
      // A container keeps its image's PATH and HOME: the platform's would point at this machine's directories.
      ...(image === undefined ? this.#options.baseEnv : {}),
      ...service.spec.env,
      // Set with `berth config set`, so a later, deliberate change wins over the spec's default.
      ...configVars,
      ...secrets,
      PORT: String(port),
      BERTH_APP: service.app,
      BERTH_SERVICE: service.name,
      BERTH_INSTANCE: id,
      BERTH_RELEASE: `v${service.release}`,
    };
    try {
      const handle = await runtime.start({
        instanceId: id,
        cwd: service.sourceDir,
        command: service.spec.run,
        env,
        logPath: instance.logPath,
        scrub: secrets,
        ...(service.spec.resources ? { limits: service.spec.resources } : {}),
        ...(image === undefined
          ? {}
          : {
              image,
              labels: { app: service.app, service: service.name, release: `v${service.release}` },
            }),
      });
      // The process may already have exited (and been recorded) before we get here.
      if (store.getInstance(id)?.state === 'starting') store.setInstanceProcess(id, handle);
      events.record({
        actor: ACTOR,
        kind: 'instance.started',
        app: service.app,
        service: service.name,
        instance: id,
        message: `${id} started (v${service.release}, pid ${handle.pid}, port ${port}): ${describeCommand(service.spec)}`,
        data: { pid: handle.pid, port, release: service.release, ...(image === undefined ? {} : { image }) },
      });
    } catch (error) {
      this.#recordCrash(instance, `failed to start: ${(error as Error).message}`, null);
    }
  }

  #beginStop(action: StopAction, instance: Instance): void {
    this.#options.store.transitionInstance(instance.id, 'draining', action.reason, {
      event: (before) => ({
        actor: ACTOR,
        kind: 'instance.stopping',
        app: instance.app,
        service: instance.service,
        instance: instance.id,
        message: `${instance.id} stopping: ${describeStopReason(action.reason)}`,
        data: { reason: action.reason, was: before.state },
      }),
    });
    this.#finishStop(instance, action.reason);
  }

  #finishStop(instance: Instance, reason: string, endState: 'stopped' | 'crashed' = 'stopped'): void {
    if (this.#stopping.has(instance.id)) return;
    const service = this.#options.store.getService(instance.app, instance.service);
    const timeoutMs = service?.spec.deploy.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    const drainMs = service?.spec.deploy.drainMs ?? DEFAULT_DRAIN_MS;
    const ref = instanceRef(instance);
    const stopped = (async () => {
      // No new requests, in-flight ones finish (up to drainMs), and only then the signal.
      if (ref && !this.#exits.has(instance.id)) await this.#options.traffic?.drain(instance, drainMs);
      const outcome = ref ? await this.#options.runtime.stop(ref, timeoutMs) : 'gone';
      this.#end(instance, endState, reason, null, {
        actor: ACTOR,
        kind: 'instance.stopped',
        app: instance.app,
        service: instance.service,
        instance: instance.id,
        message: `${instance.id} stopped (${outcome === 'killed' ? `SIGKILL after ${formatDuration(timeoutMs)}` : outcome === 'terminated' ? 'exited on SIGTERM' : 'already gone'})`,
        data: { outcome, reason },
      });
    })()
      .catch((error: unknown) =>
        this.#options.log.error({ err: error, instance: instance.id }, 'stop failed'),
      )
      .finally(() => {
        this.#stopping.delete(instance.id);
        this.kick();
      });
    this.#stopping.set(instance.id, stopped);
  }

  /**
   * Applies target health as the proxy last reported it (level-triggered: compared with each instance's recorded
   * state). A service without an HTTP health check is judged by its runtime: running is healthy.
   */
  #observeHealth(services: ReadonlyMap<string, ServiceRecord>): void {
    const { store, health } = this.#options;
    for (const instance of store.listInstances({ live: true })) {
      if (instance.state === 'draining') continue;
      const check = services.get(`${instance.app}/${instance.service}`)?.spec.health ?? null;
      if (check === null || instance.port === null || health === undefined) {
        if (instance.state === 'starting' && instance.pid !== null && !this.#exits.has(instance.id)) {
          this.#healthChanged(instance, 'healthy', 'no health check: running');
        }
        continue;
      }
      const target = health.healthOf(instance.id);
      if (target === undefined || target.health === 'initial') continue;
      if (instance.state === 'starting' && target.health === 'unhealthy')
        this.#failedStart(instance, target.reason);
      else if (instance.state !== target.health) this.#healthChanged(instance, target.health, target.reason);
    }
  }

  /** Health moved an instance between `starting`, `healthy` and `unhealthy`: an event with the check's result. */
  #healthChanged(instance: Instance, to: 'healthy' | 'unhealthy', reason: string): void {
    const { store, clock } = this.#options;
    store.transitionInstance(instance.id, to, to === 'unhealthy' ? reason : null, {
      facts: to === 'healthy' && instance.healthyAt === null ? { healthyAt: clock.now() } : {},
      event: (before) => ({
        actor: 'health',
        kind: `instance.${to}`,
        app: instance.app,
        service: instance.service,
        instance: instance.id,
        message: `${instance.id} ${before.state} → ${to} (${reason})`,
        data: { from: before.state, to, reason },
      }),
    });
    if (to === 'unhealthy') this.#options.deployments?.instanceFailed(instance, `unhealthy: ${reason}`);
  }

  /**
   * A new instance's check failed past its grace period without ever passing (the proxy turned its target from
   * `initial` to `unhealthy`): a failed start, counted toward the backoff; it is stopped and ends `crashed`.
   */
  #failedStart(instance: Instance, lastResult: string): void {
    const { store } = this.#options;
    const reason = `never passed its health check (last: ${lastResult})`;
    store.transaction(() => {
      const failure = this.#countFailure(instance, 'instance.failed_to_start', reason, null);
      store.transitionInstance(instance.id, 'draining', reason, { event: () => failure });
    });
    this.#options.deployments?.instanceFailed(instance, reason);
    this.#finishStop(instance, reason, 'crashed');
  }
}

/** What an instance runs, for its start event: the command, and the image of a container. */
function describeCommand(spec: ServiceRecord['spec']): string {
  if (spec.image === undefined) return spec.run;
  const command = spec.run === '' ? "the image's command" : spec.run;
  return `${command} in ${spec.image}`;
}

function toDesired(service: ServiceRecord): DesiredService {
  return {
    app: service.app,
    name: service.name,
    desiredCount: service.desiredCount,
    configHash: service.configHash,
    nextStartAt: service.nextStartAt,
    maxSurgePercent: service.spec.deploy.maxSurgePercent,
    minHealthyPercent: service.spec.deploy.minHealthyPercent,
  };
}

function describeStopReason(reason: string): string {
  switch (reason) {
    case 'scale_in':
      return 'more instances than desired';
    case 'unhealthy_replaced':
      return 'unhealthy, and its replacement is healthy';
    case 'outdated':
      return 'replaced by an instance of the new configuration';
    case 'service_removed':
      return 'its service was removed or stopped';
    default:
      return reason;
  }
}

/** The few variables of the platform's own environment that instances and builds need to find their tools. */
export function platformEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of ['PATH', 'HOME', 'LANG', 'TZ']) {
    const value = env[name];
    if (value !== undefined) picked[name] = value;
  }
  return picked;
}
