import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_TUNNEL_IDLE_TIMEOUT_MS, type Route } from '../domain/route-table.js';
import { Router } from './router.js';
import type { TargetGroup } from './target-group.js';

function group(name: string): TargetGroup {
  return { name, hasActiveTargets: () => true } as unknown as TargetGroup;
}

const route = (host: string, name: string, pathPrefix?: string): Route => ({
  host,
  pathPrefix,
  tunnelIdleTimeoutMs: DEFAULT_TUNNEL_IDLE_TIMEOUT_MS,
  backends: [{ targetGroup: name, weight: 1 }],
});

describe('Router', () => {
  const names = ['root', 'api', 'apiv2', 'wild', 'deep'];
  const groups = new Map(names.map((n) => [n, group(n)]));
  const router = new Router(
    [
      route('app.localhost', 'root'),
      route('app.localhost', 'api', '/api'),
      route('app.localhost', 'apiv2', '/api/v2/'),
      route('*.localhost', 'wild'),
      route('*.deep.localhost', 'deep'),
    ],
    groups,
  );
  const match = (host: string, path: string) => router.match(host, path)?.pickGroup()?.name;

  it('prefers exact hosts and the longest path prefix on segment boundaries', () => {
    assert.equal(match('app.localhost', '/'), 'root');
    assert.equal(match('app.localhost', '/api'), 'api');
    assert.equal(match('app.localhost', '/api?x'), 'api');
    assert.equal(match('app.localhost', '/api/v1'), 'api');
    assert.equal(match('app.localhost', '/api/v2/users'), 'apiv2');
    assert.equal(match('app.localhost', '/apiary'), 'root');
  });

  it('matches the longest wildcard suffix and never the bare suffix', () => {
    assert.equal(match('x.localhost', '/'), 'wild');
    assert.equal(match('a.b.deep.localhost', '/'), 'deep');
    assert.equal(match('localhost', '/'), undefined);
    assert.equal(match('other.test', '/'), undefined);
  });

  it('knows which hosts it serves, exactly or by a wildcard (on-demand certificates ask it)', () => {
    assert.equal(router.servesHost('app.localhost'), true);
    assert.equal(router.servesHost('x.deep.localhost'), true);
    assert.equal(router.servesHost('localhost'), false);
    assert.equal(
      new Router([route('app.localhost', 'root', '/api')], groups).servesHost('app.localhost'),
      true,
    );
    assert.equal(new Router([route('app.localhost', 'root')], groups).servesHost('probe-1.localhost'), false);
  });

  it('splits between weighted target groups exactly', () => {
    const canary = new Router(
      [
        {
          host: 'c.localhost',
          tunnelIdleTimeoutMs: DEFAULT_TUNNEL_IDLE_TIMEOUT_MS,
          backends: [
            { targetGroup: 'root', weight: 3 },
            { targetGroup: 'api', weight: 1 },
          ],
        },
      ],
      groups,
    );
    const entry = canary.match('c.localhost', '/')!;
    const picks = Array.from({ length: 8 }, () => entry.pickGroup()!.name);
    assert.equal(picks.filter((p) => p === 'api').length, 2);
  });
});
