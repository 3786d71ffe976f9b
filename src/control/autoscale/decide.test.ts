import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AutoscaleSpec } from '../../domain/spec.js';
import { type AutoscaleObservations, type AutoscaleState, type DecideContext, decide } from './decide.js';

const T0 = 1_700_000_000_000;

function policy(overrides: Partial<AutoscaleSpec> = {}): AutoscaleSpec {
  return {
    min: 1,
    max: 4,
    requestsPerMinute: 600,
    scaleOutCooldownMs: 60_000,
    scaleInCooldownMs: 300_000,
    ...overrides,
  };
}

function observed(
  running: number,
  values: AutoscaleObservations['values'],
  desired = running,
  stale?: string,
): AutoscaleObservations {
  return { running, desired, values, stale };
}

function at(now: number, deploying = false): DecideContext {
  return { now, deploying };
}

interface Case {
  name: string;
  policy: AutoscaleSpec;
  observations: AutoscaleObservations;
  state?: AutoscaleState;
  context?: DecideContext;
  desired: number;
  action: 'scale_out' | 'scale_in' | 'none';
  reason?: RegExp;
}

const cases: Case[] = [
  {
    name: 'requests per minute alone: 2 × 1500/600 → 5, clamped to max 4',
    policy: policy(),
    observations: observed(2, { requestsPerMinute: 1500 }),
    desired: 4,
    action: 'scale_out',
    reason: /requestsPerMinute asks for 5 \(max 4\)/,
  },
  {
    name: 'requests per minute alone: 2 × 900/600 → 3',
    policy: policy(),
    observations: observed(2, { requestsPerMinute: 900 }),
    desired: 3,
    action: 'scale_out',
  },
  {
    name: 'cpu alone: 3 × 35/70 → 2 (scale-in, no cooldown pending)',
    policy: policy({ requestsPerMinute: undefined, cpuPercent: 70 }),
    observations: observed(3, { cpuPercent: 35 }),
    desired: 2,
    action: 'scale_in',
  },
  {
    name: 'memory alone: 1 × 160/80 → 2',
    policy: policy({ requestsPerMinute: undefined, memoryPercent: 80 }),
    observations: observed(1, { memoryPercent: 160 }),
    desired: 2,
    action: 'scale_out',
  },
  {
    name: 'combination: any metric asking out wins (cpu wants 4, requests want 1)',
    policy: policy({ cpuPercent: 50 }),
    observations: observed(2, { requestsPerMinute: 100, cpuPercent: 95 }),
    desired: 4,
    action: 'scale_out',
    reason: /cpuPercent asks for 4/,
  },
  {
    name: 'combination: scale-in only when all agree (cpu holds)',
    policy: policy({ cpuPercent: 50 }),
    observations: observed(3, { requestsPerMinute: 100, cpuPercent: 50 }),
    desired: 3,
    action: 'none',
    reason: /not every metric agrees; cpuPercent \(hold\)/,
  },
  {
    name: 'combination: all agree → the smallest reduction (largest implied) wins',
    policy: policy({ cpuPercent: 50 }),
    observations: observed(4, { requestsPerMinute: 150, cpuPercent: 20 }),
    desired: 2,
    action: 'scale_in',
  },
  {
    name: 'tolerance: 9 % above target is no change',
    policy: policy(),
    observations: observed(2, { requestsPerMinute: 654 }),
    desired: 2,
    action: 'none',
    reason: /within its target/,
  },
  {
    name: 'tolerance: 9 % below target is no change',
    policy: policy(),
    observations: observed(2, { requestsPerMinute: 546 }),
    desired: 2,
    action: 'none',
  },
  {
    name: 'tolerance: 11 % above target scales out',
    policy: policy(),
    observations: observed(2, { requestsPerMinute: 666 }),
    desired: 3,
    action: 'scale_out',
  },
  {
    name: 'an exact ratio does not round up through floating-point noise',
    policy: policy({ requestsPerMinute: 7, max: 40 }),
    // 7 × (29 / 7) is 29.000000000000004 in floating point.
    observations: observed(7, { requestsPerMinute: 29 }),
    desired: 29,
    action: 'scale_out',
  },
  {
    name: 'missing data for the only metric: no action',
    policy: policy(),
    observations: observed(2, { requestsPerMinute: null }),
    desired: 2,
    action: 'none',
    reason: /no data for any metric/,
  },
  {
    name: 'stale data: no action even if the last values asked for more',
    policy: policy(),
    observations: observed(2, { requestsPerMinute: 5000 }, 2, 'the newest data point is 40s old'),
    desired: 2,
    action: 'none',
    reason: /40s old/,
  },
  {
    name: 'missing data for one metric blocks scale-in',
    policy: policy({ cpuPercent: 50 }),
    observations: observed(3, { requestsPerMinute: 10, cpuPercent: null }),
    desired: 3,
    action: 'none',
    reason: /cpuPercent \(no data\)/,
  },
  {
    name: 'missing data for one metric does not block a scale-out the other asks for',
    policy: policy({ cpuPercent: 50 }),
    observations: observed(1, { requestsPerMinute: 1200, cpuPercent: null }),
    desired: 2,
    action: 'scale_out',
  },
  {
    name: 'no healthy instance: no action',
    policy: policy(),
    observations: observed(0, { requestsPerMinute: 1200 }, 2),
    desired: 2,
    action: 'none',
    reason: /no healthy instance/,
  },
  {
    name: 'min: never below it, even with no traffic',
    policy: policy({ min: 2 }),
    observations: observed(2, { requestsPerMinute: 0 }),
    desired: 2,
    action: 'none',
    reason: /min is 2/,
  },
  {
    name: 'min: a count below it is raised at once (no data needed)',
    policy: policy({ min: 2 }),
    observations: observed(1, {}, 1, 'no data yet'),
    desired: 2,
    action: 'scale_out',
    reason: /below min 2/,
  },
  {
    name: 'max: a count above it is lowered',
    policy: policy(),
    observations: observed(6, { requestsPerMinute: 600 }),
    desired: 4,
    action: 'scale_in',
    reason: /above max 4/,
  },
  {
    name: 'max: already at max, more load changes nothing',
    policy: policy(),
    observations: observed(4, { requestsPerMinute: 6000 }),
    desired: 4,
    action: 'none',
    reason: /but max is 4/,
  },
  {
    name: 'an instance still starting counts only once healthy: 1 healthy of 2 desired at 1.5× → holds at 2',
    policy: policy(),
    observations: observed(1, { requestsPerMinute: 900 }, 2),
    desired: 2,
    action: 'none',
  },
  {
    name: 'scale-out cooldown: 30 s after a scale-out, no further scale-out',
    policy: policy(),
    observations: observed(2, { requestsPerMinute: 1200 }),
    state: { lastScaleOutAt: T0 - 30_000 },
    desired: 2,
    action: 'none',
    reason: /scale-out cooldown until 30s from now/,
  },
  {
    name: 'scale-out cooldown: over after 60 s',
    policy: policy(),
    observations: observed(2, { requestsPerMinute: 1200 }),
    state: { lastScaleOutAt: T0 - 60_000 },
    desired: 4,
    action: 'scale_out',
  },
  {
    name: 'scale-in cooldown: a recent scale-out blocks scale-in',
    policy: policy(),
    observations: observed(3, { requestsPerMinute: 100 }),
    state: { lastScaleOutAt: T0 - 100_000 },
    desired: 3,
    action: 'none',
    reason: /scale-in cooldown until 200s from now/,
  },
  {
    name: 'scale-in cooldown: a recent scale-in blocks the next one',
    policy: policy(),
    observations: observed(3, { requestsPerMinute: 100 }),
    state: { lastScaleInAt: T0 - 299_000 },
    desired: 3,
    action: 'none',
    reason: /scale-in cooldown/,
  },
  {
    name: 'scale-in cooldown does not block a scale-out',
    policy: policy(),
    observations: observed(2, { requestsPerMinute: 1200 }),
    state: { lastScaleInAt: T0 - 1000 },
    desired: 4,
    action: 'scale_out',
  },
  {
    name: 'scale-in cooldown: over after 300 s',
    policy: policy(),
    observations: observed(3, { requestsPerMinute: 100 }),
    state: { lastScaleInAt: T0 - 300_000 },
    desired: 1,
    action: 'scale_in',
  },
  {
    name: 'during a deployment: no scale-in',
    policy: policy(),
    observations: observed(3, { requestsPerMinute: 100 }),
    context: at(T0, true),
    desired: 3,
    action: 'none',
    reason: /no scale-in during a deployment/,
  },
  {
    name: 'during a deployment: scale-out continues',
    policy: policy(),
    observations: observed(2, { requestsPerMinute: 1200 }),
    context: at(T0, true),
    desired: 4,
    action: 'scale_out',
  },
  {
    name: 'during a deployment: a count above max waits',
    policy: policy(),
    observations: observed(5, { requestsPerMinute: 600 }),
    context: at(T0, true),
    desired: 5,
    action: 'none',
  },
];

