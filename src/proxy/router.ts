// Maps Host (exact, then the longest `*.suffix`) and path prefix (longest, on segment boundaries) to a route.
import { hstsHeaderLine, type Route } from '../domain/route-table.js';
import {
  cookieValues,
  RELEASE_COOKIE,
  STICKY_COOKIE,
  type StickyCookie,
  stickyCookieLine,
} from './sticky-cookie.js';
import type { TargetGroup } from './target-group.js';

interface Backend {
  group: TargetGroup;
  weight: number;
  currentWeight: number;
  release: string | undefined;
  /** The sticky token naming this group ('' when the route is not sticky). */
  token: string;
}

/** A matched route with its weighted target groups. */
export class RouteEntry {
  readonly route: Route;
  /** The route's `strict-transport-security` line (with CRLF) for HTTPS responses; '' without HSTS. */
  readonly hstsLine: string;
  readonly #backends: Backend[];
  /** Set-Cookie lines by token, over HTTP and HTTPS; empty when the route is not sticky or does not split. */
  readonly #cookieLines = new Map<string, readonly [string, string]>();

  constructor(route: Route, groups: ReadonlyMap<string, TargetGroup>, sticky?: StickyCookie) {
    this.route = route;
    this.hstsLine = route.hsts === undefined ? '' : hstsHeaderLine(route.hsts);
    const tokens = route.stickiness !== undefined && sticky !== undefined;
    this.#backends = route.backends
      .filter((b) => groups.has(b.targetGroup))
      .map((b) => ({
        group: groups.get(b.targetGroup)!,
        weight: b.weight,
        currentWeight: 0,
        release: b.release,
        token: tokens ? sticky.token(b.targetGroup) : '',
      }));
    // A pin matters only while the route splits: a single group needs no cookie (and a Set-Cookie on every
    // response would make them all uncacheable).
    const stickiness = route.stickiness;
    if (stickiness !== undefined && tokens && this.#backends.filter((b) => b.weight > 0).length > 1) {
      // The cookie is scoped to the route's path; one the header syntax cannot carry falls back to "/".
      const path = /^\/[!-:<-~]*$/.test(route.pathPrefix ?? '/') ? (route.pathPrefix ?? '/') : '/';
      for (const b of this.#backends)
        this.#cookieLines.set(b.token, [
          stickyCookieLine(b.token, path, stickiness.durationS, false),
          stickyCookieLine(b.token, path, stickiness.durationS, true),
        ]);
    }
  }

  /**
   * Picks a target group for a request. First the release a tester asks for (`X-Berth-Release`, then the
   * `berth-release` cookie) when the route allows it and labels a group with it, whatever its weight; then the group
   * a valid sticky cookie names while it keeps a weight above 0; else smooth weighted round robin among the groups
   * that have an active target with weight > 0 (so an empty canary group does not turn its share into 503s). A
   * group without an active target is never forced or kept. Undefined when no group can serve.
   */
  pickGroup(cookie?: string, release?: string): TargetGroup | undefined {
    const backends = this.#backends;
    if (this.route.releaseOverride) {
      const forced = this.#forced(cookie, release);
      if (forced !== undefined) return forced;
    }
    if (backends.length === 1) {
      const only = backends[0]!;
      return only.weight > 0 && only.group.hasActiveTargets() ? only.group : undefined;
    }
    if (this.#cookieLines.size > 0) {
      const pinned = this.#pinned(cookie);
      if (pinned !== undefined) return pinned;
    }
    let total = 0;
    let best: Backend | undefined;
    for (const b of backends) {
      if (b.weight === 0 || !b.group.hasActiveTargets()) continue;
      b.currentWeight += b.weight;
      total += b.weight;
      if (best === undefined || b.currentWeight > best.currentWeight) best = b;
    }
    if (best === undefined) return undefined;
    best.currentWeight -= total;
    return best.group;
  }

  /**
   * The Set-Cookie line (with CRLF) that keeps the client on `group`, sent with every response while the route is
   * sticky and splits (each one renews the expiry, as ALB's does); '' otherwise, and for a request a tester forced.
   */
  stickyLine(
    group: TargetGroup,
    cookie: string | undefined,
    release: string | undefined,
    secure: boolean,
  ): string {
    if (this.#cookieLines.size === 0) return '';
    if (this.route.releaseOverride && this.#forced(cookie, release) !== undefined) return '';
    const backend = this.#backends.find((b) => b.group === group);
    const lines = backend === undefined ? undefined : this.#cookieLines.get(backend.token);
    return lines === undefined ? '' : lines[secure ? 1 : 0];
  }

  /** The group the request's release header or cookie names, if it can serve. */
  #forced(cookie: string | undefined, release: string | undefined): TargetGroup | undefined {
    const wanted = release ?? cookieValues(cookie, RELEASE_COOKIE)[0];
    if (wanted === undefined) return undefined;
    for (const b of this.#backends) if (b.release === wanted && b.group.hasActiveTargets()) return b.group;
    return undefined;
  }

  /** The group a sticky cookie of this route names, while it has a weight and an active target. */
  #pinned(cookie: string | undefined): TargetGroup | undefined {
    for (const token of cookieValues(cookie, STICKY_COOKIE)) {
      for (const b of this.#backends)
        if (b.token === token && b.weight > 0 && b.group.hasActiveTargets()) return b.group;
    }
    return undefined;
  }

  /** The first group with a weight (for 503 accounting when no group can serve). */
  get primaryGroup(): TargetGroup | undefined {
    return this.#backends.find((b) => b.weight > 0)?.group ?? this.#backends[0]?.group;
  }
}

interface PrefixList {
  entries: { prefix: string; entry: RouteEntry }[];
}

/** Immutable: a new route table builds a new Router, swapped in atomically. */
export class Router {
  readonly #exact = new Map<string, PrefixList>();
  /** Wildcards as `.suffix` (longest first). */
  readonly #wildcards: { suffix: string; list: PrefixList }[] = [];

  constructor(routes: readonly Route[], groups: ReadonlyMap<string, TargetGroup>, sticky?: StickyCookie) {
    const wild = new Map<string, PrefixList>();
    for (const route of routes) {
      const isWild = route.host.startsWith('*.');
      const key = isWild ? route.host.slice(1) : route.host;
      const map = isWild ? wild : this.#exact;
      let list = map.get(key);
      if (list === undefined) {
        list = { entries: [] };
        map.set(key, list);
      }
      list.entries.push({ prefix: route.pathPrefix ?? '/', entry: new RouteEntry(route, groups, sticky) });
    }
    for (const list of [...this.#exact.values(), ...wild.values()]) {
      list.entries.sort((a, b) => b.prefix.length - a.prefix.length);
    }
    for (const [suffix, list] of wild) this.#wildcards.push({ suffix, list });
    this.#wildcards.sort((a, b) => b.suffix.length - a.suffix.length);
  }

  /** True when some route serves this lower-case host (exactly or by a wildcard), whatever the path. */
  servesHost(host: string): boolean {
    if (this.#exact.has(host)) return true;
    for (const { suffix } of this.#wildcards)
      if (host.length > suffix.length && host.endsWith(suffix)) return true;
    return false;
  }

  /** The route for a lower-case host (no port) and a request target (path and query). */
  match(host: string, target: string): RouteEntry | undefined {
    const exact = this.#exact.get(host);
    if (exact !== undefined) {
      const found = matchPrefix(exact, target);
      if (found !== undefined) return found;
    }
    for (const { suffix, list } of this.#wildcards) {
      if (host.length > suffix.length && host.endsWith(suffix)) {
        const found = matchPrefix(list, target);
        if (found !== undefined) return found;
      }
    }
    return undefined;
  }
}

function matchPrefix(list: PrefixList, target: string): RouteEntry | undefined {
  for (const { prefix, entry } of list.entries) {
    if (prefix === '/') return entry;
    if (!target.startsWith(prefix)) continue;
    // Segment boundary: "/api" matches "/api", "/api/x", "/api?q" but not "/apix".
    const next = target.charCodeAt(prefix.length);
    if (prefix.endsWith('/') || Number.isNaN(next) || next === 0x2f || next === 0x3f) return entry;
  }
  return undefined;
}
