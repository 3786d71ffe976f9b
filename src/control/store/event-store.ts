// The events table: every state change, appended in the writer's transaction, scrubbed, mirrored to the log.
import { z } from 'zod';
import type { BerthEvent, NewEvent } from '../../domain/event.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import { type Logger, silentLogger } from '../../lib/logger.js';
import { Notifier } from '../../lib/notifier.js';
import type { Database, Migration, Statement } from './database.js';

/** Replaces secret values in text (the secrets module's `TextScrubber`). */
export interface EventScrubber {
  scrub(text: string): string;
  scrubValue<T>(value: T): T;
}

/** What a writer gives: who, what, and the message; the rest is optional. */
export type EventInput = Omit<NewEvent, 'app' | 'service' | 'instance' | 'data'> & Partial<NewEvent>;

export const EVENT_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'events',
    sql: `
      CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL,
        app TEXT,
        service TEXT,
        instance TEXT,
        message TEXT NOT NULL,
        data_json TEXT NOT NULL
      );
      CREATE INDEX events_by_app ON events (app, id);
    `,
  },
];

const eventRow = z.object({
  id: z.number().int(),
  at: z.number(),
  actor: z.string(),
  kind: z.string(),
  app: z.string().nullable(),
  service: z.string().nullable(),
  instance: z.string().nullable(),
  message: z.string(),
  data_json: z.string(),
});

function toEvent(row: z.output<typeof eventRow>): BerthEvent {
  return {
    id: row.id,
    at: row.at,
    actor: row.actor,
    kind: row.kind,
    app: row.app,
    service: row.service,
    instance: row.instance,
    message: row.message,
    data: JSON.parse(row.data_json) as Record<string, unknown>,
  };
}

export interface EventFilter {
  app?: string;
  /** Events with a larger id only: resume from the last one seen. */
  after?: number;
  /** Keeps the newest ones; 100 by default, at most 10 000. */
  limit?: number;
  /** Only these kinds, e.g. `autoscale.scaled_out`. */
  kinds?: readonly string[];
}

/**
 * The append-only record of state changes (`berth events`). `record` joins the caller's transaction, so a state
 * change and its event land together; the log line and the wake-up of followers come after the commit.
 */
export class EventStore {
  /** Notified after each committed event: followers (`GET /v1/events?wait=`) wait on it instead of polling. */
  readonly appended = new Notifier();
  readonly #db: Database;
  readonly #log: Logger;
  readonly #scrubber: EventScrubber | undefined;
  readonly #clock: Clock;
  readonly #insert: Statement<never>;
  readonly #last: Statement<{ id: number | null }>;

  constructor(db: Database, options: { log?: Logger; scrubber?: EventScrubber; clock?: Clock } = {}) {
    db.migrate('events', EVENT_MIGRATIONS);
    this.#db = db;
    this.#log = options.log ?? silentLogger;
    this.#scrubber = options.scrubber;
    this.#clock = options.clock ?? systemClock;
    this.#insert = db.statement(
      'INSERT INTO events (at, actor, kind, app, service, instance, message, data_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.#last = db.statement('SELECT MAX(id) AS id FROM events', z.object({ id: z.number().nullable() }));
  }

  /** Appends an event (message and data scrubbed of secret values) within the current transaction, if any. */
  record(input: EventInput): BerthEvent {
    const scrubber = this.#scrubber;
    const event: NewEvent = {
      app: null,
      service: null,
      instance: null,
      ...input,
      message: scrubber ? scrubber.scrub(input.message) : input.message,
      data: scrubber ? scrubber.scrubValue(input.data ?? {}) : (input.data ?? {}),
    };
    const at = event.at ?? this.#clock.now();
    const { lastInsertRowid } = this.#insert.run(
      at,
      event.actor,
      event.kind,
      event.app,
      event.service,
      event.instance,
      event.message,
      JSON.stringify(event.data),
    );
    const stored: BerthEvent = { ...event, id: lastInsertRowid, at };
    this.#db.afterCommit(() => {
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
      this.appended.notify();
    });
    return stored;
  }

  /** Events in order; `after` resumes from an event id, `limit` keeps the newest ones. */
  list(filter: EventFilter = {}): BerthEvent[] {
    const where: string[] = ['id > ?'];
    const values: unknown[] = [filter.after ?? 0];
    if (filter.app !== undefined) {
      where.push('app = ?');
      values.push(filter.app);
    }
    if (filter.kinds !== undefined) {
      where.push(`kind IN (${filter.kinds.map(() => '?').join(', ')})`);
      values.push(...filter.kinds);
    }
    const limit = Math.max(1, Math.min(filter.limit ?? 100, 10_000));
    return this.#db
      .statement(
        `SELECT * FROM (SELECT * FROM events WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT ${limit}) ORDER BY id`,
        eventRow,
      )
      .all(...values)
      .map(toEvent);
  }

  /** Id of the newest event (0 when there is none): what a client passes as `after` to see what follows. */
  lastId(): number {
    return this.#last.get()?.id ?? 0;
  }
}
