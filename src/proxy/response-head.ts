// Strict parser of upstream HTTP/1.x response heads on their raw bytes: status, framing and reuse.
import {
  BAD_NAME,
  CHAR_CLASS,
  FIELD,
  FieldLine,
  isDigits,
  OK,
  readFieldLine,
  tokenList,
} from './field-line.js';

/** An upstream response head the proxy cannot trust; the exchange fails with 502. */
export class ResponseHeadError extends Error {}

/** The parts of a response head the proxy needs. */
export interface ResponseHead {
  status: number;
  /**
   * `HTTP/1.1` status line plus the header lines to forward, each ending in CRLF: framing, hop-by-hop and
   * X-Request-Id headers are removed (the proxy writes its own framing line) and the version is the proxy's own.
   */
  head: string;
  /** -1 when absent. */
  contentLength: number;
  chunked: boolean;
  /** The upstream will close (or must not be reused) after this response. */
  close: boolean;
}

// Parsing is synchronous: one scratch line serves every call.
const LINE = new FieldLine();

/**
 * Parses `buf[0..end)`, a response head whose final CRLFCRLF starts at `end`, with the same byte checks as
 * request heads (token names, no bare CR or LF, no CTL but HTAB in values). Throws `ResponseHeadError`.
 */
export function parseResponseHead(buf: Buffer, end: number): ResponseHead {
  const text = buf.toString('latin1', 0, end + 2);
  // "HTTP/1.1 200 OK": version, a space, three digits, then a space and a reason, or the end of the line.
  const lineEnd = text.indexOf('\r\n');
  const version = text.slice(0, 8);
  if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0') throw new ResponseHeadError('bad version');
  if (text.charCodeAt(8) !== 0x20 || !isDigits(text, 9, 12)) throw new ResponseHeadError('bad status line');
  const status = Number(text.slice(9, 12));
  if (status < 100 || (lineEnd > 12 && text.charCodeAt(12) !== 0x20))
    throw new ResponseHeadError('bad status code');
  for (let i = 13; i < lineEnd; i++) {
    if ((CHAR_CLASS[text.charCodeAt(i)]! & FIELD) === 0) throw new ResponseHeadError('bad reason phrase');
  }
  let contentLength = -1;
  let chunked = false;
  let closeToken = false;
  let keepAlive = false;
  let named: string[] | undefined;
  // The proxy speaks HTTP/1.1 to its clients whatever the upstream's version (RFC 9110 §6.2).
  let head = `HTTP/1.1${text.slice(8, lineEnd + 2)}`;
  let pos = lineEnd + 2;
  let keptFrom = pos;
  const n = text.length;
  while (pos < n) {
    const result = readFieldLine(text, pos, LINE);
    if (result !== OK)
      throw new ResponseHeadError(result === BAD_NAME ? 'bad header line' : 'bad header value');
    const length = LINE.nameEnd - LINE.nameStart;
    let drop = false;
    if (length === 2 || length === 7 || length === 10 || length === 12 || length === 14 || length === 17) {
      const name = text.slice(LINE.nameStart, LINE.nameEnd).toLowerCase();
      const value = text.slice(LINE.valueStart, LINE.valueEnd);
      drop = true;
      if (name === 'connection') {
        // The common values without building a token list.
        const tokens = value === 'keep-alive' || value === 'close' ? [value] : tokenList(value);
        if (tokens === undefined) throw new ResponseHeadError('bad connection header');
        for (const token of tokens) {
          if (token === 'close') closeToken = true;
          else if (token === 'keep-alive') keepAlive = true;
          else if (token !== 'upgrade') {
            if (named === undefined) named = [];
            named.push(token);
          }
        }
      } else if (name === 'content-length') {
        if (!isDigits(value, 0, value.length) || value.length > 15)
          throw new ResponseHeadError('bad content-length');
        const bytes = Number(value);
        if (contentLength !== -1 && contentLength !== bytes)
          throw new ResponseHeadError('conflicting content-length');
        contentLength = bytes;
      } else if (name === 'transfer-encoding') {
        if (chunked || value.toLowerCase() !== 'chunked')
          throw new ResponseHeadError('unsupported transfer-encoding');
        chunked = true;
      } else if (name === 'upgrade') {
        drop = status !== 101;
      } else if (name !== 'keep-alive' && name !== 'x-request-id' && name !== 'te' && name !== 'trailer') {
        drop = false;
      }
    } else if (
      length === 16 &&
      text.slice(LINE.nameStart, LINE.nameEnd).toLowerCase() === 'proxy-connection'
    ) {
      drop = true;
    }
    if (drop) {
      if (keptFrom < pos) head += text.slice(keptFrom, pos);
      keptFrom = LINE.next;
    }
    pos = LINE.next;
  }
  if (keptFrom < n) head += text.slice(keptFrom, n);
  if (chunked && contentLength !== -1) throw new ResponseHeadError('both content-length and chunked');
  // HTTP/1.0 closes unless it asked to keep the connection (RFC 9112 §9.3).
  const close = closeToken || (version === 'HTTP/1.0' && !keepAlive);
  if (named !== undefined) head = withoutFields(head, named);
  return { status, head, contentLength, chunked, close };
}

function withoutFields(head: string, names: readonly string[]): string {
  const lines = head.split('\r\n');
  // The status line stays.
  return [
    lines[0],
    ...lines.slice(1).filter((line) => !names.includes(line.slice(0, line.indexOf(':')).toLowerCase())),
  ].join('\r\n');
}
