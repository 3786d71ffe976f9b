// GET /v1/events: the timeline, with `wait` to long-poll for events after `after` (what `berth events -f` uses).
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { BerthEvent } from '../../domain/event.js';
import type { Clock } from '../../lib/clock.js';
import { requestStop } from '../../lib/request-stop.js';
import type { Store } from '../store/store.js';
import { parseInput } from './parse-input.js';

const eventsQuery = z.strictObject({
  app: z.string().optional(),
  after: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
  /** Milliseconds to wait for an event after `after` when there is none yet (≤ 60 s). */
  wait: z.coerce.number().int().min(0).max(60_000).optional(),
});

export function registerEventsRoutes(
  api: FastifyInstance,
  options: {
    store: Store;
    clock: Clock /** Aborted when the API closes: waiting requests answer at once. */;
    closing?: AbortSignal;
  },
): void {
  api.get('/v1/events', async (request) => {
    const query = parseInput(eventsQuery, request.query, 'query');
    const { wait, ...filter } = query;
    let events: BerthEvent[] = options.store.listEvents(filter);
    if (events.length > 0 || !wait || filter.after === undefined) return events;
    const stop = requestStop(request.raw, options.closing);
    try {
      // Every event is appended in this process: wake on the next one instead of polling the table.
      events =
        (await options.store.events.appended.until(
          () => {
            const fresh = options.store.listEvents(filter);
            return fresh.length > 0 ? fresh : undefined;
          },
          { signal: stop.signal, timeoutMs: wait, clock: options.clock },
        )) ?? [];
    } finally {
      stop.release();
    }
    return events;
  });
}
