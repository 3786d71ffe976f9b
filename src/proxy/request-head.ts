// Strict parser of HTTP/1.x request heads on their raw bytes: just what routing, framing and forwarding need.
import http from 'node:http';
import {
  BAD_NAME,
  CHAR_CLASS,
  FieldLine,
  isDigits,
  OK,
  readFieldLine,
  TCHAR,
  tokenList,
} from './field-line.js';

/** A request head that cannot be served; `status` is what the client gets (400, 414, 431, 501, 505). */
export class HeadError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/**
 * Default limit of a request head, and of the head the proxy forwards: 16 KiB, what Node backends accept (a
 * larger limit would turn the proxy's 431 into the backend's error).
 */
export const DEFAULT_MAX_HEAD_BYTES = 16 * 1024;
const MAX_TARGET_BYTES = 8192;

// Methods llhttp (node:http) knows: a backend built on it refuses any other, so the proxy answers 501 itself.
const KNOWN_METHODS = new Set(http.METHODS);

/** Forwarding headers a client sent; the proxy passes them on only when the client is a trusted proxy. */
export interface ForwardingHeaders {
  for: string | undefined;
  proto: string | undefined;
  host: string | undefined;
  port: string | undefined;
  /** Forwarded, X-Real-IP and other X-Forwarded-* lines as sent, each ending in CRLF. */
  lines: string;
}

/** The parts of a request head the proxy uses. Header lines it forwards unchanged are kept verbatim in `kept`. */
export interface RequestHead {
  method: string;
  /** Origin-form request target (path and query); an absolute-form target is reduced to it. */
  target: string;
  /** `HTTP/1.1` or `HTTP/1.0`. */
  version: string;
  /** Lower-case host without port, for routing; '' when an HTTP/1.0 request has none. */
  host: string;
  /** The validated authority (host and port) the request is for: the Host header, or an absolute-form's. */
  authority: string;
  /**
   * Header lines to forward as sent (each ending in CRLF): everything but framing, hop-by-hop, forwarding and
   * X-Request-Id headers and their `_` variants; the proxy writes those itself.
   */
  kept: string;
  /** -1 when absent. */
  contentLength: number;
  chunked: boolean;
  /** The client wants the connection closed after this exchange. */
  close: boolean;
  /** Upgrade protocol when the client asked to switch (e.g. `websocket`). */
  upgrade: string | undefined;
  requestId: string | undefined;
  forwarding: ForwardingHeaders | undefined;
  /** The Cookie lines' values joined by `; ` (they are forwarded as sent too); undefined without one. */
  cookie: string | undefined;
  /** The first `X-Berth-Release` value (forwarded as sent too): the release a tester asks for. */
  release: string | undefined;
}

const REQUEST_ID = /^[A-Za-z0-9._:+/=@-]{1,128}$/;

// What the proxy does with a header line, by name.
const KEEP = 0;
const DROP = 1;
const HOST = 2;
const CONTENT_LENGTH = 3;
const TRANSFER_ENCODING = 4;
const CONNECTION = 5;
const UPGRADE = 6;
const REQUEST_ID_HEADER = 7;
const FORWARDED_FOR = 8;
const FORWARDED_PROTO = 9;
const FORWARDED_HOST = 10;
const FORWARDED_PORT = 11;
const FORWARDED_OTHER = 12;
/** Read and forwarded as sent: the proxy only looks at them. */
const COOKIE = 13;
const RELEASE = 14;

/** Names whose `_` spelling (read as `-` by CGI, WSGI, Rack...) is never passed to apps. */
const UNDERSCORE_DROPPED = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'upgrade',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'x-request-id',
  'forwarded',
  'x-real-ip',
]);

