// `berth traffic`: sets an app's split between its services and its external origins, and runs ramps judged by the
// canary analysis (the origins are the baseline; an abort sends every request back to them). State: the traffic row.
import type { CanaryDecision, CounterSnapshot } from '../../domain/deployment.js';
import { describeWindows, type ReleaseWindow } from '../../domain/deployment.js';
import { BerthError } from '../../domain/errors.js';
import type { MetricsResponse, TargetStatus } from '../../domain/route-table.js';
import type { AppSpec } from '../../domain/spec.js';
import {
  effectiveWeights,
  parseWeights,
  splitNames,
  type TrafficRamp,
  type TrafficSide,
  type TrafficSplit,
  type TrafficStatus,
} from '../../domain/traffic.js';
import type { Clock } from '../../lib/clock.js';
import { formatDuration } from '../../lib/duration.js';
import type { Logger } from '../../lib/logger.js';
import { every, type Ticker } from '../../lib/ticker.js';
import { judgeCanary, releaseWindow, runCheck, snapshotOf } from '../deploy/canary-analysis.js';
import type { Store } from '../store/store.js';
import { originGroupName, serviceGroupOf, targetGroupName } from './target-groups.js';

export interface TrafficControllerOptions {
  store: Store;
  /** The proxy's counters (`GET /metrics`): the same source the canary analysis reads. */
  proxyMetrics: () => Promise<MetricsResponse>;
  clock: Clock;
  log: Logger;
  /** How often running ramps are looked at; default 250 ms. */
  tickMs?: number;
  /** The weights changed: wake the reconciler, which pushes the route table. */
  changed: () => void;
  /**
   * Sends the route table now and resolves once the proxy serves it (every worker): a split, a ramp's start and an
   * abort answer only then, so the weights they report are the ones requests get.
   */
  syncRoutes?: () => Promise<unknown>;
}

export class TrafficController {
  readonly #o: TrafficControllerOptions;
  #ticker: Ticker | undefined;

  constructor(options: TrafficControllerOptions) {
    this.#o = options;
  }

