// A set of interchangeable targets: registration, draining, health-check scheduling and target selection.
import type { TargetConfig, TargetGroupConfig, TargetHealth, TargetStatus } from '../domain/route-table.js';
import { HealthChecker, type HealthProbe, type TargetHealthTransition } from './health-check.js';
import { LoadBalancer } from './load-balancer.js';
import { Metrics } from './metrics.js';
import { Target } from './target.js';

/** Where a target group reports what happened (the proxy server turns these into events). */
export interface TargetGroupListener {
  onHealthChange(target: Target, change: TargetHealthTransition): void;
  onDrained(target: Target, forced: boolean): void;
}

/** Collaborators; defaults are the real ones. */
export interface TargetGroupDeps {
  probe: HealthProbe;
  listener: TargetGroupListener;
  /**
   * False where health is not checked here: tests that drive it by hand, and proxy workers that take it from the
   * one worker that checks (`adoptHealth`).
   */
  activeChecks?: boolean;
  /** Other workers serving the same targets: a target drains once each of them has said it is done with it. */
  holders?: () => readonly number[];
  /** The targets of the group's first configuration were restored by a restarting proxy (they were serving). */
  restored?: boolean;
  now?: () => number;
}

const DRAINED_MEMORY = 1000;

export class TargetGroup {
  readonly name: string;
  config: TargetGroupConfig;
  readonly balancer: LoadBalancer;
  /** Requests for this group that never reached a target (503). */
  readonly metrics = new Metrics();
  readonly #targets = new Map<string, Target>();
  readonly #draining = new Set<Target>();
  readonly #drained = new Map<string, TargetStatus>();
  readonly #checker: HealthChecker<Target>;
  readonly #deps: TargetGroupDeps;
  readonly #now: () => number;
  #candidates: Target[] | null = null;
  /** The candidates change by themselves at this time (a booting target's grace period ends). */
  #candidatesUntil = Number.POSITIVE_INFINITY;