function kindOf(text: string, line: FieldLine): number {
  const start = line.nameStart;
  const end = line.nameEnd;
  const length = end - start;
  if (line.underscore) {
    const name = text.slice(start, end).toLowerCase().replaceAll('_', '-');
    return UNDERSCORE_DROPPED.has(name) || name.startsWith('x-forwarded-') ? DROP : KEEP;
  }
  // Only names that can matter are lower-cased: the first letter and the length select them.
  switch (text.charCodeAt(start) | 0x20) {
    case 0x63 /* c */:
      if (length === 10 && text.slice(start, end).toLowerCase() === 'connection') return CONNECTION;
      if (length === 14 && text.slice(start, end).toLowerCase() === 'content-length') return CONTENT_LENGTH;
      if (length === 6 && text.slice(start, end).toLowerCase() === 'cookie') return COOKIE;
      return KEEP;
    case 0x66 /* f */:
      return length === 9 && text.slice(start, end).toLowerCase() === 'forwarded' ? FORWARDED_OTHER : KEEP;
    case 0x68 /* h */:
      return length === 4 && text.slice(start, end).toLowerCase() === 'host' ? HOST : KEEP;
    case 0x6b /* k */:
      return length === 10 && text.slice(start, end).toLowerCase() === 'keep-alive' ? DROP : KEEP;
    case 0x70 /* p */:
      return length === 16 && text.slice(start, end).toLowerCase() === 'proxy-connection' ? DROP : KEEP;
    case 0x74 /* t */:
      {
        if (length !== 2 && length !== 7 && length !== 17) return KEEP;
        const name = text.slice(start, end).toLowerCase();
        if (name === 'transfer-encoding') return TRANSFER_ENCODING;
        return name === 'te' || name === 'trailer' ? DROP : KEEP;
      }
    case 0x75 /* u */:
      return length === 7 && text.slice(start, end).toLowerCase() === 'upgrade' ? UPGRADE : KEEP;
    case 0x78 /* x */:
      {
        if (length < 9) return KEEP;
        const name = text.slice(start, end).toLowerCase();
        if (name === 'x-request-id') return REQUEST_ID_HEADER;
        if (name === 'x-real-ip') return FORWARDED_OTHER;
        if (name === 'x-berth-release') return RELEASE;
        if (!name.startsWith('x-forwarded-')) return KEEP;
        if (name === 'x-forwarded-for') return FORWARDED_FOR;
        if (name === 'x-forwarded-proto') return FORWARDED_PROTO;
        if (name === 'x-forwarded-host') return FORWARDED_HOST;
        if (name === 'x-forwarded-port') return FORWARDED_PORT;
        return FORWARDED_OTHER;
      }
  }
  return KEEP;
}

// Parsing is synchronous: one scratch line serves every call.
const LINE = new FieldLine();

/**
 * Parses `buf[0..end)`, a request head whose final CRLFCRLF starts at `end`. Every check is made on the raw
 * bytes in the single pass that splits the lines: only SP and HTAB are ever trimmed, any other CTL (a bare CR or
 * LF, NUL, VT, FF...) is a 400, framing values must be plain tokens or digits. Throws `HeadError`.
 *
 * `partial`: `buf[0..end)` is only the complete lines of a head still arriving (`end` is the CRLF of its last
 * complete line); they are checked so that a head that can never be valid is refused at once, and the checks
 * that need the whole head (a missing Host) are left for later.
 */
