// Unit tests: CloudWatch-style alarm evaluation (M of N, missing data), state changes as events and webhooks.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openTestState } from '../../../test/fakes/state.js';
import type { AlarmRule } from '../../domain/metrics-types.js';
import { silentLogger } from '../../lib/logger.js';
import { AlarmManager, evaluateAlarm } from './alarms.js';
import { emptyDelta, MetricsStore } from './metrics-store.js';

const p95Rule = { metric: 'p95', comparison: '>', threshold: 500, datapointsToAlarm: 3 } as const;

describe('evaluateAlarm', () => {
  const cases: [string, (number | null)[], string][] = [
    ['3 of 5 breaching is ALARM', [600, 100, 700, 800, 100], 'ALARM'],
    ['2 of 5 breaching is OK', [600, 100, 700, 100, 100], 'OK'],
    ['all missing is INSUFFICIENT_DATA', [null, null, null, null, null], 'INSUFFICIENT_DATA'],
    ['missing datapoints do not breach', [600, null, 700, null, null], 'OK'],
    ['3 breaching among missing ones is ALARM', [600, null, 700, null, 900], 'ALARM'],
    ['equal to the threshold does not breach with >', [500, 500, 500, 500, 500], 'OK'],
  ];
  for (const [name, datapoints, expected] of cases) {
    it(name, () => {
      assert.equal(evaluateAlarm(p95Rule, datapoints).state, expected);
    });
  }
});

describe('AlarmManager', () => {
  it('goes INSUFFICIENT_DATA → ALARM → OK on the 5xx rate, recording events and calling the webhook', () => {
    const { db, store, events } = openTestState();
    store.createRelease({ app: 'shop' } as never, '/tmp', 'v1');
    const metrics = new MetricsStore(db);
    const calls: unknown[] = [];
    const alarms = new AlarmManager({
      db,
      metrics,
      events,
      log: silentLogger,
      notify: async (url, body) => {
        calls.push({ url, body });
      },
    });
    const rule: AlarmRule = {
      app: 'shop',
      name: 'errors',
      service: 'web',
      metric: 'errorRate5xx',
      comparison: '>',
      threshold: 1,
      periodMs: 10_000,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      webhook: 'http://127.0.0.1:9/hook',
    };
    const t0 = 1_700_000_000_000;
    assert.equal(alarms.put(rule, t0).state, 'INSUFFICIENT_DATA');
    const record = (at: number, requests: number, s5xx: number): void =>
      metrics.record(at, [
        {
          app: 'shop',
          service: 'web',
          release: 1,
          instance: 'web-1',
          delta: { ...emptyDelta(), requests, s2xx: requests - s5xx, s5xx },
        },
      ]);
    record(t0, 100, 5);
    record(t0 + 10_000, 100, 3);
    record(t0 + 20_000, 100, 0);
    // At t0 + 30 s the last three complete periods are t0, t0+10 s, t0+20 s: two of them above 1 %.
    assert.deepEqual(
      alarms.evaluate(t0 + 30_000).map((a) => a.state),
      ['ALARM'],
    );
    assert.equal(alarms.evaluate(t0 + 30_000).length, 0, 'no change, no new event');
    record(t0 + 30_000, 100, 0);
    record(t0 + 40_000, 100, 0);
    assert.deepEqual(
      alarms.evaluate(t0 + 50_000).map((a) => a.state),
      ['OK'],
    );
    const kinds = store.listEvents({ app: 'shop' }).map((e) => [e.kind, (e.data as { to?: string }).to]);
    assert.deepEqual(kinds, [
      ['alarm.configured', undefined],
      ['alarm.state_changed', 'ALARM'],
      ['alarm.state_changed', 'OK'],
    ]);
    assert.deepEqual(
      calls.map((c) => (c as { body: { from: string; to: string } }).body.to),
      ['ALARM', 'OK'],
    );
  });

  it('refuses a period that is not a stored resolution, and M greater than N', () => {
    const { db, events } = openTestState();
    const alarms = new AlarmManager({
      db,
      metrics: new MetricsStore(db),
      events,
      log: silentLogger,
    });
    const base: AlarmRule = {
      app: 'shop',
      name: 'x',
      service: 'web',
      metric: 'p95',
      comparison: '>',
      threshold: 1,
      periodMs: 60_000,
      evaluationPeriods: 5,
      datapointsToAlarm: 3,
    };
    assert.throws(() => alarms.put({ ...base, periodMs: 30_000 }, 0), /period must be one of/);
    assert.throws(() => alarms.put({ ...base, datapointsToAlarm: 6 }, 0), /cannot exceed/);
  });
});
