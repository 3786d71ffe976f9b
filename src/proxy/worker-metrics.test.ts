import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Metrics } from './metrics.js';
import { sumWorkerMetrics, type WorkerMetrics } from './worker-metrics.js';

function worker(requests: number, ms: number, inFlight: number): WorkerMetrics {
  const target = new Metrics();
  for (let i = 0; i < requests; i++) target.record(200, false, ms, 10, 20);
  target.inFlight = inFlight;
  const group = new Metrics();
  group.record(503, true, 0.1, 0, 0);
  return {
    groups: { web: { group: group.toRaw(), targets: { a: target.toRaw() } } },
    drained: { 'web/old': target.toRaw() },
    unrouted: { notFound: 1, redirected: 2, challenges: 3 },
  };
}

function counters(report: WorkerMetrics, id = 'a') {
  const m = new Metrics();
  m.addRaw(report.groups.web!.targets[id]!);
  return m.toJSON();
}

describe('sumWorkerMetrics', () => {
  it('adds counters, histograms and gauges of several workers as if one had counted everything', () => {
    const sum = sumWorkerMetrics([worker(3, 1, 1), worker(5, 100, 2)]);
    const one = new Metrics();
    for (let i = 0; i < 3; i++) one.record(200, false, 1, 10, 20);
    for (let i = 0; i < 5; i++) one.record(200, false, 100, 10, 20);
    one.inFlight = 3;
    assert.deepEqual(counters(sum), one.toJSON());
    assert.deepEqual(sum.unrouted, { notFound: 2, redirected: 4, challenges: 6 });
    const drained = new Metrics();
    drained.addRaw(sum.drained['web/old']!);
    assert.equal(drained.toJSON().requests, 8, 'a drained target counts what every worker sent it');
    assert.equal(drained.toJSON().inFlight, 0);
    const group = new Metrics();
    group.addRaw(sum.groups.web!.group);
    assert.equal(group.toJSON().proxyErrors['503'], 2);
  });

  it('keeps the counts of workers gone but not their gauges, and forgets targets no longer served or drained', () => {
    const gone = sumWorkerMetrics([worker(4, 1, 7)], { gauges: false });
    assert.equal(counters(gone).requests, 4);
    assert.equal(counters(gone).inFlight, 0);
    const served: WorkerMetrics = {
      groups: { web: { group: new Metrics().toRaw(), targets: {} } },
      drained: {},
      unrouted: gone.unrouted,
    };
    const pruned = sumWorkerMetrics([gone], { only: served });
    assert.deepEqual(pruned.groups.web!.targets, {});
    assert.deepEqual(pruned.drained, {});
  });
});
