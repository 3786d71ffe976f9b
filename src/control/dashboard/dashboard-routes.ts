// The dashboard on the API's port: its page and files, sign-in/out (token → session cookie), and a live SSE feed.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { BerthError } from '../../domain/errors.js';
import type { BerthEvent } from '../../domain/event.js';
import { requestStop } from '../../lib/request-stop.js';
import { bearerMatches } from '../api/admin-token.js';
import { parseInput } from '../api/parse-input.js';
import type { Store } from '../store/store.js';
import { clearedSessionCookie, type Session, type SessionStore, sessionCookie } from './session-store.js';
import type { StaticAssets } from './static-assets.js';

export interface DashboardRoutesOptions {
  token: string;
  store: Store;
  sessions: SessionStore;
  assets: StaticAssets;
  /** How often the live feed says "new metrics may be there" (the collector's interval). */
  tickMs: number;
  /** Aborted when the API closes: live feeds end so the server can close. */
  closing: AbortSignal;
  now?: () => number;
}

/** What the sign-in answer and `GET /v1/session` return: the CSRF token lives only in the page's memory. */
export interface SessionView {
  csrf: string | null;
  expiresAt: number | null;
}

/**
 * Headers every answer carries: the page runs only its own scripts and styles, talks only to its own origin,
 * cannot be framed, and leaks no URL to other sites.
 */
export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=()',
};

const signInBody = z.strictObject({ token: z.string().min(1).max(1000) });
const liveQuery = z.strictObject({
  app: z.string().optional(),
  after: z.coerce.number().int().min(0).optional(),
});

export function registerDashboardRoutes(api: FastifyInstance, options: DashboardRoutesOptions): void {
  const { sessions, assets, store } = options;
  const now = options.now ?? Date.now;

  api.addHook('onSend', async (_request, reply, payload) => {
    reply.headers(SECURITY_HEADERS);
    return payload;
  });

  const serve = async (request: FastifyRequest, reply: FastifyReply) => {
    const asset = assets.get(request.url.split('?')[0] ?? '');
    if (!asset) throw new BerthError('not_found', `no dashboard file ${request.url}`);
    reply.header('cache-control', 'no-cache').header('etag', asset.etag).header('vary', 'accept-encoding');
    if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
    reply.type(asset.type);
    if (/\bgzip\b/.test(request.headers['accept-encoding'] ?? '')) {
      return reply.header('content-encoding', 'gzip').send(asset.gzipped);
    }
    return reply.send(asset.body);
  };
  api.get('/', serve);
  api.get('/ui/*', serve);

  api.post('/v1/session', async (request, reply): Promise<SessionView> => {
    const body = parseInput(signInBody, request.body, 'body');
    if (!bearerMatches(`Bearer ${body.token}`, options.token)) {
      throw new BerthError('unauthorized', 'wrong admin token (berth reads it from <data-dir>/admin-token)');
    }
    const session = sessions.create();
    reply.header('set-cookie', sessionCookie(session, now(), overHttps(request)));
    reply.header('cache-control', 'no-store');
    return { csrf: session.csrf, expiresAt: session.expiresAt };
  });

  api.get('/v1/session', async (request, reply): Promise<SessionView> => {
    reply.header('cache-control', 'no-store');
    const session = sessions.fromCookieHeader(request.headers.cookie);
    return { csrf: session?.csrf ?? null, expiresAt: session?.expiresAt ?? null };
  });

  api.delete('/v1/session', async (request, reply) => {
    const session = sessions.fromCookieHeader(request.headers.cookie);
    if (session) sessions.revoke(session);
    reply.header('set-cookie', clearedSessionCookie(overHttps(request)));
    return { ok: true };
  });

  // Server-Sent Events: every new event (of one app, or all), and a tick per metrics collection so charts
  // refresh without each tab polling. EventSource reconnects by itself, sending Last-Event-ID: nothing is missed.
  api.get('/v1/live', async (request, reply) => {
    const query = parseInput(liveQuery, request.query, 'query');
    const lastEventId = Number(request.headers['last-event-id']);
    let after =
      Number.isInteger(lastEventId) && lastEventId >= 0
        ? lastEventId
        : (query.after ?? store.events.lastId());
    const session: Session | undefined = sessions.fromCookieHeader(request.headers.cookie);
    reply.raw.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    const stop = requestStop(request.raw, options.closing);
    try {
      reply.raw.write(`retry: 2000\nevent: hello\ndata: ${JSON.stringify({ after })}\n\n`);
      let nextTick = now() + options.tickMs;
      while (!stop.signal.aborted) {
        const fresh: BerthEvent[] = store.listEvents({ app: query.app, after, limit: 1000 });
        if (fresh.length > 0) {
          reply.raw.write(
            fresh.map((e) => `id: ${e.id}\nevent: berth\ndata: ${JSON.stringify(e)}\n\n`).join(''),
          );
          after = fresh.at(-1)!.id;
          continue;
        }
        if (now() >= nextTick) {
          reply.raw.write(`event: tick\ndata: ${now()}\n\n`);
          nextTick = now() + options.tickMs;
        }
        if (session && session.expiresAt <= now()) {
          reply.raw.write('event: expired\ndata: {}\n\n');
          break;
        }
        const until = Math.min(nextTick, session?.expiresAt ?? Number.POSITIVE_INFINITY);
        await store.events.appended.wait({ signal: stop.signal, timeoutMs: Math.max(1, until - now()) });
      }
    } finally {
      stop.release();
    }
    reply.raw.end();
    return reply;
  });
}

/** The page was reached over HTTPS: directly never (the API is plain HTTP), so through a TLS-terminating proxy. */
function overHttps(request: FastifyRequest): boolean {
  return request.headers['x-forwarded-proto'] === 'https';
}
