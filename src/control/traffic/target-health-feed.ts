// The proxy's verdicts on its targets, followed as an informer follows an API server: list, then watch.
import { BerthError } from '../../domain/errors.js';
import type {
  TargetHealthChanges,
  TargetHealthSnapshot,
  TargetHealthStatus,
} from '../../domain/target-health.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import { Notifier } from '../../lib/notifier.js';
import { every, type Ticker } from '../../lib/ticker.js';

/** What the feed needs of the proxy's admin API. */
export interface TargetHealthSource {
  targetHealth(): Promise<TargetHealthSnapshot>;
  targetHealthChanges(after: number, waitMs: number, signal?: AbortSignal): Promise<TargetHealthChanges>;
}

/** A target's health as last reported by the proxy. */
export type ObservedHealth = Pick<TargetHealthStatus, 'targetGroup' | 'health' | 'reason'>;

export interface TargetHealthFeedOptions {
  source: TargetHealthSource;
  log: Logger;
  clock?: Clock;
  /** How long one long-poll waits for a change. */
  waitMs?: number;
  /** How long to wait before trying again when the proxy does not answer. */
  retryMs?: number;
  /** Called after the cache changed (a transition, or a new list): the reconciler looks again. */
  onChange?: () => void;
  /** Called when the proxy is another process than before (it restarted): its route table may be stale. */
  onProxyRestart?: () => void;
}

/** Lists again this often even when in step (as informers resync): targets that left drop out of the cache. */
const RESYNC_MS = 10 * 60_000;

/**
 * The control plane's one view of target health: the proxy owns the checks; this follows them. It lists every
 * target's health with the sequence number it is current as of, then long-polls the transitions after it; a new
 * proxy process (another epoch), a gap (the proxy's ring moved past us) or an unreachable proxy makes it list
 * again. Readers use the cache (`healthOf`) level-triggered: they compare it with what they recorded, so a
 * transition missed while disconnected is still acted on after the next list.
 */
export class TargetHealthFeed {
  /** Notified after each change of the cache. */
  readonly changed = new Notifier();
  readonly #options: TargetHealthFeedOptions;
  readonly #clock: Clock;
  #listedAt = 0;
  #saidOutdated = false;
  #cache = new Map<string, ObservedHealth>();
  #epoch: string | undefined;
  #cursor: number | undefined;
  #ticker: Ticker | undefined;

  constructor(options: TargetHealthFeedOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  start(): void {
    this.#ticker ??= every(0, (signal) => this.#follow(signal), {
      name: 'target health feed',
      log: this.#options.log,
      clock: this.#clock,
      immediate: true,
      retryMs: this.#options.retryMs ?? 1000,
    });
  }

  async stop(): Promise<void> {
    await this.#ticker?.stop();
    this.#ticker = undefined;
  }

  /** The proxy's last verdict on a target (by id), or undefined when it has none (not registered, not listed yet). */
  healthOf(targetId: string): ObservedHealth | undefined {
    return this.#cache.get(targetId);
  }

  /** Every target of `group` the proxy reports, by id. */
  targetsOf(group: string): [string, ObservedHealth][] {
    return [...this.#cache].filter(([, target]) => target.targetGroup === group);
  }

  /** One step: list (when not in step with the proxy), else one long-poll for transitions. */
  async #follow(signal: AbortSignal): Promise<void> {
    const { source } = this.#options;
    if (this.#cursor === undefined || this.#clock.now() - this.#listedAt >= RESYNC_MS) {
      // A failed list is retried after retryMs (the ticker's), the cache kept as it was meanwhile.
      try {
        this.#list(await source.targetHealth());
      } catch (error) {
        if (error instanceof BerthError && error.code === 'not_found' && !this.#saidOutdated) {
          // A proxy started by an earlier version of Berth: no instance turns healthy until it is restarted.
          this.#saidOutdated = true;
          this.#options.log.error(
            { err: error },
            'the running proxy does not report target health (it is older than this control plane); restart it',
          );
        }
        throw error;
      }
      return;
    }
    let changes: TargetHealthChanges;
    try {
      changes = await source.targetHealthChanges(this.#cursor, this.#options.waitMs ?? 25_000, signal);
    } catch (error) {
      if (signal.aborted) return; // stopping
      throw error;
    }
    if (changes.epoch !== this.#epoch || changes.truncated || changes.lastSeq < this.#cursor) {
      this.#cursor = undefined; // out of step: list again
      return;
    }
    for (const change of changes.changes) {
      this.#cache.set(change.target, {
        targetGroup: change.targetGroup,
        health: change.to,
        reason: change.reason,
      });
    }
    this.#cursor = changes.lastSeq;
    if (changes.changes.length > 0) this.#changed();
  }

  #list(snapshot: TargetHealthSnapshot): void {
    const restarted = this.#epoch !== undefined && snapshot.epoch !== this.#epoch;
    this.#cache = new Map(
      snapshot.targets
        .filter((t) => t.state !== 'drained')
        .map((t) => [t.target, { targetGroup: t.targetGroup, health: t.health, reason: t.reason }]),
    );
    this.#epoch = snapshot.epoch;
    this.#cursor = snapshot.lastSeq;
    this.#listedAt = this.#clock.now();
    if (restarted) this.#options.onProxyRestart?.();
    this.#changed();
  }

  #changed(): void {
    this.changed.notify();
    this.#options.onChange?.();
  }
}
