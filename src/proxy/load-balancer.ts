// Picks a target for a request: smooth weighted round robin, or least outstanding requests (per weight).

/** What the balancer needs to know about a candidate. */
export interface Balanced {
  readonly weight: number;
  readonly inFlight: number;
  /** Scratch state of smooth weighted round robin, owned by the balancer. */
  currentWeight: number;
}

/** Balancing algorithm of a target group. */
export type Balancing = 'round_robin' | 'least_outstanding';

/**
 * Stateless apart from the candidates' `currentWeight`. Round robin is nginx's smooth weighted round robin
 * (exact shares, no bursts). Least outstanding picks the lowest `inFlight / weight`, breaking ties by
 * weighted round robin so idle targets still share the load evenly.
 */
export class LoadBalancer {
  balancing: Balancing;

  constructor(balancing: Balancing) {
    this.balancing = balancing;
  }

  /** Picks from `candidates` (all eligible, weight > 0 unless every weight is 0); `exclude` is skipped. */
  pick<T extends Balanced>(candidates: readonly T[], exclude?: T): T | undefined {
    if (this.balancing === 'least_outstanding') {
      let best: T[] = [];
      let bestLoad = Number.POSITIVE_INFINITY;
      for (const c of candidates) {
        if (c === exclude) continue;
        const load = (c.inFlight + 1) / Math.max(c.weight, 1e-9);
        if (load < bestLoad) {
          bestLoad = load;
          best = [c];
        } else if (load === bestLoad) {
          best.push(c);
        }
      }
      return best.length <= 1 ? best[0] : smoothWeighted(best, undefined);
    }
    return smoothWeighted(candidates, exclude);
  }
}

function smoothWeighted<T extends Balanced>(candidates: readonly T[], exclude: T | undefined): T | undefined {
  let total = 0;
  let best: T | undefined;
  for (const c of candidates) {
    if (c === exclude) continue;
    const w = c.weight;
    c.currentWeight += w;
    total += w;
    if (best === undefined || c.currentWeight > best.currentWeight) best = c;
  }
  if (best === undefined) return undefined;
  if (total === 0) {
    // Every weight is 0: fall back to plain rotation.
    for (const c of candidates) if (c !== exclude) c.currentWeight += 1;
    total = candidates.length - (exclude ? 1 : 0);
  }
  best.currentWeight -= total;
  return best;
}
