// Records every state change as an event in the store, and mirrors it to the platform's own log.
import type { BerthEvent, NewEvent } from '../domain/event.js';
import type { Logger } from '../lib/logger.js';
import type { Store } from './store/store.js';

export class EventLog {
  readonly #store: Store;
  readonly #log: Logger;

  constructor(store: Store, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  record(event: Omit<NewEvent, 'app' | 'service' | 'instance' | 'data'> & Partial<NewEvent>): BerthEvent {
    const stored = this.#store.appendEvent({
      app: null,
      service: null,
      instance: null,
      data: {},
      ...event,
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
}
