// Strict, minimal parser of upstream HTTP/1.x response heads: status, framing and reuse.

/** An upstream response head the proxy cannot trust; the exchange fails with 502. */
export class ResponseHeadError extends Error {}

/** The parts of a response head the proxy needs. */
export interface ResponseHead {
  status: number;
  /** `HTTP/1.1` or `HTTP/1.0`. */
  version: string;
  /** Status line plus the header lines to forward (hop-by-hop and X-Request-Id removed), each ending in CRLF. */
  head: string;
  contentLength: number;
  chunked: boolean;
  /** The upstream will close (or must not be reused) after this response. */
  close: boolean;
}

const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/** Parses `buf[0..end)` (without the final CRLFCRLF). Throws `ResponseHeadError`. */
export function parseResponseHead(buf: Buffer, end: number): ResponseHead {
  const text = buf.toString('latin1', 0, end);
  let lineEnd = text.indexOf('\r\n');
  if (lineEnd === -1) lineEnd = text.length;
  // "HTTP/1.1 200 OK": version, a space, three digits, then a space or the end of the line.
  if (lineEnd < 12 || !text.startsWith('HTTP/1.') || text.charCodeAt(8) !== 0x20) {
    throw new ResponseHeadError('bad status line');
  }
  const version = text.slice(0, 8);
  if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0') throw new ResponseHeadError('bad version');
  const status = Number(text.slice(9, 12));
  if (
    !Number.isInteger(status) ||
    status < 100 ||
    status > 999 ||
    (lineEnd > 12 && text.charCodeAt(12) !== 0x20)
  ) {
    throw new ResponseHeadError('bad status code');
  }
  const result: ResponseHead = {
    status,
    version,
    head: '',
    contentLength: -1,
    chunked: false,
    close: version === 'HTTP/1.0',
  };
  let head = text.slice(0, lineEnd + 2);
  if (lineEnd === text.length) head += '\r\n';
  let pos = lineEnd + 2;
  while (pos < text.length) {
    let next = text.indexOf('\r\n', pos);
    if (next === -1) next = text.length;
    const colon = text.indexOf(':', pos);
    if (colon === -1 || colon >= next || colon === pos) throw new ResponseHeadError('bad header line');
    const nameLength = colon - pos;
    let drop = false;
    if (nameLength === 10 || nameLength === 12 || nameLength === 14 || nameLength === 17) {
      const name = text.slice(pos, colon).toLowerCase();
      const value = text.slice(colon + 1, next).trim();
      if (name === 'connection') {
        const v = value.toLowerCase();
        if (v.includes('close')) result.close = true;
        else if (v.includes('keep-alive') && version === 'HTTP/1.0') result.close = false;
        drop = true;
      } else if (name === 'keep-alive' || name === 'x-request-id') {
        drop = true;
      } else if (name === 'content-length') {
        if (!/^\d{1,15}$/.test(value)) throw new ResponseHeadError('bad content-length');
        const length = Number(value);
        if (result.contentLength !== -1 && result.contentLength !== length) {
          throw new ResponseHeadError('conflicting content-length');
        }
        result.contentLength = length;
      } else if (name === 'transfer-encoding') {
        if (value.toLowerCase() !== 'chunked') throw new ResponseHeadError('unsupported transfer-encoding');
        result.chunked = true;
      }
    }
    if (!drop) {
      if (BAD_VALUE.test(text.slice(colon + 1, next))) throw new ResponseHeadError('bad header value');
      head += next === text.length ? `${text.slice(pos, next)}\r\n` : text.slice(pos, next + 2);
    }
    pos = next + 2;
  }
  if (result.chunked && result.contentLength !== -1)
    throw new ResponseHeadError('both content-length and chunked');
  result.head = head;
  return result;
}
