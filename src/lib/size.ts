// Sizes as people write them (`512Mi`, `1G`, `64Ki`, `1048576`), parsed to whole bytes in one place.

/** Multipliers, Kubernetes-style: `Ki Mi Gi Ti` are powers of 1024, `k/K M G T` powers of 1000. */
const UNIT_BYTES: Record<string, number> = {
  '': 1,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
};

/** Units tried when formatting, binary first because memory limits are usually binary. */
const FORMAT_UNITS = ['Ti', 'Gi', 'Mi', 'Ki', 'T', 'G', 'M', 'k'] as const;

/** What a valid size looks like, for error messages. */
export const SIZE_EXAMPLES = '512Mi, 1Gi, 100M, 1G, 64Ki or a number of bytes';

const SIZE = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|K|M|G|T)?$/;

/**
 * Parses a size such as `512Mi`, `1Gi`, `100M`, `1G`, `64Ki` or `65536` (bytes) into bytes.
 * Fractions are allowed (`1.5Gi`) and rounded up to a whole byte, as Kubernetes does.
 * `MB`/`MiB`-style suffixes are refused with a hint, because `512MB` is read as MiB by some tools and MB by others.
 * @throws RangeError with a message saying what was expected.
 */
export function parseSize(text: string): number {
  const match = SIZE.exec(text);
  if (match === null) {
    const withB = /^(\d+(?:\.\d+)?)\s*([kKMGT])(i?)B$/.exec(text);
    const hint =
      withB === null
        ? ''
        : ` (write "${withB[1]}${withB[2]}i" for binary or "${withB[1]}${withB[2]}" for decimal)`;
    throw new RangeError(`"${text}" is not a size; expected e.g. ${SIZE_EXAMPLES}${hint}`);
  }
  const bytes = Math.ceil(Number(match[1]) * (UNIT_BYTES[match[2] ?? ''] ?? 1) - 1e-6);
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`"${text}" is too large`);
  return Math.max(bytes, 0);
}

/** Formats bytes exactly with the largest unit that divides them: 536870912 → `512Mi`, 1000000 → `1M`, 1234 → `1234`. */
export function formatSize(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`cannot format ${bytes} as a size`);
  if (bytes === 0) return '0';
  for (const unit of FORMAT_UNITS) {
    const size = UNIT_BYTES[unit] ?? 1;
    if (bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}

/** `512B`, `1.5KiB`, `87MiB`: memory and sizes for tables. */
export function formatBytes(bytes: number | null): string {
  if (bytes === null) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 && unit > 0 ? value.toFixed(1) : Math.round(value)}${units[unit]}`;
}