export function parseRequestHead(buf: Buffer, end: number, partial = false): RequestHead {
  // The head with the CRLF of its last line, so that every line ends in CRLF.
  const text = buf.toString('latin1', 0, end + 2);

  // Request line: method SP request-target SP HTTP-version CRLF (RFC 9112 §3), one space each.
  let i = 0;
  let c = text.charCodeAt(0);
  while ((CHAR_CLASS[c]! & TCHAR) !== 0) c = text.charCodeAt(++i);
  if (i === 0 || c !== 0x20) throw new HeadError(400, i === 0 ? 'bad request line' : 'bad method');
  const method = text.slice(0, i);
  const targetStart = ++i;
  c = text.charCodeAt(i);
  while (c > 0x20 && c < 0x7f) c = text.charCodeAt(++i);
  if (c !== 0x20 || i === targetStart) throw new HeadError(400, 'bad request target');
  const rawTarget = text.slice(targetStart, i);
  const lineEnd = text.indexOf('\r\n', i + 1);
  const version = text.slice(i + 1, lineEnd);
  if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0') {
    throw new HeadError(/^HTTP\/\d\.\d$/.test(version) ? 505 : 400, 'unsupported HTTP version');
  }
  if (method === 'CONNECT') throw new HeadError(501, 'CONNECT is not proxied');
  if (!KNOWN_METHODS.has(method)) throw new HeadError(501, 'unknown method');
  if (rawTarget.length > MAX_TARGET_BYTES) throw new HeadError(414, 'request target too long');
  let target = rawTarget;
  let absoluteAuthority: string | undefined;
  if (rawTarget.charCodeAt(0) !== 0x2f /* / */) {
    // Absolute-form (RFC 9112 §3.2.2): the authority replaces Host, the path is forwarded in origin-form.
    const absolute = splitAbsoluteForm(rawTarget);
    if (absolute === undefined) throw new HeadError(400, 'request target must be a path or an http(s) URI');
    absoluteAuthority = absolute.authority;
    target = absolute.path;
  }

  let contentLength = -1;
  let chunked = false;
  let hostSeen = false;
  let rawHost = '';
  let connection: string[] | undefined;
  let upgrade: string | undefined;
  let requestId: string | undefined;
  let forwarding: ForwardingHeaders | undefined;
  let cookie: string | undefined;
  let release: string | undefined;
  let kept = '';
  let pos = lineEnd + 2;
  let keptFrom = pos;
  const n = text.length;
  while (pos < n) {
    const status = readFieldLine(text, pos, LINE);
    if (status !== OK) throw new HeadError(400, status === BAD_NAME ? 'bad header line' : 'bad header value');
    const kind = kindOf(text, LINE);
    if (kind !== KEEP) {
      const value = text.slice(LINE.valueStart, LINE.valueEnd);
      switch (kind) {
        case HOST:
          if (hostSeen) throw new HeadError(400, 'duplicate host');
          hostSeen = true;
          rawHost = value;
          break;
        case CONTENT_LENGTH: {
          if (!isDigits(value, 0, value.length) || value.length > 15)
            throw new HeadError(400, 'bad content-length');
          const length = Number(value);
          if (contentLength !== -1 && contentLength !== length)
            throw new HeadError(400, 'conflicting content-length');
          contentLength = length;
          break;
        }
        case TRANSFER_ENCODING:
          // Only one lone "chunked" is accepted: anything else is a smuggling risk.
          if (chunked || value.toLowerCase() !== 'chunked') {
            throw tokenList(value) === undefined
              ? new HeadError(400, 'bad transfer-encoding')
              : new HeadError(501, 'unsupported transfer-encoding');
          }
          chunked = true;
          break;
        case CONNECTION: {
          // The common values without building a token list.
          const tokens = value === 'keep-alive' || value === 'close' ? [value] : tokenList(value);
          if (tokens === undefined) throw new HeadError(400, 'bad connection header');
          connection = connection === undefined ? tokens : connection.concat(tokens);
          break;
        }
        case UPGRADE:
          upgrade = upgrade === undefined ? value : `${upgrade}, ${value}`;
          break;
        case REQUEST_ID_HEADER:
          if (requestId === undefined && REQUEST_ID.test(value)) requestId = value;
          break;
        case COOKIE:
          cookie = cookie === undefined ? value : `${cookie}; ${value}`;
          break;
        case RELEASE:
          release ??= value;
          break;
        case FORWARDED_FOR:
        case FORWARDED_PROTO:
        case FORWARDED_HOST:
        case FORWARDED_PORT:
        case FORWARDED_OTHER:
          forwarding ??= { for: undefined, proto: undefined, host: undefined, port: undefined, lines: '' };
          if (kind === FORWARDED_FOR)
            forwarding.for = forwarding.for === undefined ? value : `${forwarding.for}, ${value}`;
          else if (kind === FORWARDED_PROTO) forwarding.proto ??= value;
          else if (kind === FORWARDED_HOST) forwarding.host ??= value;
          else if (kind === FORWARDED_PORT) forwarding.port ??= value;
          else forwarding.lines += text.slice(pos, LINE.next);
          break;
      }
      // Host is forwarded as sent, unless an absolute-form target names the authority; so are the lines only read.
      if ((kind !== HOST || absoluteAuthority !== undefined) && kind !== COOKIE && kind !== RELEASE) {
        if (keptFrom < pos) kept += text.slice(keptFrom, pos);
        keptFrom = LINE.next;
      }
    }
    pos = LINE.next;
  }
  if (keptFrom < n) kept += text.slice(keptFrom, n);

  if (chunked && contentLength !== -1) throw new HeadError(400, 'both content-length and chunked');
  if (chunked && version === 'HTTP/1.0') throw new HeadError(400, 'chunked in HTTP/1.0');
  let authority = rawHost;
  if (absoluteAuthority !== undefined) {
    authority = absoluteAuthority;
    kept = `host: ${authority}\r\n${kept}`;
  } else if (!hostSeen && version === 'HTTP/1.1' && !partial) {
    throw new HeadError(400, 'missing host');
  }
  const host = hostSeen || absoluteAuthority !== undefined ? hostOnly(authority) : '';
  if (host === '' && (hostSeen || absoluteAuthority !== undefined)) throw new HeadError(400, 'bad host');

  let close = version === 'HTTP/1.0';
  let upgradeTo: string | undefined;
  if (connection !== undefined) {
    const others: string[] = [];
    for (const token of connection) {
      if (token === 'close') close = true;
      else if (token === 'keep-alive') {
        if (version === 'HTTP/1.0' && !connection.includes('close')) close = false;
      } else if (token === 'upgrade') {
        if (upgrade !== undefined && version === 'HTTP/1.1') upgradeTo = upgrade;
      } else others.push(token);
    }
    // Headers the client named in Connection are hop-by-hop too (RFC 9110 §7.6.1).
    if (others.length > 0) kept = withoutFields(kept, others);
  }
  return {
    method,
    target,
    version,
    host,
    authority,
    kept,
    contentLength,
    chunked,
    close,
    upgrade: upgradeTo,
    requestId,
    forwarding,
    cookie,
    release,
  };
}

