// Strict, minimal parser of HTTP/1.x request heads: just what routing, framing and forwarding need.

/** A request head that cannot be served; `status` is what the client gets (400, 414, 431, 501, 505). */
export class HeadError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** Maximum size of a request or response head, like nginx's large_client_header_buffers. */
export const MAX_HEAD_BYTES = 64 * 1024;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible ASCII, obs-text, space and tab only.
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const BAD_TARGET = /[^\x21-\x7e\x80-\xff]/;

/** The parts of a request head the proxy uses. Header lines it forwards unchanged are kept verbatim in `kept`. */
export interface RequestHead {
  method: string;
  /** Origin-form request target (path and query). */
  target: string;
  /** `HTTP/1.1` or `HTTP/1.0`. */
  version: string;
  /** Lower-case host without port. */
  host: string;
  /** Host header value as sent (with port). */
  rawHost: string;
  /** Header lines to forward (each ending in CRLF), without hop-by-hop and X-Forwarded-* / X-Request-Id. */
  kept: string;
  /** -1 when absent. */
  contentLength: number;
  chunked: boolean;
  /** The client wants the connection closed after this exchange. */
  close: boolean;
  /** Upgrade protocol when the client asked to switch (e.g. `websocket`). */
  upgrade: string | undefined;
  requestId: string | undefined;
  forwardedFor: string | undefined;
}

const REQUEST_ID = /^[A-Za-z0-9._:+/=@-]{1,128}$/;

/** Parses `buf[0..end)` (the head without its final CRLFCRLF). Throws `HeadError`. */
export function parseRequestHead(buf: Buffer, end: number): RequestHead {
  const text = buf.toString('latin1', 0, end);
  let lineEnd = text.indexOf('\r\n');
  if (lineEnd === -1) lineEnd = text.length;
  const line = text.slice(0, lineEnd);
  const sp1 = line.indexOf(' ');
  const sp2 = line.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 === -1 || line.indexOf(' ', sp2 + 1) !== -1)
    throw new HeadError(400, 'bad request line');
  const method = line.slice(0, sp1);
  const target = line.slice(sp1 + 1, sp2);
  const version = line.slice(sp2 + 1);
  if (!TOKEN.test(method)) throw new HeadError(400, 'bad method');
  if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0') {
    throw new HeadError(version.startsWith('HTTP/') ? 505 : 400, 'unsupported HTTP version');
  }
  if (target.charCodeAt(0) !== 0x2f /* / */ || BAD_TARGET.test(target)) {
    // Absolute-form, authority-form (CONNECT) and asterisk-form are not proxied.
    throw new HeadError(method === 'CONNECT' ? 501 : 400, 'request target must be a path');
  }
  if (target.length > 8192) throw new HeadError(414, 'request target too long');

  const head: RequestHead = {
    method,
    target,
    version,
    host: '',
    rawHost: '',
    kept: '',
    contentLength: -1,
    chunked: false,
    close: version === 'HTTP/1.0',
    upgrade: undefined,
    requestId: undefined,
    forwardedFor: undefined,
  };
  let hostSeen = false;
  let connection = '';
  let upgrade: string | undefined;
  let kept = '';
  let pos = lineEnd + 2;
  while (pos < text.length) {
    let next = text.indexOf('\r\n', pos);
    if (next === -1) next = text.length;
    const colon = text.indexOf(':', pos);
    if (colon === -1 || colon >= next) throw new HeadError(400, 'bad header line');
    const name = text.slice(pos, colon);
    if (!TOKEN.test(name)) throw new HeadError(400, 'bad header name');
    const value = text.slice(colon + 1, next).trim();
    if (BAD_VALUE.test(value)) throw new HeadError(400, 'bad header value');
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === 'host') {
          if (hostSeen) throw new HeadError(400, 'duplicate host');
          hostSeen = true;
          head.rawHost = value;
        }
        break;
      case 7:
        if (name.toLowerCase() === 'upgrade') {
          upgrade = value;
          pos = next + 2;
          continue;
        }
        break;
      case 10:
        if (name.toLowerCase() === 'connection') {
          connection = connection === '' ? value.toLowerCase() : `${connection},${value.toLowerCase()}`;
          pos = next + 2;
          continue;
        }
        if (name.toLowerCase() === 'keep-alive') {
          pos = next + 2;
          continue;
        }
        break;
      case 12:
        if (name.toLowerCase() === 'x-request-id') {
          if (REQUEST_ID.test(value)) head.requestId = value;
          pos = next + 2;
          continue;
        }
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') {
          if (!/^\d{1,15}$/.test(value)) throw new HeadError(400, 'bad content-length');
          const length = Number(value);
          if (head.contentLength !== -1 && head.contentLength !== length) {
            throw new HeadError(400, 'conflicting content-length');
          }
          head.contentLength = length;
        }
        break;
      case 15:
        if (name.toLowerCase() === 'x-forwarded-for') {
          head.forwardedFor = head.forwardedFor === undefined ? value : `${head.forwardedFor}, ${value}`;
          pos = next + 2;
          continue;
        }
        break;
      case 16:
        if (name.toLowerCase() === 'x-forwarded-host' || name.toLowerCase() === 'x-forwarded-port') {
          pos = next + 2;
          continue;
        }
        if (name.toLowerCase() === 'proxy-connection') {
          pos = next + 2;
          continue;
        }
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') {
          // Only a lone "chunked" is accepted: anything else is a request-smuggling risk.
          if (value.toLowerCase() !== 'chunked' || head.chunked)
            throw new HeadError(501, 'unsupported transfer-encoding');
          head.chunked = true;
        } else if (name.toLowerCase() === 'x-forwarded-proto') {
          pos = next + 2;
          continue;
        }
        break;
    }
    kept += text.slice(pos, next + 2);
    pos = next + 2;
  }
  if (kept.length > 0 && !kept.endsWith('\r\n')) kept += '\r\n';
  head.kept = kept;
  if (head.chunked && head.contentLength !== -1) throw new HeadError(400, 'both content-length and chunked');
  if (head.chunked && version === 'HTTP/1.0') throw new HeadError(400, 'chunked in HTTP/1.0');
  if (!hostSeen) {
    if (version === 'HTTP/1.1') throw new HeadError(400, 'missing host');
  } else {
    head.host = hostOnly(head.rawHost);
    if (head.host === '') throw new HeadError(400, 'bad host');
  }
  if (connection !== '') {
    if (connection.includes('close')) head.close = true;
    else if (connection.includes('keep-alive')) head.close = false;
    if (upgrade !== undefined && connection.includes('upgrade')) head.upgrade = upgrade;
  }
  return head;
}

/** Lower-cases a Host value and strips its port; returns '' when it is not a plausible host. */
export function hostOnly(raw: string): string {
  let host = raw;
  if (host.charCodeAt(0) === 0x5b /* [ */) {
    const close = host.indexOf(']');
    if (close === -1) return '';
    host = host.slice(0, close + 1);
  } else {
    const colon = host.indexOf(':');
    if (colon !== -1) host = host.slice(0, colon);
  }
  if (host.length === 0 || host.length > 255 || /[\s/\\@]/.test(host)) return '';
  return host.toLowerCase();
}
