// Records every state change as an event in the store, and mirrors it to the platform's own log; secrets scrubbed.
import type { BerthEvent, NewEvent } from '../domain/event.js';
import type { Logger } from '../lib/logger.js';
import type { Store } from './store/store.js';

/** Replaces secret values in text (the secrets module's `TextScrubber`). */
export interface EventScrubber {
  scrub(text: string): string;
  scrubValue<T>(value: T): T;
}

export class EventLog {
  readonly #store: Store;
  readonly #log: Logger;
  readonly #scrubber: EventScrubber | undefined;

  /** `scrubber`: every event's message and data pass through it before they are stored or logged. */
  constructor(store: Store, log: Logger, scrubber?: EventScrubber) {
    this.#store = store;
    this.#log = log;
    this.#scrubber = scrubber;
  }

  record(event: Omit<NewEvent, 'app' | 'service' | 'instance' | 'data'> & Partial<NewEvent>): BerthEvent {
    const scrubber = this.#scrubber;
    const stored = this.#store.appendEvent({
      app: null,
      service: null,
      instance: null,
      ...event,
      message: scrubber ? scrubber.scrub(event.message) : event.message,
      data: scrubber ? scrubber.scrubValue(event.data ?? {}) : (event.data ?? {}),
    });
    this.#log.info(
      {
        kind: stored.kind,
        actor: stored.actor,
        app: stored.app,
        service: stored.service,
        instance: stored.instance,
      },
      stored.message,
    );
    return stored;
  }

  /** The newest event whose kind starts with `kindPrefix`, if any. */
  latest(kindPrefix: string): BerthEvent | undefined {
    return this.#store.listEvents({ kindPrefix, limit: 1 })[0];
  }
}
