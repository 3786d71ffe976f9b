// Dashboard sessions: the admin token exchanged for an expiring cookie and a CSRF token, kept only in memory.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** The cookie that carries a session id; HttpOnly so the page's scripts never see it. */
export const SESSION_COOKIE = 'berth_session';

/** How long a session lives after sign-in (absolute: activity does not extend it). */
export const DEFAULT_SESSION_TTL_MS = 8 * 60 * 60_000;

export interface Session {
  /** Sent only in the cookie. */
  id: string;
  /** Sent in the sign-in answer and `GET /v1/session`; every unsafe request must echo it in `X-CSRF-Token`. */
  csrf: string;
  createdAt: number;
  expiresAt: number;
}

export interface SessionStoreOptions {
  ttlMs?: number;
  now?: () => number;
  /** Sessions kept at most; signing in beyond it ends the oldest (bounded memory whatever clients do). */
  maxSessions?: number;
}

/**
 * Sessions by the SHA-256 of their id (a heap dump or a timing leak of the map gives no usable cookie). A
 * control-plane restart ends every session: users sign in again, nothing about them is on disk.
 */
export class SessionStore {
  readonly ttlMs: number;
  #now: () => number;
  #max: number;
  #sessions = new Map<string, Session>();

  constructor(options: SessionStoreOptions = {}) {
    this.ttlMs = options.ttlMs ?? DEFAULT_SESSION_TTL_MS;
    this.#now = options.now ?? Date.now;
    this.#max = options.maxSessions ?? 1000;
  }

  /** A new session (call only after the admin token was checked). */
  create(): Session {
    this.#sweep();
    while (this.#sessions.size >= this.#max) {
      const oldest = this.#sessions.keys().next().value as string;
      this.#sessions.delete(oldest);
    }
    const now = this.#now();
    const session: Session = {
      id: randomBytes(32).toString('base64url'),
      csrf: randomBytes(32).toString('base64url'),
      createdAt: now,
      expiresAt: now + this.ttlMs,
    };
    this.#sessions.set(digest(session.id), session);
    return session;
  }

  /** The live session named by a `Cookie` header, or undefined (none, unknown, or expired: then forgotten). */
  fromCookieHeader(header: string | undefined): Session | undefined {
    const id = cookieValue(header, SESSION_COOKIE);
    if (id === undefined) return undefined;
    const key = digest(id);
    const session = this.#sessions.get(key);
    if (!session) return undefined;
    if (session.expiresAt <= this.#now()) {
      this.#sessions.delete(key);
      return undefined;
    }
    return session;
  }

  /** Ends a session at once (sign-out). */
  revoke(session: Session): void {
    this.#sessions.delete(digest(session.id));
  }

  get size(): number {
    return this.#sessions.size;
  }

  #sweep(): void {
    const now = this.#now();
    for (const [key, session] of this.#sessions) if (session.expiresAt <= now) this.#sessions.delete(key);
  }
}

/** True when `given` (an `X-CSRF-Token` header) is exactly the session's CSRF token; compared in constant time. */
export function csrfMatches(session: Session, given: string | string[] | undefined): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(session.csrf);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The `Set-Cookie` value of a session: HttpOnly, SameSite=Strict, Path=/, Max-Age to its expiry; Secure when the
 * page was reached over HTTPS (behind a TLS proxy), so the cookie never travels in clear text from there on.
 */
export function sessionCookie(session: Session, now: number, secure: boolean): string {
  const maxAge = Math.max(0, Math.floor((session.expiresAt - now) / 1000));
  return `${SESSION_COOKIE}=${session.id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure ? '; Secure' : ''}`;
}

/** The `Set-Cookie` value that deletes the session cookie. */
export function clearedSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`;
}

/** The value of cookie `name` in a `Cookie` header (the first one when repeated). */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function digest(id: string): string {
  return createHash('sha256').update(id).digest('base64url');
}
