import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BerthError, httpStatusOf } from './errors.js';
import { parseRouteTable, successCodeMatcher } from './route-table.js';

function issuesOf(input: unknown): { path: string; message: string }[] {
  try {
    parseRouteTable(input);
  } catch (err) {
    assert.ok(err instanceof BerthError);
    assert.equal(err.code, 'invalid_route_table');
    assert.equal(httpStatusOf(err.code), 400);
    return err.issues;
  }
  assert.fail('expected the table to be rejected');
}

describe('parseRouteTable', () => {
  it('fills every default so a minimal table is complete', () => {
    const table = parseRouteTable({
      routes: [{ host: 'shop.localhost', backends: [{ targetGroup: 'web' }] }],
      targetGroups: [{ name: 'web', targets: [{ id: 'i1', host: '127.0.0.1', port: 3000 }] }],
    });
    assert.equal(table.targetGroups[0]?.balancing, 'round_robin');
    assert.equal(table.targetGroups[0]?.health.healthyThreshold, 2);
    assert.equal(table.targetGroups[0]?.responseTimeoutMs, 30_000);
    assert.equal(table.targetGroups[0]?.targets[0]?.weight, 1);
    assert.equal(table.routes[0]?.backends[0]?.weight, 1);
    assert.deepEqual(table.reservedPathPrefixes, ['/.well-known/acme-challenge/']);
  });

  it('names the field path of every schema problem', () => {
    const issues = issuesOf({
      routes: [{ host: 'UPPER.localhost', backends: [] }],
      targetGroups: [
        {
          name: 'web',
          health: { timeoutMs: 5000, intervalMs: 1000 },
          targets: [{ id: 'a', host: 'h', port: 0 }],
        },
      ],
    });
    const paths = issues.map((i) => i.path).sort();
    assert.deepEqual(paths, [
      'routes.0.backends',
      'routes.0.host',
      'targetGroups.0.health.timeoutMs',
      'targetGroups.0.targets.0.port',
    ]);
  });

  it('takes an external origin group (TLS by default) and refuses an origin host that could end a header line', () => {
    const table = parseRouteTable({
      targetGroups: [{ name: 'shop.heroku.origin', origin: { host: 'shop.herokuapp.com' }, targets: [] }],
    });
    assert.deepEqual(table.targetGroups[0]?.origin, { host: 'shop.herokuapp.com', tls: true });
    const issues = issuesOf({
      targetGroups: [{ name: 'o', origin: { host: 'x.test\r\nx-evil: 1' }, targets: [] }],
    });
    assert.deepEqual(issues, [
      { path: 'targetGroups.0.origin.host', message: 'must be a host name or an IP address' },
    ]);
    assert.deepEqual(issuesOf({ targetGroups: [{ name: 'o', origin: { host: 'x.test', ca: 'nope' } }] }), [
      { path: 'targetGroups.0.origin.ca', message: 'no PEM certificate in it' },
    ]);
  });

  it('rejects unknown target groups, duplicates and all-zero weights', () => {
    const issues = issuesOf({
      routes: [
        { host: 'a.localhost', backends: [{ targetGroup: 'nope' }] },
        { host: 'b.localhost', backends: [{ targetGroup: 'web', weight: 0 }] },
        { host: 'b.localhost', backends: [{ targetGroup: 'web' }] },
      ],
      targetGroups: [
        {
          name: 'web',
          targets: [
            { id: 'x', host: 'h', port: 1 },
            { id: 'x', host: 'h', port: 2 },
          ],
        },
        { name: 'web' },
      ],
    });
    assert.deepEqual(
      issues.map((i) => i.path),
      [
        'targetGroups.0.targets.1.id',
        'targetGroups.1.name',
        'routes.0.backends.0.targetGroup',
        'routes.1.backends',
        'routes.2',
      ],
    );
  });

  it('accepts success codes as lists and ranges', () => {
    const ok = successCodeMatcher('200-299,302');
    assert.deepEqual([199, 200, 250, 299, 301, 302, 404].map(ok), [
      false,
      true,
      true,
      true,
      false,
      true,
      false,
    ]);
    assert.deepEqual(
      issuesOf({ targetGroups: [{ name: 'g', health: { successCodes: '300-200' } }] }).map((i) => i.path),
      ['targetGroups.0.health.successCodes'],
    );
  });
});
