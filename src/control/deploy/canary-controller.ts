// Runs canary deployments: opens each step's window once the new release is healthy, judges it when the interval
// has passed (promote, hold, abort), and acts on `berth deploy --promote/--abort`. Its state is the deployment row.
import {
  type CanaryDecision,
  type CanaryProgress,
  type CounterSnapshot,
  canaryWeight,
  type Deployment,
  describeWindows,
  type ReleaseWindow,
} from '../../domain/deployment.js';
import { BerthError } from '../../domain/errors.js';
import type { MetricsResponse } from '../../domain/route-table.js';
import type { Clock } from '../../lib/clock.js';
import { formatDuration } from '../../lib/duration.js';
import type { Logger } from '../../lib/logger.js';
import { every, type Ticker } from '../../lib/ticker.js';
import type { AppManager } from '../app-manager.js';
import type { Store } from '../store/store.js';
import { canaryGroupName, groupOf } from '../traffic/target-groups.js';
import { judgeCanary, releaseWindow, runCheck, snapshotOf } from './canary-analysis.js';

export interface CanaryControllerOptions {
  store: Store;
  apps: AppManager;
  /** The proxy's counters (`GET /metrics`): the same source the metrics collector reads. */
  proxyMetrics: () => Promise<MetricsResponse>;
  clock: Clock;
  log: Logger;
  /** How often running canaries are looked at; default 250 ms (windows are seconds to minutes long). */
  tickMs?: number;
  /** A step changed the weights: wake the reconciler, which pushes the route table. */
  changed: () => void;
  /**
   * Sends the route table now and resolves once the proxy serves it: `--promote` and `--abort` answer only then, so
   * the weights they report are the ones requests get.
   */
  syncRoutes?: () => Promise<unknown>;
}

export class CanaryController {
  readonly #o: CanaryControllerOptions;
  #ticker: Ticker | undefined;

  constructor(options: CanaryControllerOptions) {
    this.#o = options;
  }

