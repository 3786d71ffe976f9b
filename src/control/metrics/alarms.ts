// Threshold alarms on service series, evaluated like CloudWatch (period, M of N datapoints), with events and webhooks.
import { z } from 'zod';
import { BerthError } from '../../domain/errors.js';
import type {
  AlarmComparison,
  AlarmMetric,
  AlarmRule,
  AlarmState,
  AlarmView,
  MetricPoint,
} from '../../domain/metrics-types.js';
import type { Logger } from '../../lib/logger.js';
import type { Database, Migration } from '../store/database.js';
import type { EventStore } from '../store/event-store.js';
import type { MetricsStore } from './metrics-store.js';

/** The value of `metric` in one datapoint; null when it has no value (no requests for a rate or a latency). */
export function metricValue(point: MetricPoint | undefined, metric: AlarmMetric): number | null {
  if (!point) return null;
  const errors5xx = point.s5xx + point.e502 + point.e503 + point.e504;
  switch (metric) {
    case 'errorRate5xx':
      return point.requests === 0 ? null : (100 * errors5xx) / point.requests;
    case 'errorRate4xx':
      return point.requests === 0 ? null : (100 * point.s4xx) / point.requests;
    case 'requests':
    case 'rpm':
    case 'rpmPerInstance':
    case 'p50':
    case 'p95':
    case 'p99':
    case 'avg':
    case 'healthy':
    case 'unhealthy':
    case 'cpuPercent':
    case 'memoryBytes':
    case 'memoryPercent':
      return point[metric];
  }
}

function breaches(value: number, comparison: AlarmComparison, threshold: number): boolean {
  switch (comparison) {
    case '>':
      return value > threshold;
    case '>=':
      return value >= threshold;
    case '<':
      return value < threshold;
    case '<=':
      return value <= threshold;
  }
}

/**
 * The state for the last `evaluationPeriods` datapoints (oldest first, null = missing): ALARM when at least
 * `datapointsToAlarm` breach, INSUFFICIENT_DATA when all are missing, else OK (missing data is not breaching).
 */
export function evaluateAlarm(
  rule: Pick<AlarmRule, 'comparison' | 'threshold' | 'datapointsToAlarm' | 'metric'>,
  datapoints: readonly (number | null)[],
): { state: AlarmState; reason: string } {
  const present = datapoints.filter((v): v is number => v !== null);
  const breaching = present.filter((v) => breaches(v, rule.comparison, rule.threshold));
  const shown = datapoints.map((v) => (v === null ? '-' : round(v))).join(', ');
  if (breaching.length >= rule.datapointsToAlarm) {
    return {
      state: 'ALARM',
      reason: `${breaching.length} of ${datapoints.length} datapoints ${rule.metric} ${rule.comparison} ${rule.threshold} [${shown}]`,
    };
  }
  if (present.length === 0) {
    return {
      state: 'INSUFFICIENT_DATA',
      reason: `no datapoints of ${rule.metric} in the last ${datapoints.length}`,
    };
  }
  return {
    state: 'OK',
    reason: `${breaching.length} of ${datapoints.length} datapoints breaching (needs ${rule.datapointsToAlarm}) [${shown}]`,
  };
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

export const ALARM_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'alarms',
    sql: `
      CREATE TABLE alarms (
        app TEXT NOT NULL,
        name TEXT NOT NULL,
        rule_json TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL,
        state_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (app, name)
      );
    `,
  },
];

const alarmRow = z.object({
  app: z.string(),
  name: z.string(),
  rule_json: z.string(),
  state: z.enum(['OK', 'ALARM', 'INSUFFICIENT_DATA']),
  reason: z.string(),
  state_at: z.number(),
  created_at: z.number(),
});
type AlarmRow = z.output<typeof alarmRow>;

export interface AlarmManagerOptions {
  db: Database;
  metrics: MetricsStore;
  events: EventStore;
  log: Logger;
  /** Sends a webhook; defaults to a POST with fetch and a 5 s timeout. */
  notify?: (url: string, body: unknown) => Promise<void>;
}

async function postJson(url: string, body: unknown): Promise<void> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  if (!response.ok) throw new Error(`webhook answered ${response.status}`);
}

export class AlarmManager {
  readonly #options: AlarmManagerOptions;
  readonly #notify: (url: string, body: unknown) => Promise<void>;

  readonly #s: ReturnType<typeof statements>;

  constructor(options: AlarmManagerOptions) {
    options.db.migrate('alarms', ALARM_MIGRATIONS);
    this.#options = options;
    this.#s = statements(options.db);
    this.#notify = options.notify ?? postJson;
  }

