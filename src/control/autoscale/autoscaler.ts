// The autoscaler loop: every few seconds, observe each autoscaled service → decide (pure) → set its desired count.
import type { AutoscaleChange, ServiceAutoscaleStatus } from '../../domain/autoscale-types.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import { every, type Ticker } from '../../lib/ticker.js';
import type { MetricsStore } from '../metrics/metrics-store.js';
import type { EventStore } from '../store/event-store.js';
import type { ServiceRecord, Store } from '../store/store.js';
import { type AutoscaleDecision, DEFAULT_TOLERANCE, decide } from './decide.js';
import { DEFAULT_OBSERVATION_WINDOW, type ObservationWindow, observe } from './observations.js';

/** The one way the autoscaler changes a count: `AppManager.scale`, so the reconciler starts or drains instances. */
export interface Scaler {
  scale(app: string, counts: Record<string, number>, actor: string): unknown;
}

export interface AutoscalerOptions {
  store: Pick<Store, 'listServices' | 'listInstances' | 'activeDeployment'>;
  metrics: MetricsStore;
  scaler: Scaler;
  events: Pick<EventStore, 'record' | 'list'>;
  clock: Clock;
  log: Logger;
  /** How often every policy is evaluated; default 5 s. */
  intervalMs?: number;
  window?: Partial<ObservationWindow>;
  tolerance?: number;
  /** Alarm states of an app by name, for step rules (the alarm manager's `states`). */
  alarmStates: (app: string) => ReadonlyMap<string, string>;
}

export const DEFAULT_AUTOSCALE_INTERVAL_MS = 5000;

/** The actor of the autoscaler's events. */
export const AUTOSCALER_ACTOR = 'autoscaler';

interface ServiceState {
  lastScaleOut: AutoscaleChange | null;
  lastScaleIn: AutoscaleChange | null;
}

export class Autoscaler {
  readonly #options: AutoscalerOptions;
  readonly #window: ObservationWindow;
  readonly #tolerance: number;
  readonly #states = new Map<string, ServiceState>();
  #ticker: Ticker | undefined;

  constructor(options: AutoscalerOptions) {
    this.#options = options;
    // Spread only what is set: an explicit undefined must not replace a default.
    const set = Object.entries(options.window ?? {}).filter(([, value]) => value !== undefined);
    this.#window = { ...DEFAULT_OBSERVATION_WINDOW, ...Object.fromEntries(set) };
    this.#tolerance = options.tolerance ?? DEFAULT_TOLERANCE;
    this.#restoreState();
  }

