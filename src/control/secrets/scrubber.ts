// Replaces secret values by `[secret:NAME]` in text and in byte streams, even when a value is split across writes.

/** Values shorter than this are not scrubbed: replacing every `1` or `ab` in the output would make it unreadable. */
export const MIN_SCRUB_LENGTH = 4;

interface Needle {
  name: string;
  value: Buffer;
  replacement: Buffer;
}

/** Name → value, as a record or as pairs (pairs allow one name with several values, e.g. two versions). */
export type SecretValues = Readonly<Record<string, string>> | readonly (readonly [string, string])[];

function needlesOf(secrets: SecretValues): Needle[] {
  const needles: Needle[] = [];
  const pairs = Array.isArray(secrets) ? secrets : Object.entries(secrets);
  for (const [name, value] of pairs as [string, string][]) {
    const bytes = Buffer.from(value, 'utf8');
    if (bytes.length < MIN_SCRUB_LENGTH) continue;
    needles.push({ name, value: bytes, replacement: Buffer.from(`[secret:${name}]`, 'utf8') });
  }
  // Longest first, so that a value containing another is replaced whole.
  return needles.sort((a, b) => b.value.length - a.value.length);
}

/**
 * A streaming scrubber for one byte stream. It holds back at most the last `max(len(value)) - 1` bytes of what
 * it was given, and only when they may be the start of a value whose rest comes in the next write; `flush`
 * releases them.
 */
export class StreamScrubber {
  readonly #needles: Needle[];
  readonly #holdBack: number;
  #pending: Buffer = Buffer.alloc(0);

  constructor(secrets: SecretValues) {
    this.#needles = needlesOf(secrets);
    this.#holdBack = Math.max(0, ...this.#needles.map((n) => n.value.length - 1));
  }

  /** Bytes held back, waiting to see whether they start a secret value. */
  get pendingBytes(): number {
    return this.#pending.length;
  }

  /** Scrubs `chunk` (after what was held back) and returns what is safe to pass on now. */
  push(chunk: Buffer): Buffer {
    if (this.#needles.length === 0) return chunk;
    const input = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    // Only a tail that could be the start of a value is held back: any match starting before `safeEnd` lies
    // wholly inside `input` (else a longer tail would start a value), so lines without secrets pass at once.
    const safeEnd = input.length - this.#startOfValueAtEnd(input);
    const { output, consumed } = replaceAll(this.#needles, input, safeEnd);
    this.#pending = Buffer.from(input.subarray(consumed));
    return output;
  }

  /** The length of the longest tail of `input` (shorter than a whole value) that is the start of some value. */
  #startOfValueAtEnd(input: Buffer): number {
    for (let length = Math.min(this.#holdBack, input.length); length > 0; length--) {
      const tail = input.subarray(input.length - length);
      for (const needle of this.#needles) {
        if (needle.value.length > length && tail.equals(needle.value.subarray(0, length))) return length;
      }
    }
    return 0;
  }

  /** Releases everything held back (at the end of a stream, or when a partial line must be written). */
  flush(): Buffer {
    const input = this.#pending;
    this.#pending = Buffer.alloc(0);
    if (input.length === 0) return input;
    return replaceAll(this.#needles, input, input.length).output;
  }
}

/**
 * Replaces every match starting before `safeEnd`; returns the output and how many input bytes it covers
 * (at least up to `safeEnd`, further when a match straddles it).
 */
function replaceAll(
  needles: readonly Needle[],
  input: Buffer,
  safeEnd: number,
): { output: Buffer; consumed: number } {
  const parts: Buffer[] = [];
  let position = 0;
  for (;;) {
    let best: Needle | undefined;
    let bestAt = -1;
    for (const needle of needles) {
      const at = input.indexOf(needle.value, position);
      // Earliest match wins; on a tie the longest (needles are sorted longest first).
      if (at !== -1 && at < safeEnd && (bestAt === -1 || at < bestAt)) {
        best = needle;
        bestAt = at;
      }
    }
    if (!best) break;
    parts.push(input.subarray(position, bestAt), best.replacement);
    position = bestAt + best.value.length;
  }
  const end = Math.max(position, safeEnd);
  parts.push(input.subarray(position, end));
  return { output: parts.length === 1 ? parts[0]! : Buffer.concat(parts), consumed: end };
}

/** Scrubs whole strings (event messages, platform log lines): the set of values can change as secrets do. */
export class TextScrubber {
  #needles: { name: string; value: string }[] = [];

  /** Replaces the values to look for: name → value. */
  setSecrets(secrets: SecretValues): void {
    this.#needles = needlesOf(secrets).flatMap((n) => {
      const value = n.value.toString('utf8');
      // Also as it appears inside a JSON string (a serialized log line), when escaping changes it.
      const escaped = JSON.stringify(value).slice(1, -1);
      return escaped === value
        ? [{ name: n.name, value }]
        : [
            { name: n.name, value },
            { name: n.name, value: escaped },
          ];
    });
  }

  /** How many values it looks for. */
  get size(): number {
    return this.#needles.length;
  }

  scrub(text: string): string {
    let result = text;
    for (const needle of this.#needles) {
      if (result.includes(needle.value)) result = result.split(needle.value).join(`[secret:${needle.name}]`);
    }
    return result;
  }

  /** Scrubs every string inside a JSON-like value (walked, not stringified: escaping would hide a value). */
  scrubValue<T>(value: T): T {
    if (this.#needles.length === 0) return value;
    return this.#walk(value) as T;
  }

  #walk(value: unknown): unknown {
    if (typeof value === 'string') return this.scrub(value);
    if (Array.isArray(value)) return value.map((item) => this.#walk(item));
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(
        Object.entries(value).map(([key, item]) => [this.scrub(key), this.#walk(item)]),
      );
    }
    return value;
  }
}