  /** Creates or replaces a rule; it starts in INSUFFICIENT_DATA until evaluated. */
  put(rule: AlarmRule, now: number): AlarmView {
    const { fineMs, coarseMs } = this.#options.metrics.retention;
    if (rule.periodMs !== fineMs && rule.periodMs !== coarseMs) {
      throw new BerthError(
        'invalid_request',
        `period must be one of the stored resolutions: ${fineMs} or ${coarseMs} ms`,
        {
          issues: [{ path: 'body.periodMs', message: `expected ${fineMs} or ${coarseMs}` }],
        },
      );
    }
    if (rule.datapointsToAlarm > rule.evaluationPeriods) {
      throw new BerthError('invalid_request', 'datapointsToAlarm cannot exceed evaluationPeriods', {
        issues: [{ path: 'body.datapointsToAlarm', message: `at most ${rule.evaluationPeriods}` }],
      });
    }
    this.#s.put.run(rule.app, rule.name, JSON.stringify(rule), now, now);
    this.#options.events.record({
      actor: 'admin',
      kind: 'alarm.configured',
      app: rule.app,
      service: rule.service,
      message: `alarm ${rule.name}: ${describeRule(rule)}`,
      data: { ...rule },
    });
    return this.get(rule.app, rule.name)!;
  }

  get(app: string, name: string): AlarmView | undefined {
    const row = this.#s.get.get(app, name);
    return row && toView(row);
  }

  list(app?: string): AlarmView[] {
    return (app === undefined ? this.#s.all.all() : this.#s.ofApp.all(app)).map(toView);
  }

  /** The app's alarm states by name, as last evaluated (the autoscaler's step rules read them). */
  states(app: string): Map<string, AlarmState> {
    return new Map(this.#s.ofApp.all(app).map((row) => [row.name, row.state]));
  }

  remove(app: string, name: string): void {
    const result = this.#s.remove.run(app, name);
    if (result.changes === 0) throw new BerthError('not_found', `no alarm ${name} for app ${app}`);
    this.#options.events.record({
      actor: 'admin',
      kind: 'alarm.removed',
      app,
      message: `alarm ${name} removed`,
    });
  }

  /** Evaluates every rule on its last complete periods; state changes become events and webhook calls. */
  evaluate(now: number): AlarmView[] {
    const changed: AlarmView[] = [];
    for (const alarm of this.list()) {
      const end = Math.floor(now / alarm.periodMs) * alarm.periodMs;
      const from = end - alarm.evaluationPeriods * alarm.periodMs;
      const result = this.#options.metrics.query(
        { app: alarm.app, service: alarm.service, from, to: end, resolutionMs: alarm.periodMs },
        now,
      );
      const points = new Map((result.series[0]?.points ?? []).map((p) => [p.at, p]));
      const datapoints = Array.from({ length: alarm.evaluationPeriods }, (_, i) =>
        metricValue(points.get(from + i * alarm.periodMs), alarm.metric),
      );
      const { state, reason } = evaluateAlarm(alarm, datapoints);
      if (state === alarm.state) {
        this.#s.setReason.run(reason, alarm.app, alarm.name);
        continue;
      }
      this.#s.setState.run(state, reason, now, alarm.app, alarm.name);
      const view: AlarmView = { ...alarm, state, reason, stateAt: now };
      changed.push(view);
      this.#options.events.record({
        actor: 'alarms',
        kind: 'alarm.state_changed',
        app: alarm.app,
        service: alarm.service,
        message: `alarm ${alarm.name}: ${alarm.state} → ${state}: ${reason}`,
        data: { alarm: alarm.name, from: alarm.state, to: state, reason },
      });
      if (alarm.webhook) {
        const body = {
          alarm: alarm.name,
          app: alarm.app,
          service: alarm.service,
          from: alarm.state,
          to: state,
          reason,
          at: now,
        };
        this.#notify(alarm.webhook, body).catch((error: unknown) =>
          this.#options.log.warn({ err: error, alarm: alarm.name }, 'alarm webhook failed'),
        );
      }
    }
    return changed;
  }
}

export function describeRule(rule: AlarmRule): string {
  return `${rule.service} ${rule.metric} ${rule.comparison} ${rule.threshold} for ${rule.datapointsToAlarm} of ${rule.evaluationPeriods} × ${rule.periodMs / 1000}s`;
}

function statements(db: Database) {
  return {
    put: db.statement(
      `INSERT INTO alarms (app, name, rule_json, state, reason, state_at, created_at)
       VALUES (?, ?, ?, 'INSUFFICIENT_DATA', 'not evaluated yet', ?, ?)
       ON CONFLICT (app, name) DO UPDATE SET rule_json = excluded.rule_json, state = 'INSUFFICIENT_DATA',
         reason = 'rule changed', state_at = excluded.state_at`,
    ),
    get: db.statement('SELECT * FROM alarms WHERE app = ? AND name = ?', alarmRow),
    all: db.statement('SELECT * FROM alarms ORDER BY app, name', alarmRow),
    ofApp: db.statement('SELECT * FROM alarms WHERE app = ? ORDER BY name', alarmRow),
    remove: db.statement('DELETE FROM alarms WHERE app = ? AND name = ?'),
    setReason: db.statement('UPDATE alarms SET reason = ? WHERE app = ? AND name = ?'),
    setState: db.statement(
      'UPDATE alarms SET state = ?, reason = ?, state_at = ? WHERE app = ? AND name = ?',
    ),
  };
}

function toView(row: AlarmRow): AlarmView {
  return {
    ...(JSON.parse(row.rule_json) as AlarmRule),
    state: row.state,
    reason: row.reason,
    stateAt: row.state_at,
  };
}