describe('autoscale decide: step rules on alarms', () => {
  const withSteps = policy({ steps: [{ alarm: 'slow-p95', add: 2 }] });
  const alarms = (state: string) => new Map([['slow-p95', state]]);

  it('adds the step while its alarm is in ALARM, even when the targets hold', () => {
    const d = decide(
      withSteps,
      observed(1, { requestsPerMinute: 600 }),
      {},
      { ...at(T0), alarms: alarms('ALARM') },
    );
    assert.equal(d.desired, 3);
    assert.equal(d.action, 'scale_out');
    assert.match(d.reason, /alarm slow-p95 \(\+2\) asks for 3/);
    assert.deepEqual(d.steps, [{ alarm: 'slow-p95', add: 2, state: 'ALARM', implied: 3 }]);
  });

  it('takes the larger of target tracking and the step', () => {
    const d = decide(
      withSteps,
      observed(1, { requestsPerMinute: 2400 }),
      {},
      { ...at(T0), alarms: alarms('ALARM') },
    );
    assert.equal(d.desired, 4);
  });

  it('does nothing for an alarm that is OK or missing, and respects the scale-out cooldown and max', () => {
    assert.equal(
      decide(withSteps, observed(1, { requestsPerMinute: 600 }), {}, { ...at(T0), alarms: alarms('OK') })
        .action,
      'none',
    );
    const missing = decide(
      withSteps,
      observed(1, { requestsPerMinute: 600 }),
      {},
      { ...at(T0), alarms: new Map() },
    );
    assert.equal(missing.action, 'none');
    assert.equal(missing.steps[0]?.state, null);
    const cooling = decide(
      withSteps,
      observed(1, { requestsPerMinute: 600 }),
      { lastScaleOutAt: T0 - 1000 },
      { ...at(T0), alarms: alarms('ALARM') },
    );
    assert.equal(cooling.action, 'none');
    const atMax = decide(
      withSteps,
      observed(4, { requestsPerMinute: 600 }),
      {},
      { ...at(T0), alarms: alarms('ALARM') },
    );
    assert.equal(atMax.desired, 4);
  });
});

