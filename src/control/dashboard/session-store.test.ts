// Dashboard sessions and request access: cookie flags, expiry, CSRF and origin checks, the token path unchanged.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requestAccess } from './request-access.js';
import { cookieValue, csrfMatches, SESSION_COOKIE, SessionStore, sessionCookie } from './session-store.js';

const TOKEN = 'admin-token-0123456789';

function store(start = 1_000_000): { sessions: SessionStore; clock: { t: number } } {
  const clock = { t: start };
  return { sessions: new SessionStore({ ttlMs: 60_000, now: () => clock.t, maxSessions: 3 }), clock };
}

describe('SessionStore', () => {
  it('finds a session by its cookie until it expires, then forgets it', () => {
    const { sessions, clock } = store();
    const session = sessions.create();
    const cookie = `other=1; ${SESSION_COOKIE}=${session.id}`;
    assert.equal(sessions.fromCookieHeader(cookie)?.csrf, session.csrf);
    clock.t += 59_999;
    assert.ok(sessions.fromCookieHeader(cookie));
    clock.t += 1;
    assert.equal(sessions.fromCookieHeader(cookie), undefined);
    assert.equal(sessions.size, 0);
  });

  it('refuses unknown, empty and revoked ids', () => {
    const { sessions } = store();
    const session = sessions.create();
    assert.equal(sessions.fromCookieHeader(undefined), undefined);
    assert.equal(sessions.fromCookieHeader(`${SESSION_COOKIE}=`), undefined);
    assert.equal(sessions.fromCookieHeader(`${SESSION_COOKIE}=${session.csrf}`), undefined);
    sessions.revoke(session);
    assert.equal(sessions.fromCookieHeader(`${SESSION_COOKIE}=${session.id}`), undefined);
  });

  it('keeps at most maxSessions, ending the oldest', () => {
    const { sessions } = store();
    const first = sessions.create();
    sessions.create();
    sessions.create();
    const fourth = sessions.create();
    assert.equal(sessions.size, 3);
    assert.equal(sessions.fromCookieHeader(`${SESSION_COOKIE}=${first.id}`), undefined);
    assert.ok(sessions.fromCookieHeader(`${SESSION_COOKIE}=${fourth.id}`));
  });

  it('makes an HttpOnly, SameSite=Strict cookie with Max-Age to the expiry, Secure over HTTPS', () => {
    const { sessions, clock } = store();
    const session = sessions.create();
    const plain = sessionCookie(session, clock.t + 30_000, false);
    assert.equal(plain, `${SESSION_COOKIE}=${session.id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=30`);
    assert.match(sessionCookie(session, clock.t, true), /; Secure$/);
  });

  it('compares CSRF tokens exactly', () => {
    const { sessions } = store();
    const session = sessions.create();
    assert.ok(csrfMatches(session, session.csrf));
    assert.ok(!csrfMatches(session, `${session.csrf}x`));
    assert.ok(!csrfMatches(session, session.csrf.slice(1)));
    assert.ok(!csrfMatches(session, undefined));
    assert.ok(!csrfMatches(session, [session.csrf]));
  });

  it('reads one cookie out of a header', () => {
    assert.equal(cookieValue('a=1; b = 2 ;c=3', 'b'), '2');
    assert.equal(cookieValue('ab=1', 'a'), undefined);
  });
});

describe('requestAccess', () => {
  const signedIn = () => {
    const { sessions, clock } = store();
    const session = sessions.create();
    return { sessions, clock, session, cookie: `${SESSION_COOKIE}=${session.id}` };
  };

  it('lets anyone fetch the page, its files and the sign-in route, nothing else', () => {
    const { sessions } = store();
    for (const [method, url] of [
      ['GET', '/'],
      ['GET', '/ui/main.js?v=1'],
      ['POST', '/v1/session'],
      ['GET', '/v1/session'],
    ] as const) {
      assert.equal(requestAccess({ method, url, headers: {} }, TOKEN, sessions).by, 'public', url);
    }
    for (const [method, url] of [
      ['GET', '/v1/apps'],
      ['POST', '/ui/main.js'],
      ['GET', '/metrics'],
      ['DELETE', '/v1/session'],
    ] as const) {
      const access = requestAccess({ method, url, headers: {} }, TOKEN, sessions);
      assert.equal(access.by, 'refused', url);
    }
  });

  it('accepts the bearer token for every method, without CSRF', () => {
    const { sessions } = store();
    const headers = { authorization: `Bearer ${TOKEN}` };
    assert.equal(requestAccess({ method: 'POST', url: '/v1/down', headers }, TOKEN, sessions).by, 'token');
    const wrong = requestAccess(
      { method: 'GET', url: '/v1/apps', headers: { authorization: 'Bearer nope' } },
      TOKEN,
      sessions,
    );
    assert.ok(wrong.by === 'refused' && wrong.error.code === 'unauthorized');
  });

  it('lets a session read, and act only with its CSRF token from its own origin', () => {
    const { sessions, session, cookie } = signedIn();
    const host = '127.0.0.1:7070';
    const read = requestAccess(
      { method: 'GET', url: '/v1/apps', headers: { cookie, host } },
      TOKEN,
      sessions,
    );
    assert.equal(read.by, 'session');
    const act = (headers: Record<string, string>) =>
      requestAccess(
        { method: 'POST', url: '/v1/apps/a/scale', headers: { cookie, host, ...headers } },
        TOKEN,
        sessions,
      );
    const refusedWith = (headers: Record<string, string>) => {
      const access = act(headers);
      return access.by === 'refused' ? access.error.code : access.by;
    };
    assert.equal(refusedWith({}), 'forbidden');
    assert.equal(refusedWith({ 'x-csrf-token': 'wrong' }), 'forbidden');
    assert.equal(refusedWith({ 'x-csrf-token': session.csrf }), 'session');
    assert.equal(
      refusedWith({
        'x-csrf-token': session.csrf,
        origin: `http://${host}`,
        'sec-fetch-site': 'same-origin',
      }),
      'session',
    );
    assert.equal(refusedWith({ 'x-csrf-token': session.csrf, origin: 'http://evil.example' }), 'forbidden');
    assert.equal(refusedWith({ 'x-csrf-token': session.csrf, 'sec-fetch-site': 'cross-site' }), 'forbidden');
    assert.equal(refusedWith({ 'x-csrf-token': session.csrf, origin: 'null' }), 'forbidden');
  });

  it('refuses an expired session as unauthorized', () => {
    const { sessions, clock, cookie } = signedIn();
    clock.t += 60_000;
    const access = requestAccess({ method: 'GET', url: '/v1/apps', headers: { cookie } }, TOKEN, sessions);
    assert.ok(access.by === 'refused' && access.error.code === 'unauthorized');
  });
});
