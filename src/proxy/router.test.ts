import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_TUNNEL_IDLE_TIMEOUT_MS, type Route } from '../domain/route-table.js';
import { Router } from './router.js';
import { StickyCookie } from './sticky-cookie.js';
import type { TargetGroup } from './target-group.js';

function group(name: string, active = () => true): TargetGroup {
  return { name, hasActiveTargets: active } as unknown as TargetGroup;
}

const route = (host: string, name: string, pathPrefix?: string): Route => ({
  host,
  pathPrefix,
  tunnelIdleTimeoutMs: DEFAULT_TUNNEL_IDLE_TIMEOUT_MS,
  redirect: true,
  releaseOverride: false,
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
          redirect: true,
          releaseOverride: false,
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

describe('RouteEntry with stickiness and release override', () => {
  const sticky = new StickyCookie(Buffer.alloc(32, 7));
  let v2Active = true;
  const groups = new Map([
    ['shop.web', group('shop.web')],
    ['shop.web.v2', group('shop.web.v2', () => v2Active)],
  ]);
  const canaryRoute = (options: Partial<Route> = {}, canaryWeight = 10): Route => ({
    host: 'shop.localhost',
    tunnelIdleTimeoutMs: DEFAULT_TUNNEL_IDLE_TIMEOUT_MS,
    redirect: true,
    releaseOverride: false,
    stickiness: { durationS: 3600 },
    backends: [
      { targetGroup: 'shop.web', weight: 100 - canaryWeight, release: 'v1' },
      { targetGroup: 'shop.web.v2', weight: canaryWeight, release: 'v2' },
    ],
    ...options,
  });
  const entryOf = (r: Route, key = sticky) => new Router([r], groups, key).match('shop.localhost', '/')!;
  /** The cookie a response sets, as a browser sends it back. */
  const cookieOf = (line: string) => line.slice('set-cookie: '.length, line.indexOf(';'));

  it('keeps a client on the group it first got while the route splits, and honours weights for the others', () => {
    const entry = entryOf(canaryRoute());
    const first = entry.pickGroup()!;
    const line = entry.stickyLine(first, undefined, undefined, true);
    assert.match(
      line,
      /^set-cookie: berth-tg=[A-Za-z0-9_-]{22}; Path=\/; Max-Age=3600; HttpOnly; SameSite=Lax; Secure\r\n$/,
    );
    assert.doesNotMatch(line, /shop|v1|v2/, 'the token does not name the group');
    const cookie = `other=1; ${cookieOf(line)}`;
    for (let i = 0; i < 50; i++) assert.equal(entry.pickGroup(cookie)?.name, first.name);
    // Pinned requests do not move the round robin: clients without a cookie still get exactly 90/10.
    const picks = Array.from({ length: 1000 }, () => entry.pickGroup()!.name);
    assert.equal(picks.filter((p) => p === 'shop.web.v2').length, 100);
  });

  it('pins canary clients too, and re-chooses when the pinned group leaves the route or loses its weight', () => {
    const entry = entryOf(canaryRoute({}, 50));
    const canary = groups.get('shop.web.v2')!;
    const cookie = cookieOf(entry.stickyLine(canary, undefined, undefined, false));
    assert.doesNotMatch(entry.stickyLine(canary, undefined, undefined, false), /Secure/);
    for (let i = 0; i < 20; i++) assert.equal(entry.pickGroup(cookie)?.name, 'shop.web.v2');
    // Aborted: the old group alone. The cookie names nothing in the route.
    const aborted = entryOf({ ...canaryRoute(), backends: [{ targetGroup: 'shop.web', weight: 1 }] });
    assert.equal(aborted.pickGroup(cookie)?.name, 'shop.web');
    assert.equal(
      aborted.stickyLine(groups.get('shop.web')!, cookie, undefined, true),
      '',
      'no split, no cookie',
    );
    // The group at weight 0: weighted choice, and a new cookie naming it.
    const zero = entryOf(canaryRoute({}, 0));
    assert.equal(zero.pickGroup(cookie)?.name, 'shop.web');
    assert.equal(zero.stickyLine(groups.get('shop.web')!, cookie, undefined, true), '');
    // No active target (its instances draining): weighted choice among the others.
    v2Active = false;
    try {
      assert.equal(entry.pickGroup(cookie)?.name, 'shop.web');
    } finally {
      v2Active = true;
    }
  });

  it('refuses tokens made with another key, garbage, and names of groups', () => {
    const entry = entryOf(canaryRoute({}, 50));
    const foreign = entryOf(canaryRoute({}, 50), new StickyCookie(Buffer.alloc(32, 8)));
    const forged = cookieOf(foreign.stickyLine(groups.get('shop.web.v2')!, undefined, undefined, false));
    for (const cookie of [forged, 'berth-tg=shop.web.v2', 'berth-tg=', 'xberth-tg=abc', 'berth-tg']) {
      const picks = new Set(Array.from({ length: 10 }, () => entry.pickGroup(cookie)!.name));
      assert.equal(picks.size, 2, `${cookie} is ignored: both groups still get requests`);
    }
  });

  it('sets no cookie on a route without stickiness, or with one group', () => {
    const plain = entryOf(canaryRoute({ stickiness: undefined }));
    assert.equal(plain.stickyLine(plain.pickGroup()!, undefined, undefined, true), '');
    const single = entryOf({ ...canaryRoute(), backends: [{ targetGroup: 'shop.web', weight: 1 }] });
    assert.equal(single.stickyLine(single.pickGroup()!, undefined, undefined, true), '');
  });

  it('scopes the cookie to the route path, and to "/" when the path cannot go in a cookie', () => {
    const r = (pathPrefix: string) =>
      new Router([canaryRoute({ pathPrefix })], groups, sticky).match('shop.localhost', pathPrefix)!;
    const api = r('/api');
    assert.match(api.stickyLine(api.pickGroup()!, undefined, undefined, false), /; Path=\/api;/);
    const odd = r('/a;b');
    assert.match(odd.stickyLine(odd.pickGroup()!, undefined, undefined, false), /; Path=\/;/);
  });

  it('sends a tester to the release X-Berth-Release or the berth-release cookie names, even at weight 0', () => {
    const entry = entryOf(canaryRoute({ releaseOverride: true }, 0));
    for (let i = 0; i < 10; i++) {
      assert.equal(entry.pickGroup(undefined, 'v2')?.name, 'shop.web.v2');
      assert.equal(entry.pickGroup('a=b; berth-release=v2')?.name, 'shop.web.v2');
      assert.equal(entry.pickGroup(undefined, 'v1')?.name, 'shop.web');
    }
    // The header wins over the cookie; an unknown release is an ordinary request.
    assert.equal(entry.pickGroup('berth-release=v1', 'v2')?.name, 'shop.web.v2');
    assert.equal(entry.pickGroup(undefined, 'v9')?.name, 'shop.web');
    // A release with no active target cannot be forced.
    v2Active = false;
    try {
      assert.equal(entry.pickGroup(undefined, 'v2')?.name, 'shop.web');
    } finally {
      v2Active = true;
    }
  });

  it('ignores the release header and cookie unless the route allows them, and sets no pin on forced requests', () => {
    const closed = entryOf(canaryRoute({ releaseOverride: false }, 0));
    for (let i = 0; i < 10; i++) assert.equal(closed.pickGroup('berth-release=v2', 'v2')?.name, 'shop.web');
    const open = entryOf(canaryRoute({ releaseOverride: true }, 50));
    const forced = open.pickGroup(undefined, 'v2')!;
    assert.equal(open.stickyLine(forced, undefined, 'v2', true), '');
    // The header beats a pin to the other release.
    const pin = cookieOf(open.stickyLine(groups.get('shop.web')!, undefined, undefined, true));
    assert.equal(open.pickGroup(pin, 'v2')?.name, 'shop.web.v2');
  });
});
