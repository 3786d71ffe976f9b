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