  start(): void {
    this.#ticker ??= every(
      this.#options.intervalMs ?? DEFAULT_AUTOSCALE_INTERVAL_MS,
      () => this.evaluateNow(),
      {
        name: 'autoscale evaluation',
        log: this.#options.log,
        clock: this.#options.clock,
      },
    );
  }

  async stop(): Promise<void> {
    await this.#ticker?.stop();
    this.#ticker = undefined;
  }

  /** One round: every autoscaled service is evaluated and, when the decision says so, scaled. */
  evaluateNow(): void {
    for (const service of this.#options.store.listServices()) {
      if (!service.spec.autoscale) continue;
      // One service's failure (an app removed mid-round) must not skip the others.
      try {
        const status = this.#evaluate(service);
        if (status.paused === null) this.#apply(service, status.decision);
      } catch (error) {
        this.#options.log.warn(
          { err: error, app: service.app, service: service.name },
          'autoscale evaluation failed',
        );
      }
    }
  }

  /** The decision each autoscaled service of `app` would get now, with the last changes; nothing is applied. */
  status(app: string): ServiceAutoscaleStatus[] {
    return this.#options.store
      .listServices(app)
      .filter((s) => s.spec.autoscale !== undefined)
      .map((s) => this.#evaluate(s));
  }

  #evaluate(service: ServiceRecord): ServiceAutoscaleStatus {
    const { store, metrics, clock } = this.#options;
    const policy = service.spec.autoscale!;
    const now = clock.now();
    const live = store.listInstances({ app: service.app, service: service.name, live: true });
    const observations = observe(metrics, service, live, now, this.#window);
    const state = this.#stateOf(service);
    const decision = decide(
      policy,
      observations,
      { lastScaleOutAt: state.lastScaleOut?.at, lastScaleInAt: state.lastScaleIn?.at },
      {
        now,
        deploying: store.activeDeployment(service.app) !== undefined,
        tolerance: this.#tolerance,
        alarms: policy.steps ? this.#alarmStates(service.app) : undefined,
      },
    );
    // `berth down` (or scaling to 0 by hand) is a deliberate stop; the policy resumes with the next apply or scale.
    const paused =
      service.desiredCount === 0
        ? 'scaled to 0 by hand; the policy resumes after berth apply or berth scale'
        : null;
    return {
      service: service.name,
      policy,
      decision: paused === null ? decision : { ...decision, desired: 0, action: 'none', reason: paused },
      evaluatedAt: now,
      windowMs: this.#window.windowMs,
      tolerance: this.#tolerance,
      lastScaleOut: state.lastScaleOut,
      lastScaleIn: state.lastScaleIn,
      paused,
    };
  }

  #apply(service: ServiceRecord, decision: AutoscaleDecision): void {
    if (decision.action === 'none' || decision.desired === decision.current) return;
    const { events, scaler, clock } = this.#options;
    const at = clock.now();
    const change: AutoscaleChange = {
      at,
      from: decision.current,
      to: decision.desired,
      reason: decision.reason,
    };
    const state = this.#stateOf(service);
    if (decision.action === 'scale_out') state.lastScaleOut = change;
    else state.lastScaleIn = change;
    const numbers = decision.metrics
      .map(
        (m) =>
          `${m.metric} ${m.observed === null ? 'no data' : round(m.observed)}/${m.target} → ${m.implied ?? '-'}`,
      )
      .concat(decision.steps.map((step) => `alarm ${step.alarm} ${step.state ?? 'missing'} → +${step.add}`))
      .join('; ');
    events.record({
      actor: AUTOSCALER_ACTOR,
      kind: decision.action === 'scale_out' ? 'autoscale.scaled_out' : 'autoscale.scaled_in',
      app: service.app,
      service: service.name,
      message: `${service.app}/${service.name} ${decision.current} → ${decision.desired}: ${decision.reason} (${numbers}; ${decision.running} healthy)`,
      data: {
        from: decision.current,
        to: decision.desired,
        running: decision.running,
        reason: decision.reason,
        metrics: decision.metrics.map((m) => ({
          metric: m.metric,
          observed: m.observed === null ? null : round(m.observed),
          target: m.target,
          implied: m.implied,
          vote: m.vote,
        })),
        ...(decision.steps.length > 0 && { steps: decision.steps }),
      },
    });
    scaler.scale(service.app, { [service.name]: decision.desired }, AUTOSCALER_ACTOR);
  }

  /** The app's alarm states, as the alarm manager last evaluated them (it evaluates with each collection). */
  #alarmStates(app: string): Map<string, string> {
    return new Map(this.#options.alarmStates(app));
  }

  #stateOf(service: ServiceRecord): ServiceState {
    const key = `${service.app}/${service.name}`;
    let state = this.#states.get(key);
    if (!state) {
      state = { lastScaleOut: null, lastScaleIn: null };
      this.#states.set(key, state);
    }
    return state;
  }

  /** Cooldowns survive a control-plane restart: the last changes are read back from the events. */
  #restoreState(): void {
    const events = this.#options.events.list({
      kinds: ['autoscale.scaled_out', 'autoscale.scaled_in'],
      limit: 500,
    });
    for (const row of events) {
      const data = row.data as { from: number; to: number; reason: string };
      const key = `${row.app}/${row.service}`;
      const state = this.#states.get(key) ?? { lastScaleOut: null, lastScaleIn: null };
      const change = { at: row.at, from: data.from, to: data.to, reason: data.reason };
      if (row.kind === 'autoscale.scaled_out') state.lastScaleOut = change;
      else state.lastScaleIn = change;
      this.#states.set(key, state);
    }
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
