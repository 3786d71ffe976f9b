// Finds where an HTTP/1.1 message body ends (Content-Length, chunked, or connection close) without copying it.

/** How a body is delimited. `none`: no body; `close`: until the sender closes (responses only). */
export type BodyMode = 'none' | 'length' | 'chunked' | 'close';

type ChunkState =
  | 'size'
  | 'size_lf'
  | 'ext'
  | 'data'
  | 'data_cr'
  | 'data_lf'
  | 'trailer'
  | 'trailer_lf'
  | 'trailer_line';

/** Thrown when a chunked body is malformed; the connection must be closed. */
export class FramingError extends Error {}

/**
 * Tracks one message body as bytes stream through. `feed` returns the index just past the body's last byte
 * when the body ends inside the given buffer, or -1 when it needs more. Bytes are forwarded as-is (chunked
 * framing included), so the proxy never rebuilds a body.
 */
export class BodyFramer {
  mode: BodyMode = 'none';
  #remaining = 0;
  #state: ChunkState = 'size';
  #sizeDigits = 0;
  #lineLength = 0;
  done = true;

  /** Starts a new body. `length` is used for mode `length`. */
  reset(mode: BodyMode, length = 0): void {
    this.mode = mode;
    this.#remaining = length;
    this.#state = 'size';
    this.#sizeDigits = 0;
    this.#remaining = mode === 'chunked' ? 0 : length;
    this.done = mode === 'none' || (mode === 'length' && length === 0);
  }

  /** Consumes `buf[start..]`; returns the end index of the body within `buf`, or -1 if the body continues. */
  feed(buf: Buffer, start: number): number {
    if (this.done) return start;
    switch (this.mode) {
      case 'none':
        return start;
      case 'close':
        return -1;
      case 'length': {
        const available = buf.length - start;
        if (available < this.#remaining) {
          this.#remaining -= available;
          return -1;
        }
        const end = start + this.#remaining;
        this.#remaining = 0;
        this.done = true;
        return end;
      }
      case 'chunked':
        return this.#feedChunked(buf, start);
    }
  }

  #feedChunked(buf: Buffer, start: number): number {
    let i = start;
    const n = buf.length;
    while (i < n) {
      switch (this.#state) {
        case 'data': {
          const take = Math.min(this.#remaining, n - i);
          i += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#state = 'data_cr';
          break;
        }
        case 'size': {
          const c = buf[i]!;
          const digit = hexValue(c);
          if (digit >= 0) {
            if (++this.#sizeDigits > 12) throw new FramingError('chunk size too large');
            this.#remaining = this.#remaining * 16 + digit;
          } else if (this.#sizeDigits === 0) {
            throw new FramingError('chunk size expected');
          } else if (c === 0x0d) {
            this.#state = 'size_lf';
          } else if (c === 0x3b || c === 0x20 || c === 0x09) {
            this.#state = 'ext';
            this.#lineLength = 0;
          } else {
            throw new FramingError('bad chunk size');
          }
          i++;
          break;
        }
        case 'ext': {
          const c = buf[i]!;
          if (c === 0x0d) this.#state = 'size_lf';
          else if (c === 0x0a || c < 0x09 || ++this.#lineLength > 4096)
            throw new FramingError('bad chunk extension');
          i++;
          break;
        }
        case 'size_lf': {
          if (buf[i] !== 0x0a) throw new FramingError('bad chunk line ending');
          i++;
          this.#sizeDigits = 0;
          if (this.#remaining === 0) {
            this.#state = 'trailer';
          } else {
            this.#state = 'data';
          }
          break;
        }
        case 'data_cr':
          if (buf[i] !== 0x0d) throw new FramingError('chunk data too long');
          this.#state = 'data_lf';
          i++;
          break;
        case 'data_lf':
          if (buf[i] !== 0x0a) throw new FramingError('bad chunk data ending');
          this.#state = 'size';
          this.#remaining = 0;
          i++;
          break;
        case 'trailer': {
          // Start of a trailer line: an empty line (CRLF) ends the body.
          const c = buf[i]!;
          if (c === 0x0d) this.#state = 'trailer_lf';
          else {
            this.#state = 'trailer_line';
            this.#lineLength = 1;
          }
          i++;
          break;
        }
        case 'trailer_lf':
          if (buf[i] !== 0x0a) throw new FramingError('bad trailer ending');
          i++;
          this.done = true;
          return i;
        case 'trailer_line': {
          const c = buf[i]!;
          if (c === 0x0a) {
            if (buf[i - 1] !== 0x0d && i > start) throw new FramingError('bare LF in trailer');
            this.#state = 'trailer';
          } else if (++this.#lineLength > 8192) throw new FramingError('trailer too long');
          i++;
          break;
        }
      }
    }
    return -1;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}
