// Finds where an HTTP/1.1 message body ends (Content-Length, chunked, or connection close) without copying it.
import { CHAR_CLASS, FIELD, TCHAR } from './field-line.js';

/** How a body is delimited. `none`: no body; `close`: until the sender closes (responses only). */
export type BodyMode = 'none' | 'length' | 'chunked' | 'close';

// States of the chunked parser (RFC 9112 §7.1), as small integers for a tight loop.
const SIZE = 0;
const EXT_NAME = 1;
const EXT_NAME_START = 16;
const EXT_VALUE_START = 2;
const EXT_TOKEN = 3;
const EXT_QUOTED = 4;
const EXT_QUOTED_PAIR = 5;
const EXT_AFTER_QUOTED = 6;
const SIZE_LF = 7;
const DATA = 8;
const DATA_CR = 9;
const DATA_LF = 10;
const TRAILER_START = 11;
const TRAILER_NAME = 12;
const TRAILER_VALUE = 13;
const TRAILER_LF = 14;
const FINAL_LF = 15;

/** Longest chunk size line and trailer section the proxy reads. */
const MAX_CHUNK_LINE = 4096;
const MAX_TRAILERS = 8192;
/** Hex digits of a chunk size: 13 significant ones stay within Number.MAX_SAFE_INTEGER. */
const MAX_SIZE_DIGITS = 16;

/** Thrown when a chunked body is malformed; the connection must be closed. */
export class FramingError extends Error {}

/**
 * Tracks one message body as bytes stream through. `feed` returns the index just past the body's last byte
 * when the body ends inside the given buffer, or -1 when it needs more. Bytes are forwarded as they came (chunk
 * sizes and extensions included, all strictly checked) except trailer fields, which are dropped: `skipFrom`
 * says where they start in the last buffer fed, and whoever forwards the body ends it with CRLF itself.
 */
export class BodyFramer {
  mode: BodyMode = 'none';
  done = true;
  /** Index in the last buffer fed from which its bytes are trailer fields not to forward; -1 when none. */
  skipFrom = -1;
  /** The body had trailer fields (dropped): its final CRLF was among the skipped bytes. */
  trailersDropped = false;
  #remaining = 0;
  #state = SIZE;
  #digits = 0;
  #significant = 0;
  #lineLength = 0;

  /** Starts a new body. `length` is used for mode `length`. */
  reset(mode: BodyMode, length = 0): void {
    this.mode = mode;
    this.#state = SIZE;
    this.#digits = 0;
    this.#significant = 0;
    this.#lineLength = 0;
    this.#remaining = mode === 'length' ? length : 0;
    this.done = mode === 'none' || (mode === 'length' && length === 0);
    this.skipFrom = -1;
    this.trailersDropped = false;
  }

