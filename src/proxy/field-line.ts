// HTTP/1.1 byte classes (RFC 9110 §5.6) and the scanner of one field line, shared by the request and response heads.

/** tchar: the bytes of a token (methods, header names, transfer codings). */
export const TCHAR = 1;
/** What a field value may hold: VCHAR, obs-text (0x80-0xFF), SP and HTAB. Every other CTL is refused. */
export const FIELD = 2;

/** Class bits of each byte (a latin1 char code indexes it). */
export const CHAR_CLASS = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) CHAR_CLASS[c]! |= FIELD;
for (let c = 0x80; c <= 0xff; c++) CHAR_CLASS[c]! |= FIELD;
CHAR_CLASS[0x20]! |= FIELD;
CHAR_CLASS[0x09]! |= FIELD;
for (const c of "!#$%&'*+-.^_`|~") CHAR_CLASS[c.charCodeAt(0)]! |= TCHAR;
for (let c = 0x30; c <= 0x39; c++) CHAR_CLASS[c]! |= TCHAR;
for (let c = 0x41; c <= 0x5a; c++) CHAR_CLASS[c]! |= TCHAR;
for (let c = 0x61; c <= 0x7a; c++) CHAR_CLASS[c]! |= TCHAR;

/** Where `readFieldLine` found the parts of a line (offsets into the head text). */
export class FieldLine {
  nameStart = 0;
  nameEnd = 0;
  /** The value without leading and trailing SP/HTAB (the only bytes that may be trimmed). */
  valueStart = 0;
  valueEnd = 0;
  /** Start of the next line. */
  next = 0;
  /** The name has an `_` (a variant some frameworks read as `-`). */
  underscore = false;
}

/** What is wrong with a field line, or `OK`. */
export const OK = 0;
export const BAD_NAME = 1;
export const BAD_VALUE = 2;

/**
 * Reads the field line starting at `pos` of `text` (a head whose lines each end in CRLF) into `line`. The name
 * must be a token followed at once by `:` (no space before the colon, no obs-fold); the value may hold only
 * VCHAR, obs-text, SP and HTAB and must end in CRLF (a bare CR or LF, NUL or any other CTL is refused). The
 * checks ride on the one pass that finds the line's end.
 */
export function readFieldLine(text: string, pos: number, line: FieldLine): number {
  let i = pos;
  let c = text.charCodeAt(i);
  let underscore = false;
  while ((CHAR_CLASS[c]! & TCHAR) !== 0) {
    if (c === 0x5f) underscore = true;
    c = text.charCodeAt(++i);
  }
  if (i === pos || c !== 0x3a /* : */) return BAD_NAME;
  line.nameStart = pos;
  line.nameEnd = i;
  line.underscore = underscore;
  c = text.charCodeAt(++i);
  while (c === 0x20 || c === 0x09) c = text.charCodeAt(++i);
  const valueStart = i;
  while ((CHAR_CLASS[c]! & FIELD) !== 0) c = text.charCodeAt(++i);
  if (c !== 0x0d || text.charCodeAt(i + 1) !== 0x0a) return BAD_VALUE;
  let valueEnd = i;
  while (valueEnd > valueStart) {
    const last = text.charCodeAt(valueEnd - 1);
    if (last !== 0x20 && last !== 0x09) break;
    valueEnd--;
  }
  line.valueStart = valueStart;
  line.valueEnd = valueEnd;
  line.next = i + 2;
  return OK;
}

/** True when `text[start..end)` is a non-empty token. */
export function isToken(text: string, start: number, end: number): boolean {
  if (end <= start) return false;
  for (let i = start; i < end; i++) if ((CHAR_CLASS[text.charCodeAt(i)]! & TCHAR) === 0) return false;
  return true;
}

/** True when `text[start..end)` is only digits (at least one). */
export function isDigits(text: string, start: number, end: number): boolean {
  if (end <= start) return false;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/**
 * The lower-case tokens of a comma-separated list (`Connection: keep-alive, Upgrade`); empty elements are
 * skipped; undefined when an element is not a token.
 */
export function tokenList(value: string): string[] | undefined {
  const out: string[] = [];
  for (const part of value.split(',')) {
    // Only SP and HTAB around elements (String.trim would also take NBSP, VT, FF...).
    let start = 0;
    let end = part.length;
    while (start < end && (part.charCodeAt(start) === 0x20 || part.charCodeAt(start) === 0x09)) start++;
    while (end > start && (part.charCodeAt(end - 1) === 0x20 || part.charCodeAt(end - 1) === 0x09)) end--;
    if (start === end) continue;
    if (!isToken(part, start, end)) return undefined;
    out.push(part.slice(start, end).toLowerCase());
  }
  return out;
}

/**
 * Whether `buf[start..end)`, the beginning of a field line still arriving, can still become a valid one: a token
 * name, then after `:` only field-value bytes (a CR may end it).
 */
export function fieldLinePrefixValid(buf: Buffer, start: number, end: number): boolean {
  // The CR of the empty line that ends the head, its LF still to come.
  if (buf[start] === 0x0d) return end - start === 1;
  let i = start;
  while (i < end && (CHAR_CLASS[buf[i]!]! & TCHAR) !== 0) i++;
  if (i === end) return true;
  if (buf[i] !== 0x3a || i === start) return false;
  for (i++; i < end; i++) {
    const c = buf[i]!;
    if ((CHAR_CLASS[c]! & FIELD) === 0) return c === 0x0d && i === end - 1;
  }
  return true;
}

/** Whether `buf[start..end)`, the beginning of a request line still arriving, can still become a valid one. */
export function requestLinePrefixValid(buf: Buffer, start: number, end: number): boolean {
  let i = start;
  while (i < end && (CHAR_CLASS[buf[i]!]! & TCHAR) !== 0) i++;
  if (i === end) return true;
  if (buf[i] !== 0x20 || i === start) return false;
  for (i++; i < end && buf[i] !== 0x20; i++) if (buf[i]! <= 0x20 || buf[i]! >= 0x7f) return false;
  for (i++; i < end; i++) if (buf[i]! <= 0x20 || buf[i]! >= 0x7f) return buf[i] === 0x0d && i === end - 1;
  return true;
}

/** Index of the first CR in `buf[from..]` followed by anything but LF, or -1 (a CR at the very end is not judged). */
export function findBareCr(buf: Buffer, from: number): number {
  for (let i = buf.indexOf(0x0d, from); i !== -1; i = buf.indexOf(0x0d, i + 1)) {
    if (i + 1 < buf.length && buf[i + 1] !== 0x0a) return i;
  }
  return -1;
}

/** Index of the first LF in `buf[from..]` that no CR precedes, or -1 (a head with one can never be framed alike). */
export function findBareLf(buf: Buffer, from: number): number {
  for (let i = buf.indexOf(0x0a, from); i !== -1; i = buf.indexOf(0x0a, i + 1)) {
    if (i === 0 || buf[i - 1] !== 0x0d) return i;
  }
  return -1;
}
