// The platform's own structured logs (pino): events with fields, not sentences with values pasted in.
import { pino } from 'pino';

export type Logger = pino.Logger;

export function createLogger(options: {
  name: string;
  level?: string;
  destination?: number | string;
  /** Rewrites each serialized line before it is written (e.g. to redact values that must never be logged). */
  transform?: (line: string) => string;
}): Logger {
  const level = options.level ?? process.env.BERTH_LOG_LEVEL ?? 'info';
  const destination = pino.destination({ dest: options.destination ?? 2, sync: true });
  const transform = options.transform;
  const stream = transform ? { write: (line: string) => destination.write(transform(line)) } : destination;
  return pino({ name: options.name, level, base: { pid: process.pid } }, stream);
}

/** A logger that discards everything, for tests and short-lived commands. */
export const silentLogger: Logger = pino({ level: 'silent' });
