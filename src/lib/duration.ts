// Durations as people write them (`500ms`, `2s`, `1m30s`), parsed to whole milliseconds in one place.

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
type Unit = keyof typeof UNIT_MS;

/** Units from largest to smallest, for formatting. */
const UNITS_DESCENDING: readonly Unit[] = ['d', 'h', 'm', 's', 'ms'];

// One or more `<number><unit>` parts, largest unit first is not enforced: `90s` and `1m30s` both read naturally.
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;

/** What a valid duration looks like, for error messages. */
export const DURATION_EXAMPLES = '500ms, 2s, 5m, 1h or 1m30s';

/**
 * Parses a duration such as `500ms`, `2s`, `1.5s`, `5m`, `1h`, `365d` or `1m30s` into milliseconds.
 * A unit is required: a bare number (`30`) is refused because `30` could mean seconds or milliseconds.
 * The result must be a whole number of milliseconds (`0.5ms` is refused).
 * @throws RangeError with a message saying what was expected.
 */
export function parseDuration(text: string): number {
  if (/^\d+(\.\d+)?$/.test(text)) {
    throw new RangeError(`"${text}" has no unit; add one, e.g. "${text}s" or "${text}ms"`);
  }
  let total = 0;
  let index = 0;
  PART.lastIndex = 0;
  while (index < text.length) {
    PART.lastIndex = index;
    const match = PART.exec(text);
    if (match === null) break;
    total += Number(match[1]) * UNIT_MS[match[2] as Unit];
    index = PART.lastIndex;
  }
  if (text.length === 0 || index !== text.length) {
    throw new RangeError(`"${text}" is not a duration; expected e.g. ${DURATION_EXAMPLES}`);
  }
  // Decimal parts are multiplied as floats: round away representation noise before the whole-ms check.
  const rounded = Math.round(total * 1000) / 1000;
  if (!Number.isInteger(rounded) || !Number.isSafeInteger(rounded)) {
    throw new RangeError(`"${text}" is not a whole number of milliseconds`);
  }
  return rounded;
}

/** Formats milliseconds exactly, largest units first: 1500 → `1s500ms`, 90000 → `1m30s`, 0 → `0s`, a day → `1d`. */
export function formatDuration(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`cannot format ${ms} as a duration`);
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  for (const unit of UNITS_DESCENDING) {
    const size = UNIT_MS[unit];
    const count = Math.floor(rest / size);
    if (count > 0) {
      out += `${count}${unit}`;
      rest -= count * size;
    }
  }
  return out;
}
