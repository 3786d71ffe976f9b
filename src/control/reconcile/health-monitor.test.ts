import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Instance } from '../../domain/instance.js';
import { DEFAULT_HEALTH_CHECK } from '../../domain/spec.js';
import { type HealthChange, HealthMonitor } from './health-monitor.js';
import type { ProbeResult } from './health-probe.js';

const settings = {
  ...DEFAULT_HEALTH_CHECK,
  intervalMs: 1000,
  graceMs: 3000,
  healthyThreshold: 2,
  unhealthyThreshold: 3,
};

function instance(state: Instance['state']): Instance {
  return {
    id: 'shop.web.1',
    app: 'shop',
    service: 'web',
    release: 1,
    configHash: 'h',
    state,
    pid: 1,
    processStart: 1,
    port: 3000,
    createdAt: 0,
    healthyAt: null,
    endedAt: null,
    exitCode: null,
    exitSignal: null,
    reason: null,
  } as Instance;
}

/** Runs checks at the given times with scripted probe results; returns the transitions reported. */
async function run(start: Instance, script: [number, boolean][]): Promise<string[]> {
  let now = 0;
  const results = script.map(([, ok]): ProbeResult => ({ ok, detail: ok ? 'status 200' : 'status 500' }));
  const changes: HealthChange[] = [];
  const monitor = new HealthMonitor({
    probe: async () => results.shift()!,
    now: () => now,
    onChange: (change) => changes.push(change),
  });
  monitor.sync([start], () => settings);
  for (const [at] of script) {
    now = at;
    await monitor.checkDue();
  }
  return changes.map((c) => `${c.to}@${c.reason}`);
}

describe('HealthMonitor', () => {
  it('makes a starting instance healthy on its first passing check', async () => {
    assert.deepEqual(
      await run(instance('starting'), [
        [0, false],
        [100, true],
      ]),
      ['healthy@status 200'],
    );
  });

  it('ignores failures during the grace period, then fails a start after `unhealthy` failures', async () => {
    const script: [number, boolean][] = [
      [0, false],
      [1000, false],
      [2000, false],
      [3000, false],
      [4000, false],
      [5000, false],
    ];
    assert.deepEqual(await run(instance('starting'), script), ['failed_to_start@status 500']);
  });

  it('turns a healthy instance unhealthy after `unhealthy` consecutive failures past grace', async () => {
    const script: [number, boolean][] = [
      [3000, false],
      [4000, true],
      [5000, false],
      [6000, false],
      [7000, false],
    ];
    assert.deepEqual(await run(instance('healthy'), script), ['unhealthy@status 500']);
  });

  it('brings an unhealthy instance back after `healthy` consecutive passes', async () => {
    const script: [number, boolean][] = [
      [3000, true],
      [4000, false],
      [5000, true],
      [6000, true],
    ];
    assert.deepEqual(await run(instance('unhealthy'), script), ['healthy@status 200']);
  });
});