  start(): void {
    this.#ticker = every(this.#o.tickMs ?? 250, () => this.tick(), {
      name: 'canary',
      log: this.#o.log,
      clock: this.#o.clock,
    });
  }

  async stop(): Promise<void> {
    await this.#ticker?.stop();
  }

  /** One look at every running canary. */
  async tick(): Promise<void> {
    const running = this.#o.store.listDeployments({ state: 'canary' });
    if (running.length === 0) return;
    const metrics = await this.#o.proxyMetrics();
    for (const deployment of running) await this.#advance(deployment, metrics);
  }

  /** `berth deploy --promote`: the next step now (past the last: the old release drains), without analysis. */
  async promote(app: string, actor: string): Promise<Deployment> {
    const deployment = this.#running(app);
    const metrics = await this.#o.proxyMetrics();
    const windows = this.#windows(deployment, metrics);
    const decision: CanaryDecision = {
      verdict: 'promote',
      reasons: [`promoted by ${actor}`],
      ...windows,
      weight: canaryWeight(deployment.canary!),
      at: this.#o.clock.now(),
      by: actor,
    };
    this.#decided(deployment, decision, metrics);
    await this.#o.syncRoutes?.();
    return this.#o.store.getDeployment(deployment.id)!;
  }

  /** `berth deploy --abort`: every request back to the old release at once, the new instances stopped. */
  async abort(app: string, actor: string): Promise<Deployment> {
    const deployment = this.#running(app);
    const metrics = await this.#o.proxyMetrics().catch(() => undefined);
    const windows = metrics === undefined ? emptyWindows(deployment) : this.#windows(deployment, metrics);
    const decision: CanaryDecision = {
      verdict: 'abort',
      reasons: [`aborted by ${actor}`],
      ...windows,
      weight: canaryWeight(deployment.canary!),
      at: this.#o.clock.now(),
      by: actor,
    };
    this.#decided(deployment, decision, metrics);
    await this.#o.syncRoutes?.();
    return this.#o.store.getDeployment(deployment.id)!;
  }

  #running(app: string): Deployment {
    const deployment = this.#o.store.activeDeployment(app);
    if (deployment?.state !== 'canary') {
      throw new BerthError(
        'conflict',
        deployment === undefined
          ? `${app} has no deployment in progress: nothing to promote or abort`
          : `${app}'s deployment ${deployment.id} is not a running canary (it is ${deployment.state.replace('_', ' ')})`,
      );
    }
    return deployment;
  }

  async #advance(deployment: Deployment, metrics: MetricsResponse): Promise<void> {
    const progress = deployment.canary!;
    const now = this.#o.clock.now();
    if (progress.windowStartedAt === null) {
      if (!this.#newReleaseReady(deployment)) return;
      this.#openWindow(deployment, { ...progress }, metrics, 'deployment.canary_step');
      return;
    }
    if (now - progress.windowStartedAt < progress.intervalMs) return;
    const windows = this.#windows(deployment, metrics);
    const check = progress.analysis.check ?? null;
    const checkFailure = check === null ? null : await runCheck(check);
    // Someone may have promoted or aborted it while the check ran: decide only on the window it was for.
    const current = this.#o.store.getDeployment(deployment.id);
    if (current?.state !== 'canary' || current.canary?.windowStartedAt !== progress.windowStartedAt) return;
    const judged = judgeCanary(progress.analysis, windows.canary, windows.baseline, checkFailure);
    this.#decided(
      deployment,
      { ...judged, ...windows, weight: canaryWeight(progress), at: now, by: 'analysis' },
      metrics,
    );
  }

  /** Every canary service runs its desired count of new, healthy instances. */
  #newReleaseReady(deployment: Deployment): boolean {
    const { store } = this.#o;
    return deployment.canary!.services.every((name) => {
      const service = store.getService(deployment.app, name);
      if (!service) return true;
      const group = canaryGroupName(deployment.app, name, deployment.toRelease);
      const healthy = store
        .listInstances({ app: deployment.app, service: name, live: true })
        .filter((i) => groupOf(i) === group && i.state === 'healthy').length;
      return healthy >= service.desiredCount;
    });
  }

  /** Starts the current step's window: the counters now are its baseline. */
  #openWindow(
    deployment: Deployment,
    progress: CanaryProgress,
    metrics: MetricsResponse,
    kind: string,
  ): void {
    const now = this.#o.clock.now();
    progress.windowStartedAt = now;
    progress.baseline = this.#snapshots(deployment, metrics);
    const weight = canaryWeight(progress);
    this.#o.store.transaction(() => {
      this.#o.store.setCanaryProgress(deployment.id, progress);
      this.#o.store.events.record({
        actor: 'deployer',
        kind,
        app: deployment.app,
        message: `${deployment.app} v${deployment.toRelease} gets ${weight}% of ${progress.services.join(', ')} requests (step ${progress.step + 1}/${progress.steps.length}); next analysis in ${formatDuration(progress.intervalMs)}`,
        data: { deployment: deployment.id, step: progress.step, weight, intervalMs: progress.intervalMs },
      });
    });
  }

  /** Records the decision (an event with its numbers) and acts on it. */
  #decided(deployment: Deployment, decision: CanaryDecision, metrics: MetricsResponse | undefined): void {
    const { store, apps } = this.#o;
    const progress: CanaryProgress = { ...deployment.canary!, last: decision };
    const numbers = describeWindows(decision);
    const data = { deployment: deployment.id, ...decision };
    if (decision.verdict === 'abort') {
      store.transaction(() => {
        store.setCanaryProgress(deployment.id, progress);
        store.events.record({
          actor: decision.by === 'analysis' ? 'deployer' : decision.by,
          kind: 'deployment.canary_aborted',
          app: deployment.app,
          message: `${deployment.app} v${deployment.toRelease} canary aborted at ${decision.weight}%: ${decision.reasons.join('; ')} (${numbers})`,
          data,
        });
        // Always back to the old release: that is what an abort means, whatever autoRollback says.
        apps.failDeployment(
          store.getDeployment(deployment.id)!,
          `canary aborted at ${decision.weight}%: ${decision.reasons.join('; ')}`,
          true,
        );
      });
      return;
    }
    if (decision.verdict === 'hold') {
      progress.holds += 1;
      store.events.record({
        actor: 'deployer',
        kind: 'deployment.canary_held',
        app: deployment.app,
        message: `${deployment.app} v${deployment.toRelease} holds at ${decision.weight}%: ${decision.reasons.join('; ')} (${numbers})`,
        data,
      });
      if (metrics !== undefined) this.#openWindow(deployment, progress, metrics, 'deployment.canary_window');
      else store.setCanaryProgress(deployment.id, progress);
      return;
    }
    const kind = decision.by === 'analysis' ? 'deployment.canary_passed' : 'deployment.canary_promoted';
    const message = `${deployment.app} v${deployment.toRelease} ${decision.by === 'analysis' ? 'passed' : `promoted by ${decision.by}`} at ${decision.weight}%: ${decision.reasons.join('; ')} (${numbers})`;
    if (progress.step + 1 >= progress.steps.length) {
      // Past the last step: the old release's instances drain as in a rolling deploy, then it succeeds.
      store.transaction(() => {
        store.setCanaryProgress(deployment.id, progress);
        store.transitionDeployment(deployment.id, 'in_progress', null, () => ({
          actor: decision.by === 'analysis' ? 'deployer' : decision.by,
          kind,
          app: deployment.app,
          message: `${message}; the old release drains`,
          data,
        }));
      });
      this.#o.changed();
      return;
    }
    store.events.record({
      actor: decision.by === 'analysis' ? 'deployer' : decision.by,
      kind,
      app: deployment.app,
      message,
      data,
    });
    progress.step += 1;
    progress.holds = 0;
    if (metrics !== undefined) this.#openWindow(deployment, progress, metrics, 'deployment.canary_step');
    this.#o.changed();
  }

  /** Per-target counters of the canary services' instances, old and new. */
  #snapshots(deployment: Deployment, metrics: MetricsResponse): Record<string, CounterSnapshot> {
    const ids = new Set(this.#instancesOf(deployment).map((i) => i.id));
    const out: Record<string, CounterSnapshot> = {};
    for (const target of metrics.targets)
      if (ids.has(target.id)) out[target.id] = snapshotOf(target.counters);
    return out;
  }

  #instancesOf(deployment: Deployment) {
    const services = new Set(deployment.canary!.services);
    return this.#o.store.listInstances({ app: deployment.app }).filter((i) => services.has(i.service));
  }

  /** Both releases' numbers since the window opened. */
  #windows(
    deployment: Deployment,
    metrics: MetricsResponse,
  ): { canary: ReleaseWindow; baseline: ReleaseWindow } {
    const progress = deployment.canary!;
    const byId = new Map(this.#instancesOf(deployment).map((i) => [i.id, i]));
    const sides = { canary: [] as Side[], baseline: [] as Side[] };
    // A target seen twice (the same id in two groups while it moves) is counted once.
    const seen = new Set<string>();
    for (const target of metrics.targets) {
      const instance = byId.get(target.id);
      if (instance === undefined || seen.has(target.id)) continue;
      seen.add(target.id);
      const side = instance.release === deployment.toRelease ? sides.canary : sides.baseline;
      side.push({ now: snapshotOf(target.counters), before: progress.baseline[target.id] });
    }
    return {
      canary: releaseWindow(deployment.toRelease, sides.canary),
      baseline: releaseWindow(deployment.fromRelease ?? 0, sides.baseline),
    };
  }
}

type Side = { now: CounterSnapshot; before: CounterSnapshot | undefined };

function emptyWindows(deployment: Deployment): { canary: ReleaseWindow; baseline: ReleaseWindow } {
  return {
    canary: releaseWindow(deployment.toRelease, []),
    baseline: releaseWindow(deployment.fromRelease ?? 0, []),
  };
}
