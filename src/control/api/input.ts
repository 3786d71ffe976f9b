// Validation of API input: one zod check whose failure names every bad field as `invalid_request`.
import type { z } from 'zod';
import { BerthError, type Issue } from '../../domain/errors.js';

/** Validates `value` against `schema`, or throws `invalid_request` naming each bad field under `where`. */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown, where: string): z.output<T> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const issues: Issue[] = result.error.issues.map((issue) => ({
    path: [where, ...issue.path.map(String)].join('.'),
    message: issue.message,
  }));
  throw new BerthError(
    'invalid_request',
    `invalid ${where}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
    { issues },
  );
}
