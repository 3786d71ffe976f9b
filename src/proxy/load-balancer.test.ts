import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Balanced, LoadBalancer } from './load-balancer.js';

const make = (name: string, weight: number, inFlight = 0) => ({ name, weight, inFlight, currentWeight: 0 });

function tally(
  lb: LoadBalancer,
  targets: (Balanced & { name: string })[],
  n: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const t = lb.pick(targets)!;
    out[t.name] = (out[t.name] ?? 0) + 1;
  }
  return out;
}

describe('LoadBalancer', () => {
  it('round robin gives exact weighted shares without bursts', () => {
    const lb = new LoadBalancer('round_robin');
    const targets = [make('a', 5), make('b', 1), make('c', 1)];
    const seq = Array.from({ length: 7 }, () => lb.pick(targets)!.name).join('');
    assert.equal(seq, 'aabacaa');
    assert.deepEqual(tally(lb, targets, 700), { a: 500, b: 100, c: 100 });
  });

  it('least outstanding picks the lowest in-flight per weight and rotates among ties', () => {
    const lb = new LoadBalancer('least_outstanding');
    assert.equal(lb.pick([make('a', 1, 3), make('b', 1, 1), make('c', 1, 2)])!.name, 'b');
    assert.equal(lb.pick([make('a', 4, 3), make('b', 1, 1)])!.name, 'a');
    const idle = [make('a', 1), make('b', 1)];
    assert.deepEqual(tally(lb, idle, 10), { a: 5, b: 5 });
  });

  it('skips the excluded target (retries go elsewhere) and returns undefined when nothing is left', () => {
    const lb = new LoadBalancer('round_robin');
    const a = make('a', 1);
    const b = make('b', 1);
    for (let i = 0; i < 4; i++) assert.equal(lb.pick([a, b], a), b);
    assert.equal(lb.pick([a], a), undefined);
  });
});
