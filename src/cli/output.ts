// How the CLI prints: aligned tables for people, JSON for scripts, errors that name the place.
import { BerthError, formatIssues } from '../domain/errors.js';

/** Exit codes: 0 ok, 1 failure, 2 usage error. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Rows as left-aligned columns under upper-case headers. */
export function printTable(headers: string[], rows: (string | number)[][]): void {
  const cells = [headers.map((h) => h.toUpperCase()), ...rows.map((row) => row.map(String))];
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? '').length)));
  for (const row of cells) {
    process.stdout.write(
      `${row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd()}\n`,
    );
  }
}

/** A usage error: wrong arguments, reported like commander's own and exiting with 2. */
export class UsageError extends Error {}

export function printError(error: unknown): number {
  if (error instanceof UsageError) {
    process.stderr.write(`error: ${error.message}\n`);
    return EXIT_USAGE;
  }
  if (error instanceof BerthError) {
    process.stderr.write(`error: ${error.message}\n`);
    if (error.issues.length > 0) process.stderr.write(`${indent(formatIssues(error.issues))}\n`);
    return EXIT_FAILURE;
  }
  process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
  return EXIT_FAILURE;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}

/** `1h 02m`, `3m 05s`, `12s`: compact ages for tables. */
export function formatAge(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h${String(minutes % 60).padStart(2, '0')}m`;
  return `${Math.floor(hours / 24)}d`;
}

export function formatTime(epochMs: number): string {
  return new Date(epochMs)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
}

export { formatBytes } from '../lib/size.js';
