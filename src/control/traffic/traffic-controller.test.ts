// Unit tests of ramps off an external origin on the control plane's core: the proxy's counters are scripted.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { controlWorld, shopSpec } from '../../../test/fakes/control-world.js';
import type { Counters, MetricsResponse, TargetStatus } from '../../domain/route-table.js';
import { effectiveWeights } from '../../domain/traffic.js';
import { silentLogger } from '../../lib/logger.js';
import { TrafficController } from './traffic-controller.js';

const ORIGINS = [
  '    deploy: { analysis: { minRequests: 50 } }',
  'origins:',
  '  heroku: { url: "https://shop.herokuapp.com" }',
].join('\n');

/** Counters of `requests` answers, `errors` of them 500s, all in one fast latency bucket. */
function counters(requests: number, errors = 0): Counters {
  return {
    requests,
    status: { '1xx': 0, '2xx': requests - errors, '3xx': 0, '4xx': 0, '5xx': errors },
    proxyErrors: { '499': 0, '502': 0, '503': 0, '504': 0 },
    retries: 0,
    bytesIn: 0,
    bytesOut: 0,
    inFlight: 0,
    activeConnections: 0,
    latencyMs: { p50: 1, p95: 1, p99: 1, max: 1, count: requests },
    histogram: requests === 0 ? [] : [{ le: 1, count: requests }],
  };
}

function target(group: string, id: string, c: Counters): TargetStatus {
  return {
    targetGroup: group,
    id,
    host: '127.0.0.1',
    port: 1,
    weight: 1,
    state: 'active',
    health: 'healthy',
    healthReason: 'status 200',
    inFlight: 0,
    upgraded: 0,
    counters: c,
  };
}

async function setUp() {
  const world = controlWorld();
  await world.apply(shopSpec({ instances: 1, extra: ORIGINS }));
  const proxy: MetricsResponse = {
    total: counters(0),
    targetGroups: {},
    targets: [],
    unrouted: { notFound: 0, redirected: 0, challenges: 0 },
  };
  /** The proxy's counters now: the Berth side's one target and the origin's. */
  const served = (berth: Counters, origin: Counters) => {
    proxy.targets = [target('shop.web', 'web-1', berth), target('shop.heroku.origin', 'heroku', origin)];
  };
  served(counters(0), counters(0));
  let changes = 0;
  const traffic = new TrafficController({
    store: world.store,
    proxyMetrics: async () => structuredClone(proxy),
    clock: world.clock,
    log: silentLogger,
    changed: () => {
      changes++;
    },
  });
  const kinds = () =>
    world.store.events
      .list({ app: 'shop' })
      .map((e) => e.kind)
      .filter((k) => k.startsWith('traffic.'));
  return { world, traffic, served, kinds, changes: () => changes };
}

describe('TrafficController', () => {
  it('holds a step while the Berth side has served too few requests, and never counts that as a pass', async () => {
    const { world, traffic, served, kinds } = await setUp();
    await traffic.ramp('shop', { service: 'web', steps: [10, 100], intervalMs: 10_000 }, 'admin');
    await traffic.tick();
    served(counters(20), counters(180));
    await world.clock.advance(10_000);
    await traffic.tick();
    const ramp = world.store.getTraffic('shop')!.ramp!;
    assert.equal(ramp.state, 'running');
    assert.equal(ramp.step, 0);
    assert.equal(ramp.last?.verdict, 'hold');
    assert.deepEqual(ramp.last?.reasons, ['not enough requests yet: 20 of the 50 a verdict needs']);
    assert.deepEqual(kinds(), [
      'traffic.ramp_started',
      'traffic.ramp_step',
      'traffic.ramp_held',
      'traffic.ramp_window',
    ]);
  });

  it('sends every request back to the origin when the Berth side fails the analysis', async () => {
    const { world, traffic, served, kinds } = await setUp();
    await traffic.set('shop', { web: 0, heroku: 100 }, 'admin');
    await traffic.ramp('shop', { service: 'web', steps: [10, 50, 100], intervalMs: 10_000 }, 'admin');
    assert.deepEqual(effectiveWeights(world.store.getTraffic('shop')!), { web: 10, heroku: 90 });
    await traffic.tick();
    served(counters(100, 30), counters(900));
    await world.clock.advance(10_000);
    await traffic.tick();
    const split = world.store.getTraffic('shop')!;
    assert.equal(split.ramp?.state, 'aborted');
    assert.deepEqual(effectiveWeights(split), { web: 0, heroku: 100 });
    assert.match(split.ramp!.last!.reasons.join('; '), /^5xx 30% \(limit 5%\); 5xx 30% vs origin 0%/);
    assert.equal(kinds().at(-1), 'traffic.ramp_aborted');
    await assert.rejects(traffic.abort('shop', 'admin'), /shop has no ramp running: nothing to abort/);
  });

  it('refuses a second ramp or new weights while one runs, and bad steps', async () => {
    const { traffic } = await setUp();
    await assert.rejects(
      traffic.ramp('shop', { service: 'web', steps: [50, 10], intervalMs: 10_000 }, 'admin'),
      /steps must be increasing whole percentages from 1 to 100/,
    );
    await assert.rejects(
      traffic.ramp('shop', { service: 'heroku', steps: [10], intervalMs: 10_000 }, 'admin'),
      /"heroku" is not a routed service of shop/,
    );
    await traffic.ramp('shop', { service: 'web', steps: [10, 100], intervalMs: 10_000 }, 'admin');
    await assert.rejects(traffic.set('shop', { web: 1, heroku: 1 }, 'admin'), /shop has a ramp running/);
    const status = await traffic.abort('shop', 'alice');
    assert.equal(status.split?.ramp?.state, 'aborted');
    assert.equal(status.split?.ramp?.last?.by, 'alice');
  });
});
