// The sticky-session cookie: an opaque, keyed token per target group, and the cookies a request carries.
import { createHmac, randomBytes } from 'node:crypto';
import { linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

/** Names the target group a client is pinned to (ALB's `AWSALBTG`). */
export const STICKY_COOKIE = 'berth-tg';
/** Names the release a tester asks for, as `X-Berth-Release` does. */
export const RELEASE_COOKIE = 'berth-release';

const KEY_BYTES = 32;

/**
 * Makes and recognises sticky tokens. A token is the first 128 bits of HMAC-SHA256(key, group name), base64url:
 * it does not say which group it names, and nobody without the key can make one, so a client can only present a
 * token the proxy gave it (for a group it was sent to by weight). The key lives in the proxy's state directory, so
 * tokens survive a proxy restart and every worker sharing the directory agrees on them.
 */
export class StickyCookie {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length < 16) throw new Error('sticky cookie key: expected at least 16 bytes');
    this.#key = key;
  }

  /**
   * The key in `path`, made (random, mode 0600) by the first process that needs it. Written to a file of its own and
   * then linked into place, so that a worker starting at the same time never reads a key half written.
   */
  static fromFile(path: string): StickyCookie {
    const draft = `${path}.${process.pid}.tmp`;
    writeFileSync(draft, randomBytes(KEY_BYTES), { mode: 0o600 });
    try {
      linkSync(draft, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      rmSync(draft, { force: true });
    }
    return new StickyCookie(readFileSync(path));
  }

  /** The token for a group (computed once per route table, never per request). */
  token(group: string): string {
    return createHmac('sha256', this.#key).update(group).digest().subarray(0, 16).toString('base64url');
  }
}

/**
 * The values of the cookies called `name` in a Cookie header (RFC 6265 §5.4: `a=1; b=2`), in order. A browser
 * sends one per matching path, so there may be several.
 */
export function cookieValues(header: string | undefined, name: string): string[] {
  if (header === undefined) return [];
  const found: string[] = [];
  let at = header.indexOf(name);
  while (at !== -1) {
    const end = at + name.length;
    // A whole name: at the start or after `;` and spaces, followed by `=`.
    let before = at - 1;
    while (before >= 0 && header.charCodeAt(before) === 0x20) before--;
    if ((before < 0 || header.charCodeAt(before) === 0x3b) && header.charCodeAt(end) === 0x3d) {
      const stop = header.indexOf(';', end + 1);
      found.push(header.slice(end + 1, stop === -1 ? undefined : stop).trim());
    }
    at = header.indexOf(name, end);
  }
  return found;
}

/**
 * The Set-Cookie line (with CRLF) that pins a client to a token for `durationS` from now: scoped to the route's path,
 * hidden from scripts, Secure over HTTPS. `SameSite=Lax` keeps it on top-level navigations from other sites, as a
 * session cookie would be.
 */
export function stickyCookieLine(token: string, path: string, durationS: number, secure: boolean): string {
  return `set-cookie: ${STICKY_COOKIE}=${token}; Path=${path}; Max-Age=${durationS}; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}\r\n`;
}