/** `http(s)://authority[/path][?query]` → its authority and origin-form target; undefined when not that. */
function splitAbsoluteForm(target: string): { authority: string; path: string } | undefined {
  const lower = target.slice(0, 8).toLowerCase();
  const skip = lower.startsWith('http://') ? 7 : lower.startsWith('https://') ? 8 : 0;
  if (skip === 0) return undefined;
  let end = skip;
  while (end < target.length && target[end] !== '/' && target[end] !== '?') end++;
  const authority = target.slice(skip, end);
  if (authority === '' || hostOnly(authority) === '') return undefined;
  const rest = target.slice(end);
  return { authority, path: rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest };
}

function withoutFields(kept: string, names: readonly string[]): string {
  return kept
    .split('\r\n')
    .filter((line) => {
      const name = line.slice(0, line.indexOf(':')).toLowerCase();
      return name === 'host' || !names.includes(name);
    })
    .join('\r\n');
}

// reg-name (RFC 3986 §3.2.2): unreserved, sub-delims and pct-encoded.
const REG_NAME = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%")
  REG_NAME[c.charCodeAt(0)] = 1;
const HEX = /^[0-9A-Fa-f]{2}$/;

/**
 * Validates an authority (`host[:port]`, host a reg-name or an `[IPv6]` literal) and returns the lower-case host
 * without port, or '' when it is not one. Anything else (`evil.com#`, `a@b`, `a/b`, spaces, non-ASCII) is refused
 * rather than routed or copied into a redirect.
 */
export function hostOnly(raw: string): string {
  let i = 0;
  if (raw.charCodeAt(0) === 0x5b /* [ */) {
    const close = raw.indexOf(']');
    if (close < 2) return '';
    for (i = 1; i < close; i++) {
      const c = raw.charCodeAt(i) | 0x20;
      if (!((c >= 0x30 && c <= 0x3a) || (c >= 0x61 && c <= 0x66) || c === 0x2e)) return '';
    }
    i = close + 1;
  } else {
    while (i < raw.length) {
      const c = raw.charCodeAt(i);
      if (c >= 128 || REG_NAME[c] === 0) break;
      if (c === 0x25 /* % */ && !HEX.test(raw.slice(i + 1, i + 3))) return '';
      i++;
    }
    if (i === 0) return '';
  }
  const host = raw.slice(0, i);
  if (i < raw.length) {
    if (raw.charCodeAt(i) !== 0x3a /* : */ || !isDigits(raw, i + 1, raw.length) || raw.length - i - 1 > 5)
      return '';
  }
  return host.length > 255 ? '' : host.toLowerCase();
}
