// The one error type of Berth: a stable code, a message that names the place, optional per-field issues.

/** Stable error codes. Their HTTP statuses are mapped in exactly one place: `httpStatusOf`. */
export type ErrorCode =
  | 'invalid_spec'
  | 'invalid_request'
  | 'invalid_route_table'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'build_failed'
  | 'release_failed'
  | 'runtime_failure'
  | 'internal';

/** One problem with an input: where it is (field path, and file position when known) and what was expected. */
export interface Issue {
  /** Dotted field path, e.g. `services.web.health.interval`. Empty for the whole input. */
  path: string;
  message: string;
  /** `file:line:column` when the input came from a file. */
  location?: string;
}

export class BerthError extends Error {
  readonly code: ErrorCode;
  readonly issues: Issue[];

  constructor(code: ErrorCode, message: string, options: { issues?: Issue[]; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BerthError';
    this.code = code;
    this.issues = options.issues ?? [];
  }

  toJSON(): { code: ErrorCode; message: string; issues?: Issue[] } {
    return this.issues.length > 0
      ? { code: this.code, message: this.message, issues: this.issues }
      : { code: this.code, message: this.message };
  }
}

/** The only mapping from error codes to HTTP statuses. */
export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case 'invalid_spec':
    case 'invalid_request':
    case 'invalid_route_table':
      return 400;
    case 'unauthorized':
      return 401;
    case 'forbidden':
      return 403;
    case 'not_found':
      return 404;
    case 'conflict':
      return 409;
    case 'build_failed':
    case 'release_failed':
      return 422;
    case 'runtime_failure':
    case 'internal':
      return 500;
  }
}

/** Formats issues one per line, position first, for terminals and logs. */
export function formatIssues(issues: Issue[]): string {
  return issues
    .map((issue) => {
      const where = issue.location ?? '';
      const path = issue.path === '' ? '' : issue.path;
      const prefix = [where, path].filter((part) => part !== '').join(' ');
      return prefix === '' ? issue.message : `${prefix}: ${issue.message}`;
    })
    .join('\n');
}
