// Maps Host (exact, then the longest `*.suffix`) and path prefix (longest, on segment boundaries) to a route.
import type { Route } from '../domain/route-table.js';
import type { TargetGroup } from './target-group.js';

/** A matched route with its weighted target groups. */
export class RouteEntry {
  readonly route: Route;
  readonly #backends: { group: TargetGroup; weight: number; currentWeight: number }[];

  constructor(route: Route, groups: ReadonlyMap<string, TargetGroup>) {
    this.route = route;
    this.#backends = route.backends
      .filter((b) => groups.has(b.targetGroup))
      .map((b) => ({ group: groups.get(b.targetGroup)!, weight: b.weight, currentWeight: 0 }));
  }

  /**
   * Picks a target group by smooth weighted round robin among the groups that have an active target with
   * weight > 0 (so an empty canary group does not turn its share into 503s). Undefined when none has one.
   */
  pickGroup(): TargetGroup | undefined {
    const backends = this.#backends;
    if (backends.length === 1) {
      const only = backends[0]!;
      return only.weight > 0 && only.group.hasActiveTargets() ? only.group : undefined;
    }
    let total = 0;
    let best: (typeof backends)[number] | undefined;
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

  constructor(routes: readonly Route[], groups: ReadonlyMap<string, TargetGroup>) {
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
      list.entries.push({ prefix: route.pathPrefix ?? '/', entry: new RouteEntry(route, groups) });
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
