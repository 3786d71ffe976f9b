import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_HEALTH } from '../domain/route-table.js';
import { HealthCheck, type ProbeResult } from './health-check.js';

const pass: ProbeResult = { status: 200 };
const fail: ProbeResult = { status: 503 };
const config = { ...DEFAULT_HEALTH, healthyThreshold: 3, unhealthyThreshold: 2 };

function run(check: HealthCheck, results: ProbeResult[]): string[] {
  return results.map((r) => {
    const change = check.record(r);
    return change === undefined ? '-' : `${change.from}>${change.to}(${change.reason})`;
  });
}

describe('HealthCheck (ALB semantics)', () => {
  it('makes a new target healthy after one passing check', () => {
    assert.deepEqual(run(new HealthCheck(config), [pass]), ['initial>healthy(status 200)']);
  });

  it('takes a target out after `unhealthy` consecutive failures and back after `healthy` consecutive passes', () => {
    const check = new HealthCheck(config);
    assert.deepEqual(run(check, [pass, fail, pass, fail, fail, pass, pass, fail, pass, pass, pass]), [
      'initial>healthy(status 200)',
      '-',
      '-',
      '-',
      'healthy>unhealthy(status 503)',
      '-',
      '-',
      '-',
      '-',
      '-',
      'unhealthy>healthy(status 200)',
    ]);
  });

  it('reports timeouts and refused connections as reasons, and honours success code ranges', () => {
    const check = new HealthCheck({ ...config, successCodes: '200,204' });
    assert.deepEqual(run(check, [{ error: 'timeout' }, { error: 'connection refused' }]), [
      '-',
      'initial>unhealthy(connection refused)',
    ]);
    const strict = new HealthCheck({ ...config, successCodes: '204' });
    assert.deepEqual(run(strict, [pass, pass, { status: 204 }]), ['-', 'initial>unhealthy(status 200)', '-']);
  });

  it('passive failure takes a target out at once and needs `healthy` passes to return', () => {
    const check = new HealthCheck(config);
    run(check, [pass]);
    assert.deepEqual(check.markFailing('connection refused'), {
      from: 'healthy',
      to: 'unhealthy',
      reason: 'connection refused',
    });
    assert.deepEqual(run(check, [pass, pass, pass]), ['-', '-', 'unhealthy>healthy(status 200)']);
  });
});

describe('HealthCheck grace period (a booting target)', () => {
  const graced = { ...config, graceMs: 3000, intervalMs: 1000 };

  it('does not count failures within the grace period, keeping the last result as the reason', () => {
    const check = new HealthCheck(graced, { registeredAt: 0 });
    assert.equal(check.record(fail, 100), undefined);
    assert.equal(check.record({ error: 'connection refused' }, 2900), undefined);
    assert.deepEqual([check.state, check.reason], ['initial', 'connection refused']);
    assert.equal(check.record(fail, 3000), undefined, 'one failure past grace is not enough');
    assert.deepEqual(check.record(fail, 4000), { from: 'initial', to: 'unhealthy', reason: 'status 503' });
  });

  it('counts a pass at once: a booting target joins as soon as it answers', () => {
    const check = new HealthCheck(graced, { registeredAt: 0 });
    check.record(fail, 50);
    assert.deepEqual(check.record(pass, 150), { from: 'initial', to: 'healthy', reason: 'status 200' });
  });

  it('checks a booting target every 100 ms within its grace, then at the interval', () => {
    const check = new HealthCheck(graced, { registeredAt: 0 });
    assert.equal(check.nextCheckIn(0), 100);
    assert.equal(check.nextCheckIn(3000), 1000);
    assert.equal(new HealthCheck({ ...graced, intervalMs: 60 }, { registeredAt: 0 }).nextCheckIn(0), 60);
    check.record(pass, 10);
    assert.equal(check.nextCheckIn(10), 1000, 'a healthy target is checked at the interval');
  });

  it('lets a target serve when failing open unless it is a new one still booting', () => {
    const booting = new HealthCheck(graced, { registeredAt: 0 });
    assert.equal(booting.servesWhenFailingOpen(2999), false);
    assert.equal(booting.servesWhenFailingOpen(3000), true);
    const restored = new HealthCheck(graced, { registeredAt: 0, restored: true });
    assert.equal(restored.servesWhenFailingOpen(0), true, 'a target restored by a proxy restart was serving');
    assert.equal(restored.inGrace(0), false);
  });
});