  start(): void {
    this.#ticker = every(this.#o.tickMs ?? 250, () => this.tick(), {
      name: 'traffic',
      log: this.#o.log,
      clock: this.#o.clock,
    });
  }

  async stop(): Promise<void> {
    await this.#ticker?.stop();
  }

  /** `berth traffic APP web=10 heroku=90`. Refused while a ramp runs: abort it first. */
  async set(app: string, input: Record<string, unknown>, actor: string): Promise<TrafficStatus> {
    const spec = this.#spec(app);
    const weights = parseWeights(spec, input);
    this.#notRamping(app);
    const { store } = this.#o;
    store.transaction(() => {
      store.setTraffic(app, weights, null);
      store.events.record({
        actor,
        kind: 'traffic.split',
        app,
        message: `${app} traffic split set: ${describePercents(weights)}`,
        data: { weights },
      });
    });
    this.#o.changed();
    await this.#o.syncRoutes?.();
    return this.status(app);
  }

  /** `berth traffic APP --ramp web 10,25,50,100 --interval 10m`. */
  async ramp(
    app: string,
    input: { service: unknown; steps: unknown; intervalMs: unknown },
    actor: string,
  ): Promise<TrafficStatus> {
    const spec = this.#spec(app);
    const { services, origins } = splitNames(spec);
    const { service, steps, intervalMs } = input;
    if (typeof service !== 'string' || !services.includes(service))
      throw new BerthError(
        'invalid_request',
        `ramp: ${JSON.stringify(service)} is not a routed service of ${app} (expected one of ${services.join(', ')})`,
      );
    if (origins.length === 0)
      throw new BerthError('invalid_request', `ramp: ${app} has no origins: declare origins: in berth.yaml`);
    if (
      !Array.isArray(steps) ||
      steps.length === 0 ||
      !steps.every((s, i) => Number.isInteger(s) && s >= 1 && s <= 100 && (i === 0 || s > steps[i - 1]))
    )
      throw new BerthError(
        'invalid_request',
        `ramp: steps must be increasing whole percentages from 1 to 100, e.g. 10,25,50,100; got ${JSON.stringify(steps)}`,
      );
    if (typeof intervalMs !== 'number' || !Number.isInteger(intervalMs) || intervalMs < 1000)
      throw new BerthError('invalid_request', 'ramp: the interval must be at least 1s');
    this.#notRamping(app);
    const { store } = this.#o;
    const current = store.getTraffic(app);
    // The origins keep the proportions they had; with none weighted yet, they share equally.
    const weighted = origins.filter((o) => (current?.weights[o] ?? 0) > 0);
    const sharing = weighted.length > 0 ? weighted : origins;
    const total = sharing.reduce((sum, o) => sum + (weighted.length > 0 ? current!.weights[o]! : 1), 0);
    const shares = Object.fromEntries(
      sharing.map((o) => [o, (weighted.length > 0 ? current!.weights[o]! : 1) / total]),
    );
    const ramp: TrafficRamp = {
      service,
      steps: steps as number[],
      step: 0,
      intervalMs,
      analysis: spec.services[service]!.deploy.analysis,
      origins: shares,
      state: 'running',
      windowStartedAt: null,
      baseline: {},
      holds: 0,
      last: null,
    };
    store.transaction(() => {
      store.setTraffic(app, current?.weights ?? { [service]: 0, ...shares }, ramp);
      store.events.record({
        actor,
        kind: 'traffic.ramp_started',
        app,
        message: `${app} ramp of ${service} started: ${ramp.steps.join(', ')} %, ${formatDuration(intervalMs)} a step, back to ${Object.keys(shares).join(', ')} on a failed analysis`,
        data: { service, steps, intervalMs, origins: shares },
      });
    });
    this.#o.changed();
    await this.#o.syncRoutes?.();
    return this.status(app);
  }

  /** `berth traffic APP --abort`: every request back to the origins at once. */
  async abort(app: string, actor: string): Promise<TrafficStatus> {
    const split = this.#o.store.getTraffic(app);
    if (split?.ramp?.state !== 'running')
      throw new BerthError('conflict', `${app} has no ramp running: nothing to abort`);
    const metrics = await this.#o.proxyMetrics().catch(() => undefined);
    const windows = metrics === undefined ? emptyWindows() : this.#windows(app, split.ramp, metrics);
    this.#decided(
      split,
      {
        verdict: 'abort',
        reasons: [`aborted by ${actor}`],
        ...windows,
        weight: effectiveWeights(split)[split.ramp.service] ?? 0,
        at: this.#o.clock.now(),
        by: actor,
      },
      metrics,
    );
    await this.#o.syncRoutes?.();
    return this.status(app);
  }

  /** The split, and each side's live numbers since the proxy started (per-target counters). */
  async status(app: string): Promise<TrafficStatus> {
    const spec = this.#spec(app);
    const split = this.#o.store.getTraffic(app) ?? null;
    const metrics = await this.#o.proxyMetrics().catch(() => undefined);
    const { services, origins } = splitNames(spec);
    const weights =
      split === null ? Object.fromEntries(services.map((s) => [s, 1])) : effectiveWeights(split);
    const total = Object.values(weights).reduce((a, b) => a + b, 0) || 1;
    const sides: TrafficSide[] = [];
    const warnings: string[] = [];
    for (const [name, kind] of [
      ...services.map((s) => [s, 'service'] as const),
      ...origins.map((o) => [o, 'origin'] as const),
    ]) {
      const targets = (metrics?.targets ?? []).filter((t) =>
        kind === 'origin'
          ? t.targetGroup === originGroupName(app, name)
          : serviceGroupOf(t.targetGroup) === targetGroupName(app, name),
      );
      const window = releaseWindow(
        0,
        targets.map((t) => ({ now: snapshotOf(t.counters), before: undefined })),
      );
      const percent = (100 * (weights[name] ?? 0)) / total;
      const side: TrafficSide = {
        name,
        kind,
        percent: Number(percent.toFixed(1)),
        ...(kind === 'origin' ? { url: spec.origins![name]!.url } : {}),
        targets: targets
          .filter((t) => t.state === 'active')
          .map((t) => ({ id: t.id, health: t.health, healthReason: t.healthReason })),
        requests: window.requests,
        errors5xx: window.errors5xx,
        gateway: window.gateway,
        p99Ms: window.p99Ms ?? 0,
      };
      sides.push(side);
      if (kind === 'origin' && metrics !== undefined) {
        const target = side.targets[0];
        if (target?.health === 'unhealthy')
          warnings.push(`origin ${name} (${side.url}) is unhealthy: ${target.healthReason}`);
        else if (target?.health === 'initial' && side.percent > 0)
          warnings.push(`origin ${name} (${side.url}) has not passed a health check yet`);
      }
    }
    if (metrics === undefined) warnings.push('the proxy did not answer: no live numbers');
    return { app, split, sides, warnings };
  }

  /** One look at every running ramp. */
  async tick(): Promise<void> {
    const running = this.#o.store.listTraffic().filter((s) => s.ramp?.state === 'running');
    if (running.length === 0) return;
    const metrics = await this.#o.proxyMetrics();
    for (const split of running) await this.#advance(split, metrics);
  }

  async #advance(split: TrafficSplit, metrics: MetricsResponse): Promise<void> {
    const ramp = split.ramp!;
    const now = this.#o.clock.now();
    if (ramp.windowStartedAt === null) {
      // The first window opens once the Berth side can serve: a healthy target in the proxy.
      const ready = this.#serviceTargets(split.app, ramp.service, metrics).some(
        (t) => t.state === 'active' && t.health === 'healthy',
      );
      if (ready) this.#openWindow(split, { ...ramp }, metrics, 'traffic.ramp_step');
      return;
    }
    if (now - ramp.windowStartedAt < ramp.intervalMs) return;
    const windows = this.#windows(split.app, ramp, metrics);
    const checkFailure = ramp.analysis.check === null ? null : await runCheck(ramp.analysis.check);
    const current = this.#o.store.getTraffic(split.app);
    if (current?.ramp?.state !== 'running' || current.ramp.windowStartedAt !== ramp.windowStartedAt) return;
    const judged = judgeCanary(ramp.analysis, windows.canary, windows.baseline, checkFailure, 'origin');
    this.#decided(
      current,
      {
        ...judged,
        ...windows,
        weight: effectiveWeights(current)[ramp.service] ?? 0,
        at: now,
        by: 'analysis',
      },
      metrics,
    );
  }

  #openWindow(split: TrafficSplit, ramp: TrafficRamp, metrics: MetricsResponse, kind: string): void {
    ramp.windowStartedAt = this.#o.clock.now();
    ramp.baseline = this.#snapshots(split.app, ramp, metrics);
    const share = ramp.steps[ramp.step] ?? 100;
    const { store } = this.#o;
    store.transaction(() => {
      store.setTraffic(split.app, split.weights, ramp);
      store.events.record({
        actor: 'traffic',
        kind,
        app: split.app,
        message: `${split.app} ${ramp.service} gets ${share}% of the requests, ${Object.keys(ramp.origins).join(', ')} ${100 - share}% (step ${ramp.step + 1}/${ramp.steps.length}); next analysis in ${formatDuration(ramp.intervalMs)}`,
        data: { step: ramp.step, weight: share, intervalMs: ramp.intervalMs },
      });
    });
    this.#o.changed();
  }

  /** Records the decision (an event with its numbers) and acts on it. */
  #decided(split: TrafficSplit, decision: CanaryDecision, metrics: MetricsResponse | undefined): void {
    const { store } = this.#o;
    const ramp: TrafficRamp = { ...split.ramp!, last: decision };
    const numbers = describeSides(decision);
    const actor = decision.by === 'analysis' ? 'traffic' : decision.by;
    const data = { ...decision } as unknown as Record<string, unknown>;
    if (decision.verdict === 'abort') {
      ramp.state = 'aborted';
      // Back to the origins, in their proportions: that is what an abort means.
      const weights = { [ramp.service]: 0, ...scaled(ramp.origins) };
      store.transaction(() => {
        store.setTraffic(split.app, weights, ramp);
        store.events.record({
          actor,
          kind: 'traffic.ramp_aborted',
          app: split.app,
          message: `${split.app} ramp of ${ramp.service} aborted at ${decision.weight}%, every request back to ${Object.keys(ramp.origins).join(', ')}: ${decision.reasons.join('; ')} (${numbers})`,
          data,
        });
      });
      this.#o.changed();
      return;
    }
    if (decision.verdict === 'hold') {
      ramp.holds += 1;
      store.events.record({
        actor,
        kind: 'traffic.ramp_held',
        app: split.app,
        message: `${split.app} ramp of ${ramp.service} holds at ${decision.weight}%: ${decision.reasons.join('; ')} (${numbers})`,
        data,
      });
      if (metrics !== undefined) this.#openWindow(split, ramp, metrics, 'traffic.ramp_window');
      else store.setTraffic(split.app, split.weights, ramp);
      return;
    }
    const message = `${split.app} ramp of ${ramp.service} passed at ${decision.weight}%: ${decision.reasons.join('; ')} (${numbers})`;
    if (ramp.step + 1 >= ramp.steps.length) {
      ramp.state = 'succeeded';
      const weights = {
        [ramp.service]: 100,
        ...Object.fromEntries(Object.keys(ramp.origins).map((o) => [o, 0])),
      };
      store.transaction(() => {
        store.setTraffic(split.app, weights, ramp);
        store.events.record({
          actor,
          kind: 'traffic.ramp_succeeded',
          app: split.app,
          message: `${message}; ${ramp.service} takes every request`,
          data,
        });
      });
      this.#o.changed();
      return;
    }
    store.events.record({ actor, kind: 'traffic.ramp_passed', app: split.app, message, data });
    ramp.step += 1;
    ramp.holds = 0;
    if (metrics !== undefined) this.#openWindow(split, ramp, metrics, 'traffic.ramp_step');
    else store.setTraffic(split.app, split.weights, ramp);
  }

  #serviceTargets(app: string, service: string, metrics: MetricsResponse): TargetStatus[] {
    return metrics.targets.filter((t) => serviceGroupOf(t.targetGroup) === targetGroupName(app, service));
  }

  #originTargets(app: string, ramp: TrafficRamp, metrics: MetricsResponse): TargetStatus[] {
    const groups = new Set(Object.keys(ramp.origins).map((o) => originGroupName(app, o)));
    return metrics.targets.filter((t) => groups.has(t.targetGroup));
  }

  #snapshots(app: string, ramp: TrafficRamp, metrics: MetricsResponse): Record<string, CounterSnapshot> {
    const out: Record<string, CounterSnapshot> = {};
    for (const t of [
      ...this.#serviceTargets(app, ramp.service, metrics),
      ...this.#originTargets(app, ramp, metrics),
    ])
      out[`${t.targetGroup}/${t.id}`] = snapshotOf(t.counters);
    return out;
  }

  /** The Berth side (as the canary) and the origins (as the baseline) since the window opened. */
  #windows(
    app: string,
    ramp: TrafficRamp,
    metrics: MetricsResponse,
  ): { canary: ReleaseWindow; baseline: ReleaseWindow } {
    const side = (targets: TargetStatus[]) =>
      targets.map((t) => ({
        now: snapshotOf(t.counters),
        before: ramp.baseline[`${t.targetGroup}/${t.id}`],
      }));
    const release = this.#o.store.getApp(app)?.currentRelease ?? 0;
    return {
      canary: releaseWindow(release, side(this.#serviceTargets(app, ramp.service, metrics))),
      baseline: releaseWindow(0, side(this.#originTargets(app, ramp, metrics))),
    };
  }

  #notRamping(app: string): void {
    if (this.#o.store.getTraffic(app)?.ramp?.state === 'running')
      throw new BerthError(
        'conflict',
        `${app} has a ramp running: berth traffic ${app} --abort stops it first`,
      );
  }

  #spec(app: string): AppSpec {
    const record = this.#o.store.getApp(app);
    const spec =
      record === undefined ? undefined : this.#o.store.getRelease(app, record.currentRelease)?.spec;
    if (spec === undefined) throw new BerthError('not_found', `no app named ${app}`);
    return spec;
  }
}

/** Origin shares (summing to 1) as weights out of 100. */
function scaled(shares: Record<string, number>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(shares).map(([o, part]) => [o, Math.max(1, Math.round(100 * part))]),
  );
}

function describePercents(weights: Record<string, number>): string {
  const total = Object.values(weights).reduce((a, b) => a + b, 0) || 1;
  return Object.entries(weights)
    .map(([name, w]) => `${name} ${Number(((100 * w) / total).toFixed(1))}%`)
    .join(', ');
}

/** The canary's words with Berth and the origins for "new" and "old". */
function describeSides(decision: CanaryDecision): string {
  return describeWindows(decision)
    .replace(/^new v\d+/, 'berth')
    .replace('; old v0', '; origin');
}

function emptyWindows(): { canary: ReleaseWindow; baseline: ReleaseWindow } {
  return { canary: releaseWindow(0, []), baseline: releaseWindow(0, []) };
}
