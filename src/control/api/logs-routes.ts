// API routes of an app's logs (read, filter, follow as NDJSON) and its log drains.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { BerthError } from '../../domain/errors.js';
import { systemClock } from '../../lib/clock.js';
import { parseDuration } from '../../lib/duration.js';
import { requestStop } from '../../lib/request-stop.js';
import { AppLogFollower, type LogFilter, readAppLogs } from '../logs/app-logs.js';
import type { DrainManager } from '../logs/drain-manager.js';
import type { Store } from '../store/store.js';
import { parseInput } from './parse-input.js';

const logsQuery = z.strictObject({
  lines: z.coerce.number().int().min(1).max(100_000).default(100),
  follow: z.enum(['0', '1', 'true', 'false']).optional(),
  service: z.string().optional(),
  instance: z.string().optional(),
  since: z.string().optional(),
  grep: z.string().max(1000).optional(),
  events: z.enum(['0', '1', 'true', 'false']).optional(),
  access: z.enum(['0', '1', 'true', 'false']).optional(),
});

const drainBody = z.strictObject({
  url: z.string().min(1),
  caFile: z.string().startsWith('/', 'must be an absolute path').optional(),
  maxQueued: z.number().int().min(100).max(1_000_000).optional(),
});

function sinceOf(text: string | undefined, now: number): number | undefined {
  if (text === undefined) return undefined;
  try {
    return now - parseDuration(text);
  } catch {
    const at = Date.parse(text);
    if (Number.isNaN(at)) {
      throw new BerthError(
        'invalid_request',
        `since: expected a duration (15m) or a time (2026-01-02T03:04:05Z)`,
        {
          issues: [{ path: 'query.since', message: 'expected a duration or an ISO time' }],
        },
      );
    }
    return at;
  }
}

export function registerLogsRoutes(
  api: FastifyInstance,
  options: {
    store: Store;
    drains: DrainManager;
    logDir: string;
    pollMs?: number;
    /** Aborted when the API closes: follow streams end so the server can close. */
    closing?: AbortSignal;
  },
): void {
  const { store, drains, logDir } = options;
  const requireApp = (app: string): void => {
    if (!store.getApp(app)) throw new BerthError('not_found', `no app named ${app}`);
  };

  api.get<{ Params: { app: string } }>('/v1/apps/:app/logs', async (request, reply) => {
    const app = request.params.app;
    requireApp(app);
    const query = parseInput(logsQuery, request.query, 'query');
    const filter: LogFilter = {
      service: query.service,
      instance: query.instance,
      since: sinceOf(query.since, Date.now()),
      grep: query.grep,
      events: query.events !== '0' && query.events !== 'false',
      access: query.access !== '0' && query.access !== 'false',
    };
    const follow = query.follow === '1' || query.follow === 'true';
    // The follower starts at the current ends before the backlog is read, so no line falls between the two.
    const follower = follow ? new AppLogFollower(store, logDir, app, filter) : undefined;
    const lines = readAppLogs(store, logDir, app, filter, query.lines);
    if (!follower) return lines;

    reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    reply.raw.write(lines.map((line) => `${JSON.stringify(line)}\n`).join(''));
    const stop = requestStop(request.raw, options.closing);
    try {
      while (!stop.signal.aborted) {
        const fresh = follower.poll();
        if (fresh.length > 0 && !reply.raw.write(fresh.map((line) => `${JSON.stringify(line)}\n`).join(''))) {
          // A slow reader: wait for the socket to drain instead of buffering without bound.
          await new Promise<void>((resolve) => {
            const done = (): void => {
              reply.raw.off('drain', done);
              stop.signal.removeEventListener('abort', done);
              resolve();
            };
            reply.raw.once('drain', done);
            stop.signal.addEventListener('abort', done, { once: true });
          });
        }
        // Instances' output files are written by their shims (other processes): polled, not notified.
        await systemClock.sleep(options.pollMs ?? 200, { signal: stop.signal });
      }
    } finally {
      stop.release();
    }
    reply.raw.end();
    return reply;
  });

  api.get<{ Params: { app: string } }>('/v1/apps/:app/drains', async (request) => {
    requireApp(request.params.app);
    return drains.list(request.params.app);
  });

  api.post<{ Params: { app: string } }>('/v1/apps/:app/drains', async (request) => {
    const body = parseInput(drainBody, request.body, 'body');
    return drains.add(request.params.app, body.url, { caFile: body.caFile, maxQueued: body.maxQueued });
  });

  api.delete<{ Params: { app: string; id: string } }>('/v1/apps/:app/drains/:id', async (request) => {
    await drains.remove(request.params.app, request.params.id);
    return { ok: true };
  });
}