  constructor(config: TargetGroupConfig, deps: TargetGroupDeps) {
    this.name = config.name;
    this.config = config;
    this.balancer = new LoadBalancer(config.balancing);
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.#checker = new HealthChecker<Target>({
      probe: deps.probe,
      configOf: () => this.config.health,
      onChange: (target, change) => this.#healthChanged(target, change),
      now: this.#now,
    });
    for (const t of config.targets) this.#register(t, deps.restored ?? false);
  }

  /** Applies a new configuration: targets missing from it drain, new ones register, weights update. */
  reconfigure(config: TargetGroupConfig): void {
    this.config = config;
    this.balancer.balancing = config.balancing;
    for (const target of [...this.#targets.values(), ...this.#draining])
      target.health.reconfigure(config.health);
    const wanted = new Set(config.targets.map((t) => t.id));
    for (const id of [...this.#targets.keys()]) if (!wanted.has(id)) this.deregister(id);
    for (const t of config.targets) this.register(t);
    this.#candidates = null;
  }

  /** Registers a target (or updates the weight of an existing one with the same address). It starts `initial`. */
  register(config: TargetConfig): Target {
    return this.#register(config, false);
  }

  #register(config: TargetConfig, restored: boolean): Target {
    const existing = this.#targets.get(config.id);
    const originKey = this.config.origin === undefined ? '' : JSON.stringify(this.config.origin);
    if (
      existing !== undefined &&
      existing.host === config.host &&
      existing.port === config.port &&
      existing.originKey === originKey
    ) {
      existing.weight = config.weight;
      this.#candidates = null;
      return existing;
    }
    if (existing !== undefined) this.deregister(config.id);
    const target = new Target(
      this.name,
      config,
      this.config.health,
      { registeredAt: this.#now(), restored },
      undefined,
      this.config.origin,
    );
    this.#targets.set(target.id, target);
    this.#drained.delete(target.id);
    this.#candidates = null;
    if (this.#deps.activeChecks !== false) this.#checker.watch(target);
    return target;
  }

  /** Sets a target's weight; false when unknown. */
  setWeight(id: string, weight: number): boolean {
    const target = this.#targets.get(id);
    if (target === undefined) return false;
    target.weight = weight;
    this.#candidates = null;
    return true;
  }

  /** Stops new requests to the target at once; it is reported drained when its in-flight work is done. */
  deregister(id: string): Target | undefined {
    const target = this.#targets.get(id);
    if (target === undefined) return undefined;
    this.#targets.delete(id);
    this.#draining.add(target);
    this.#candidates = null;
    this.#checker.unwatch(target);
    target.holdFor(this.#deps.holders?.() ?? []);
    const timer = setTimeout(() => this.#forceDrained(target), this.config.drainMs);
    timer.unref();
    target.drain(() => {
      clearTimeout(timer);
      this.#finishDrain(target, false);
    });
    return target;
  }

  #forceDrained(target: Target): void {
    if (target.state !== 'draining') return;
    // Drain time is over: upgraded connections are closed; requests still in flight are left to finish or fail.
    target.closeTunnels();
    this.#finishDrain(target, true);
  }

  #finishDrain(target: Target, forced: boolean): void {
    if (target.state !== 'draining') return;
    target.transition('drained');
    this.#draining.delete(target);
    this.#drained.set(target.id, target.toStatus());
    if (this.#drained.size > DRAINED_MEMORY) this.#drained.delete(this.#drained.keys().next().value!);
    this.#deps.listener.onDrained(target, forced);
  }

  /** True when at least one active target has weight > 0 (or all have 0). */
  hasActiveTargets(): boolean {
    return this.#eligible().length > 0;
  }

  /**
   * Picks a target: healthy active targets only; when none is healthy, every active target that may serve failing
   * open (as ALB does), which leaves out new targets still `initial`. `exclude` is skipped (a retry goes elsewhere).
   */
  pick(exclude?: Target): Target | undefined {
    return this.balancer.pick(this.#eligible(), exclude);
  }

  #eligible(): Target[] {
    if (
      this.#candidates !== null &&
      (this.#candidatesUntil === Number.POSITIVE_INFINITY || this.#now() < this.#candidatesUntil)
    )
      return this.#candidates;
    const active = [...this.#targets.values()];
    const weighted = active.filter((t) => t.weight > 0);
    const pool = weighted.length > 0 ? weighted : active;
    const healthy = pool.filter((t) => t.health.state === 'healthy');
    this.#candidatesUntil = Number.POSITIVE_INFINITY;
    if (healthy.length > 0) {
      this.#candidates = healthy;
      return healthy;
    }
    const now = this.#now();
    this.#candidates = pool.filter((t) => t.health.servesWhenFailingOpen(now));
    for (const t of pool) {
      if (!t.health.servesWhenFailingOpen(now))
        this.#candidatesUntil = Math.min(this.#candidatesUntil, t.health.graceEndsAt);
    }
    return this.#candidates;
  }

  /** Passive health check: a connection to `target` failed while serving a request. */
  markFailing(target: Target, reason: string): void {
    const change = target.health.markFailing(reason);
    if (change !== undefined) this.#healthChanged(target, change);
  }

  /** Takes the health (and grace period) that the worker that checks `id` decided (see `HealthCheck.adopt`). */
  adoptHealth(id: string, health: TargetHealth, reason: string, graceEndsAt: number): void {
    if (this.#targets.get(id)?.health.adopt(health, reason, graceEndsAt)) this.#candidates = null;
  }

  #healthChanged(target: Target, change: TargetHealthTransition): void {
    this.#candidates = null;
    this.#deps.listener.onHealthChange(target, change);
  }

  get(id: string): Target | undefined {
    return this.#targets.get(id);
  }

  /** Status of a target, including draining ones and (for a while) drained ones. */
  status(id: string): TargetStatus | undefined {
    const active = this.#targets.get(id);
    if (active !== undefined) return active.toStatus();
    for (const t of this.#draining) if (t.id === id) return t.toStatus();
    return this.#drained.get(id);
  }

  /** Active and draining targets. */
  targets(): Target[] {
    return [...this.#targets.values(), ...this.#draining];
  }

  /** The group's config with its current active targets (for persistence and `GET /route-table`). */
  toConfig(): TargetGroupConfig {
    return { ...this.config, targets: [...this.#targets.values()].map((t) => t.toConfig()) };
  }

  /** Idle pool upkeep, called periodically. */
  expireIdle(now: number, idleTimeoutMs: number): void {
    for (const t of this.#targets.values()) t.expireIdle(now, idleTimeoutMs);
  }

  /** Stops health checks and closes idle connections (shutdown, or the group left the route table). */
  close(): void {
    this.#checker.close();
    for (const t of this.targets()) t.closeIdle();
  }
}
