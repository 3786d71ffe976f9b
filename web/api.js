// The dashboard's client of the control plane's REST API: the same routes as the CLI, with a session cookie
// instead of the token. The CSRF token is kept in this module's memory only, never in any browser storage.

let csrf = null;
const signedOutListeners = new Set();

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code ?? 'http';
  }
}

/** Calls `fn` when the session is gone (expired, revoked, control plane restarted). */
export function onSignedOut(fn) {
  signedOutListeners.add(fn);
}

function signedOut() {
  csrf = null;
  for (const fn of signedOutListeners) fn();
}

async function call(method, path, body, signal) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['x-csrf-token'] = csrf ?? '';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
    signal,
  });
  const json = await response.json().catch(() => null);
  if (response.status === 401 && path !== '/v1/session') signedOut();
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

export const api = {
  get: (path, signal) => call('GET', path, undefined, signal),
  post: (path, body = {}) => call('POST', path, body),

  /** True when the cookie still names a live session (after a reload); the CSRF token comes back with it. */
  async resume() {
    try {
      csrf = (await call('GET', '/v1/session')).csrf;
    } catch (error) {
      if (error.status === 401) return false;
      throw error;
    }
    return csrf !== null;
  },

  async signIn(token) {
    const view = await call('POST', '/v1/session', { token });
    csrf = view.csrf;
  },

  async signOut() {
    await call('DELETE', '/v1/session').catch(() => undefined);
    signedOut();
  },

  /** Lines of an NDJSON stream (log follow, pipeline output), parsed, until `signal` aborts or it ends. */
  async stream(path, signal, onItem) {
    const response = await fetch(path, { credentials: 'same-origin', signal, cache: 'no-store' });
    if (response.status === 401) signedOut();
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let rest = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += value;
      const lines = rest.split('\n');
      rest = lines.pop();
      for (const line of lines) if (line !== '') onItem(JSON.parse(line));
    }
  },

  /** The events an action produced: those after `before`, waiting up to 5 s for the first one. */
  async eventsAfter(app, before) {
    return call('GET', `/v1/events?app=${encodeURIComponent(app)}&after=${before}&wait=5000`);
  },

  async lastEventId(app) {
    const [last] = await call('GET', `/v1/events?app=${encodeURIComponent(app)}&limit=1`);
    return last?.id ?? 0;
  },
};
