// Ring of numbered proxy events, read with `after=N` and optional long-poll, so a restarted reader catches up.
import { randomUUID } from 'node:crypto';
import type { EventsResponse, ProxyEvent } from '../domain/route-table.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** An event before the log numbers and timestamps it. */
export type NewProxyEvent = DistributiveOmit<ProxyEvent, 'seq' | 'time'>;

/** Keeps the last `capacity` events; wakes long-polling readers when one is appended. */
export class EventLog {
  readonly #ring: ProxyEvent[] = [];
  readonly #capacity: number;
  readonly #now: () => Date;
  #seq = 0;
  readonly epoch = randomUUID();
  #waiters = new Set<() => void>();

  constructor(options: { capacity?: number; now?: () => Date } = {}) {
    this.#capacity = options.capacity ?? 10_000;
    this.#now = options.now ?? (() => new Date());
  }

  get lastSeq(): number {
    return this.#seq;
  }

  append(event: NewProxyEvent): ProxyEvent {
    const full = { ...event, seq: ++this.#seq, time: this.#now().toISOString() } as ProxyEvent;
    this.#ring.push(full);
    if (this.#ring.length > this.#capacity) this.#ring.shift();
    const waiters = this.#waiters;
    this.#waiters = new Set();
    for (const wake of waiters) wake();
    return full;
  }

  /** Events with `seq > after`. */
  read(after: number): EventsResponse {
    const first = this.#ring[0];
    const truncated = first !== undefined && first.seq > after + 1;
    return {
      events: this.#ring.filter((e) => e.seq > after),
      lastSeq: this.#seq,
      truncated,
      epoch: this.epoch,
    };
  }

  /** Like `read`, but waits up to `waitMs` for a new event when there is none yet. */
  async wait(after: number, waitMs: number, signal?: AbortSignal): Promise<EventsResponse> {
    // A cursor beyond the last event comes from an earlier process: answer at once so the reader resyncs.
    if (this.#seq !== after || waitMs <= 0) return this.read(after);
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      this.#waiters.add(done);
      signal?.addEventListener('abort', done);
    });
    return this.read(after);
  }

  /** Releases every long-polling reader (shutdown). */
  wakeAll(): void {
    const waiters = this.#waiters;
    this.#waiters = new Set();
    for (const wake of waiters) wake();
  }
}
