import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BerthError } from './errors.js';
import { parseSpec } from './spec.js';
import { effectiveWeights, parseWeights, splitBackends, type TrafficRamp } from './traffic.js';

const spec = parseSpec(
  [
    'app: shop',
    'routes: [{ host: shop.localhost, service: web }]',
    'services:',
    '  web: { run: x }',
    '  worker: { run: y }',
    'origins:',
    '  heroku: { url: "https://shop.herokuapp.com" }',
    '  fly: { url: "https://shop.fly.dev" }',
    '',
  ].join('\n'),
  { file: 'berth.yaml' },
);

function issuesOf(input: Record<string, unknown>): string[] {
  try {
    parseWeights(spec, input);
  } catch (error) {
    assert.ok(error instanceof BerthError);
    return error.issues.map((i) => `${i.path}: ${i.message}`);
  }
  assert.fail('expected the weights to be refused');
}

describe('parseWeights', () => {
  it('takes routed services and origins', () => {
    assert.deepEqual(parseWeights(spec, { web: 10, heroku: 90 }), { web: 10, heroku: 90 });
  });

  it('refuses an unknown name (a service with no route too), a bad weight, a zero sum and no origin', () => {
    assert.deepEqual(issuesOf({ worker: 1, heroku: 1 }), [
      'worker: shop has no routed service or origin "worker"; expected one of web (service), heroku (origin), fly (origin)',
    ]);
    assert.deepEqual(issuesOf({ web: -1, heroku: 1.5 }), [
      'web: expected a whole number from 0 to 1000, got -1',
      'heroku: expected a whole number from 0 to 1000, got 1.5',
    ]);
    assert.deepEqual(issuesOf({ web: 0, heroku: 0 }), [
      ': the weights must add up to more than 0: something has to take the requests',
    ]);
    assert.deepEqual(issuesOf({ web: 5 }), [': name at least one origin (heroku, fly)']);
  });
});

describe('splitBackends', () => {
  const originGroup = (o: string) => `shop.${o}.origin`;
  const isOrigin = (n: string) => n === 'heroku' || n === 'fly';

  it('scales the service groups (a canary included) to its share, out of 1000', () => {
    const own = [
      { targetGroup: 'shop.web', weight: 75, release: 'v1' },
      { targetGroup: 'shop.web.v2', weight: 25, release: 'v2' },
    ];
    assert.deepEqual(splitBackends(own, 'web', { web: 40, heroku: 60 }, originGroup, isOrigin), [
      { targetGroup: 'shop.web', weight: 300, release: 'v1' },
      { targetGroup: 'shop.web.v2', weight: 100, release: 'v2' },
      { targetGroup: 'shop.heroku.origin', weight: 600, release: 'heroku' },
    ]);
  });

  it('labels the sides for X-Berth-Release: the service by its name, each origin by its own', () => {
    const own = [{ targetGroup: 'shop.web', weight: 1 }];
    assert.deepEqual(splitBackends(own, 'web', { web: 0, heroku: 1, fly: 1 }, originGroup, isOrigin), [
      { targetGroup: 'shop.web', weight: 0, release: 'web' },
      { targetGroup: 'shop.heroku.origin', weight: 500, release: 'heroku' },
      { targetGroup: 'shop.fly.origin', weight: 500, release: 'fly' },
    ]);
  });

  it('leaves a route alone when the split does not name its service, or there is no split', () => {
    const own = [{ targetGroup: 'shop.api', weight: 1 }];
    assert.deepEqual(splitBackends(own, 'api', { web: 1, heroku: 1 }, originGroup, isOrigin), own);
    assert.deepEqual(splitBackends(own, 'api', undefined, originGroup, isOrigin), own);
  });
});

describe('effectiveWeights', () => {
  const ramp: TrafficRamp = {
    service: 'web',
    steps: [10, 50, 100],
    step: 1,
    intervalMs: 1000,
    analysis: spec.services['web']!.deploy.analysis,
    origins: { heroku: 0.75, fly: 0.25 },
    state: 'running',
    windowStartedAt: 1,
    baseline: {},
    holds: 0,
    last: null,
  };

  it("is the running ramp's step, the origins sharing the rest in their proportions", () => {
    const split = { app: 'shop', weights: { web: 0, heroku: 3, fly: 1 }, ramp, updatedAt: 0 };
    assert.deepEqual(effectiveWeights(split), { web: 50, heroku: 38, fly: 13 });
  });

  it('is the weights as set once the ramp has ended', () => {
    const split = {
      app: 'shop',
      weights: { web: 0, heroku: 100 },
      ramp: { ...ramp, state: 'aborted' as const },
      updatedAt: 0,
    };
    assert.deepEqual(effectiveWeights(split), { web: 0, heroku: 100 });
  });
});