describe('autoscale decide (target tracking)', () => {
  for (const c of cases) {
    it(c.name, () => {
      const decision = decide(c.policy, c.observations, c.state ?? {}, c.context ?? at(T0));
      assert.equal(decision.desired, c.desired, decision.reason);
      assert.equal(decision.action, c.action, decision.reason);
      if (c.reason) assert.match(decision.reason, c.reason);
    });
  }

  it('explains every metric: observed, target and the count it implies', () => {
    const decision = decide(
      policy({ cpuPercent: 50 }),
      observed(2, { requestsPerMinute: 900, cpuPercent: 20 }),
      {},
      at(T0),
    );
    assert.deepEqual(
      decision.metrics.map((m) => [m.metric, m.observed, m.target, m.implied, m.vote]),
      [
        ['requestsPerMinute', 900, 600, 3, 'out'],
        ['cpuPercent', 20, 50, 1, 'in'],
      ],
    );
    assert.match(decision.metrics[0]!.note, /900 is 150% of 600: 2 × 1.5 → 3/);
  });

  it('steps a fake clock through a load spike: out, cooldown, then in once the scale-in cooldown since the last change is over', () => {
    const p = policy({ scaleOutCooldownMs: 10_000, scaleInCooldownMs: 30_000 });
    const state: AutoscaleState = {};
    let count = 1;
    const trace: string[] = [];
    // Total load per 5 s step: 3000 rpm for 30 s, then 0.
    for (let t = 0; t <= 120_000; t += 5000) {
      const total = t < 30_000 ? 3000 : 0;
      const d = decide(p, observed(count, { requestsPerMinute: total / count }), state, at(T0 + t));
      if (d.action === 'scale_out') state.lastScaleOutAt = T0 + t;
      if (d.action === 'scale_in') state.lastScaleInAt = T0 + t;
      if (d.desired !== count) trace.push(`${t / 1000}s ${count}→${d.desired}`);
      count = d.desired;
    }
    assert.deepEqual(trace, ['0s 1→4', '30s 4→1']);
  });
});
