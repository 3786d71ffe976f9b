// Who may make a request: the admin token (CLI), a dashboard session (cookie, plus CSRF on unsafe methods), or no one.
import { BerthError } from '../../domain/errors.js';
import { bearerMatches } from '../api/admin-token.js';
import { csrfMatches, type Session, type SessionStore } from './session-store.js';

export interface RequestHead {
  method: string;
  /** Path and query, as in the request line. */
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

export type Access =
  | { by: 'public' }
  | { by: 'token' }
  | { by: 'session'; session: Session }
  | { by: 'refused'; error: BerthError };

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Paths anyone may fetch: the dashboard's page and static files (they hold no data), sign-in, and the session
 * check (it answers `{ csrf: null }` without a live session cookie).
 */
export function isPublic(method: string, url: string): boolean {
  const path = url.split('?')[0] ?? '';
  if ((method === 'POST' || method === 'GET') && path === '/v1/session') return true;
  if (method !== 'GET' && method !== 'HEAD') return false;
  return path === '/' || path.startsWith('/ui/');
}

/**
 * Decides a request's access. A session may read anything the token may; an unsafe method also needs its CSRF
 * token in `X-CSRF-Token` and, when the browser names one, a same-origin `Origin` / `Sec-Fetch-Site`, so a page
 * elsewhere can neither forge an action nor (SameSite=Strict aside) ride the cookie.
 */
export function requestAccess(request: RequestHead, token: string, sessions: SessionStore): Access {
  if (isPublic(request.method, request.url)) return { by: 'public' };
  const authorization = header(request.headers, 'authorization');
  if (bearerMatches(authorization, token)) return { by: 'token' };
  const session = sessions.fromCookieHeader(header(request.headers, 'cookie'));
  if (!session) {
    return {
      by: 'refused',
      error: new BerthError(
        'unauthorized',
        authorization !== undefined
          ? 'missing or wrong bearer token; the CLI reads it from the data directory'
          : 'sign in first: no bearer token and no live dashboard session (it may have expired)',
      ),
    };
  }
  if (SAFE_METHODS.has(request.method)) return { by: 'session', session };
  if (!csrfMatches(session, request.headers['x-csrf-token'])) {
    return {
      by: 'refused',
      error: new BerthError('forbidden', 'missing or wrong X-CSRF-Token: reload the dashboard and try again'),
    };
  }
  const crossOrigin = crossOriginReason(request.headers);
  if (crossOrigin) return { by: 'refused', error: new BerthError('forbidden', crossOrigin) };
  return { by: 'session', session };
}

function crossOriginReason(headers: RequestHead['headers']): string | undefined {
  const site = header(headers, 'sec-fetch-site');
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    return `refused a ${site} request: actions come only from the dashboard's own pages`;
  }
  const origin = header(headers, 'origin');
  if (origin === undefined) return undefined;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return `refused a request from origin ${origin}: not a URL`;
  }
  return host === header(headers, 'host') ? undefined : `refused a request from origin ${origin}`;
}

function header(headers: RequestHead['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}
