// Test helpers for the dashboard: a client that signs in like the page (cookie + CSRF token), reads the SSE feed,
// and sends traffic to an app through the proxy.
import { Agent, request } from 'node:https';
import { withDeadline } from './wait.js';

export interface SseMessage {
  event: string;
  data: string;
  id?: string;
}

/** The page's view of the API: a session cookie and the CSRF token from the sign-in answer, nothing else. */
export class DashboardClient {
  readonly base: string;
  readonly setCookie: string;
  readonly csrf: string;
  readonly expiresAt: number;
  readonly #cookie: string;

  private constructor(base: string, setCookie: string, csrf: string, expiresAt: number) {
    this.base = base;
    this.setCookie = setCookie;
    this.#cookie = setCookie.split(';')[0]!;
    this.csrf = csrf;
    this.expiresAt = expiresAt;
  }

  static async signIn(base: string, token: string): Promise<DashboardClient> {
    const response = await fetch(`${base}/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    if (response.status !== 200)
      throw new Error(`sign-in answered ${response.status}: ${await response.text()}`);
    const view = (await response.json()) as { csrf: string; expiresAt: number };
    return new DashboardClient(base, response.headers.get('set-cookie') ?? '', view.csrf, view.expiresAt);
  }

  /** A request with the cookie only; `headers` add to it (an action's CSRF token is not added here). */
  raw(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${this.base}${path}`, {
      method,
      headers: {
        cookie: this.#cookie,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async get<T = unknown>(path: string): Promise<T> {
    return this.#json<T>(await this.raw('GET', path), path);
  }

  /** An action as the page sends it: the CSRF token and the page's own origin. */
  async post<T = unknown>(path: string, body: unknown = {}): Promise<T> {
    const response = await this.raw('POST', path, body, {
      'x-csrf-token': this.csrf,
      origin: this.base,
      'sec-fetch-site': 'same-origin',
    });
    return this.#json<T>(response, path);
  }

  async delete<T = unknown>(path: string): Promise<T> {
    return this.#json<T>(await this.raw('DELETE', path, undefined, { 'x-csrf-token': this.csrf }), path);
  }

  /** Lines of an NDJSON stream until `signal` aborts. */
  async stream(path: string, signal: AbortSignal, onLine: (line: string) => void): Promise<void> {
    const response = await fetch(`${this.base}${path}`, { headers: { cookie: this.#cookie }, signal });
    if (!response.ok || !response.body) throw new Error(`${path} answered ${response.status}`);
    let rest = '';
    for await (const chunk of response.body.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const lines = rest.split('\n');
      rest = lines.pop()!;
      for (const line of lines) if (line !== '') onLine(line);
    }
  }

  /** The SSE feed: `next(match)` resolves with the first message (in order) that matches, within a deadline. */
  live(path: string): {
    next(match: (m: SseMessage) => boolean, ms?: number): Promise<SseMessage>;
    close(): void;
  } {
    const stop = new AbortController();
    const queue: SseMessage[] = [];
    let wake: (() => void) | undefined;
    let ended: Error | undefined;
    void (async () => {
      try {
        const response = await fetch(`${this.base}${path}`, {
          headers: { cookie: this.#cookie },
          signal: stop.signal,
        });
        if (!response.ok || !response.body) throw new Error(`${path} answered ${response.status}`);
        let rest = '';
        for await (const chunk of response.body.pipeThrough(new TextDecoderStream())) {
          rest += chunk;
          const blocks = rest.split('\n\n');
          rest = blocks.pop()!;
          for (const block of blocks) {
            const message: SseMessage = { event: 'message', data: '' };
            for (const line of block.split('\n')) {
              const colon = line.indexOf(':');
              if (colon <= 0) continue;
              const field = line.slice(0, colon);
              const value = line.slice(colon + 1).replace(/^ /, '');
              if (field === 'event') message.event = value;
              else if (field === 'data') message.data += value;
              else if (field === 'id') message.id = value;
            }
            if (message.data !== '') queue.push(message);
          }
          wake?.();
        }
        ended = new Error(`${path} ended`);
      } catch (error) {
        ended = error as Error;
      }
      wake?.();
    })();
    return {
      next: (match, ms = 10_000) =>
        withDeadline(
          (async () => {
            for (;;) {
              const index = queue.findIndex(match);
              if (index >= 0) return queue.splice(0, index + 1).at(-1)!;
              if (ended) throw ended;
              await new Promise<void>((resolve) => {
                wake = resolve;
              });
            }
          })(),
          ms,
          `a live message on ${path}`,
        ),
      close: () => stop.abort(),
    };
  }

  async #json<T>(response: Response, path: string): Promise<T> {
    const text = await response.text();
    if (!response.ok) throw new Error(`${path} answered ${response.status}: ${text}`);
    return JSON.parse(text) as T;
  }
}

const agent = new Agent({ keepAlive: true, rejectUnauthorized: false });

/**
 * Closes trafficTo's kept-alive connections: a stopping proxy serves open client connections until they close or
 * its drain (10 s) ends, so a suite calls this before shutDown, or waits out the drain.
 */
export function closeTraffic(): void {
  agent.destroy();
}

/** `count` GETs of `path` to `host` through the proxy's HTTPS listener, one after another. */
export async function trafficTo(
  port: number,
  host: string,
  count: number,
  path = '/status/200',
): Promise<void> {
  for (let i = 0; i < count; i++) {
    await new Promise<void>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path, servername: host, headers: { host }, agent }, (response) => {
        response.resume();
        response.on('end', () =>
          response.statusCode === 200
            ? resolve()
            : reject(new Error(`${path} answered ${response.statusCode}`)),
        );
      })
        .on('error', reject)
        .end();
    });
  }
}