  /** Consumes `buf[start..]`; returns the end index of the body within `buf`, or -1 if the body continues. */
  feed(buf: Buffer, start: number): number {
    this.skipFrom = -1;
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
    let state = this.#state;
    // Inside the trailer section since an earlier buffer: everything fed now is skipped.
    if (this.trailersDropped) this.skipFrom = start;
    try {
      while (i < n) {
        if (state === DATA) {
          const take = Math.min(this.#remaining, n - i);
          i += take;
          this.#remaining -= take;
          if (this.#remaining === 0) state = DATA_CR;
          continue;
        }
        const c = buf[i]!;
        switch (state) {
          case SIZE: {
            const digit = hexValue(c);
            if (digit >= 0) {
              if (++this.#digits > MAX_SIZE_DIGITS) throw new FramingError('chunk size too long');
              if ((this.#remaining !== 0 || digit !== 0) && ++this.#significant > 13)
                throw new FramingError('chunk size too large');
              this.#remaining = this.#remaining * 16 + digit;
            } else if (this.#digits === 0) {
              throw new FramingError('chunk size expected');
            } else if (c === 0x0d) {
              state = SIZE_LF;
            } else if (c === 0x3b /* ; */) {
              state = EXT_NAME_START;
              this.#lineLength = 0;
            } else {
              // No whitespace after the size or around ";" (llhttp refuses it, h11 accepts it: never forward it).
              throw new FramingError('bad chunk size');
            }
            break;
          }
          // chunk-ext = *( ";" token [ "=" ( token / quoted-string ) ] ), without whitespace.
          case EXT_NAME_START:
            if ((CHAR_CLASS[c]! & TCHAR) === 0) throw new FramingError('bad chunk extension');
            this.#extByte(1);
            state = EXT_NAME;
            break;
          case EXT_NAME:
            if ((CHAR_CLASS[c]! & TCHAR) !== 0) this.#extByte(1);
            else if (c === 0x3d /* = */) state = EXT_VALUE_START;
            else state = this.#extEnd(c);
            break;
          case EXT_VALUE_START:
            if (c === 0x22 /* " */) state = EXT_QUOTED;
            else if ((CHAR_CLASS[c]! & TCHAR) !== 0) state = EXT_TOKEN;
            else throw new FramingError('bad chunk extension');
            this.#extByte(1);
            break;
          case EXT_TOKEN:
            if ((CHAR_CLASS[c]! & TCHAR) !== 0) this.#extByte(1);
            else state = this.#extEnd(c);
            break;
          case EXT_QUOTED:
            this.#extByte(1);
            if (c === 0x22) state = EXT_AFTER_QUOTED;
            else if (c === 0x5c /* \ */) state = EXT_QUOTED_PAIR;
            else if (!(c === 0x09 || (c >= 0x20 && c <= 0x7e))) throw new FramingError('bad chunk extension');
            break;
          case EXT_QUOTED_PAIR:
            if (!(c === 0x09 || (c >= 0x20 && c <= 0x7e))) throw new FramingError('bad chunk extension');
            this.#extByte(1);
            state = EXT_QUOTED;
            break;
          case EXT_AFTER_QUOTED:
            state = this.#extEnd(c);
            break;
          case SIZE_LF:
            if (c !== 0x0a) throw new FramingError('bad chunk line ending');
            this.#digits = 0;
            this.#significant = 0;
            if (this.#remaining === 0) {
              state = TRAILER_START;
              this.#lineLength = 0;
            } else state = DATA;
            break;
          case DATA_CR:
            if (c !== 0x0d) throw new FramingError('chunk data too long');
            state = DATA_LF;
            break;
          case DATA_LF:
            if (c !== 0x0a) throw new FramingError('bad chunk data ending');
            state = SIZE;
            break;
          case TRAILER_START:
            // An empty line ends the body; otherwise a trailer field, which is checked and dropped.
            if (c === 0x0d) state = FINAL_LF;
            else if ((CHAR_CLASS[c]! & TCHAR) !== 0) {
              if (!this.trailersDropped) {
                this.trailersDropped = true;
                this.skipFrom = i;
              }
              state = TRAILER_NAME;
            } else throw new FramingError('bad trailer');
            break;
          case TRAILER_NAME:
            if (c === 0x3a /* : */) state = TRAILER_VALUE;
            else if ((CHAR_CLASS[c]! & TCHAR) === 0) throw new FramingError('bad trailer name');
            break;
          case TRAILER_VALUE:
            if (c === 0x0d) state = TRAILER_LF;
            else if ((CHAR_CLASS[c]! & FIELD) === 0) throw new FramingError('bad trailer value');
            break;
          case TRAILER_LF:
            if (c !== 0x0a) throw new FramingError('bad trailer line ending');
            state = TRAILER_START;
            break;
          case FINAL_LF:
            if (c !== 0x0a) throw new FramingError('bad chunked body ending');
            this.#state = SIZE;
            this.done = true;
            return i + 1;
        }
        if (state >= TRAILER_START && state <= FINAL_LF && ++this.#lineLength > MAX_TRAILERS)
          throw new FramingError('trailers too long');
        i++;
      }
    } finally {
      this.#state = state;
    }
    return -1;
  }

  #extByte(count: number): void {
    this.#lineLength += count;
    if (this.#lineLength > MAX_CHUNK_LINE) throw new FramingError('chunk extension too long');
  }

  /** After an extension: another one, or the end of the size line. */
  #extEnd(c: number): number {
    if (c === 0x3b) {
      this.#extByte(1);
      return EXT_NAME_START;
    }
    if (c === 0x0d) return SIZE_LF;
    throw new FramingError('bad chunk extension');
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}
