// Runs a database tool (initdb, psql, pg_dump, pg_restore) to its end, with a deadline and its output kept.
import { spawn } from 'node:child_process';
import { basename } from 'node:path';
import { BerthError } from '../../domain/errors.js';

export interface ToolOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Written to its stdin, which is then closed. */
  input?: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Output kept of each stream: enough for an error message, bounded whatever the tool prints. */
const KEEP_BYTES = 64 * 1024;

/**
 * Runs `argv` and resolves with its stdout once it exits with code 0. Otherwise (or past the deadline, or when
 * `signal` aborts: it is then killed) rejects with a `runtime_failure` naming the tool and its last error lines.
 */
export function runTool(argv: readonly string[], options: ToolOptions): Promise<string> {
  const [command, ...args] = argv;
  const name = basename(command!);
  return new Promise((resolve, reject) => {
    const child = spawn(command!, args, {
      cwd: options.cwd,
      env: options.env ?? { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout = (stdout + String(chunk)).slice(-KEEP_BYTES);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + String(chunk)).slice(-KEEP_BYTES);
    });
    let why: string | undefined;
    const kill = (reason: string): void => {
      why ??= reason;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => kill(`did not finish within ${options.timeoutMs}ms`), options.timeoutMs);
    const onAbort = (): void => kill('was stopped: the control plane is stopping');
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdin.on('error', () => {
      // It exited before reading its input: its exit says why.
    });
    child.stdin.end(options.input ?? '');
    const done = (): void => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    };
    child.once('error', (error) => {
      done();
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      reject(
        new BerthError(
          'runtime_failure',
          missing ? `${command} is not installed` : `${name}: ${error.message}`,
          {
            cause: error,
          },
        ),
      );
    });
    child.once('close', (code, signal) => {
      done();
      if (code === 0 && why === undefined) return resolve(stdout);
      const tail = lastLines(stderr.trim() || stdout.trim(), 6);
      const how = why ?? (signal ? `was killed by ${signal}` : `exited with code ${code}`);
      reject(new BerthError('runtime_failure', `${name} ${how}${tail === '' ? '' : `: ${tail}`}`));
    });
  });
}

/** The last `count` non-empty lines of `text`, joined with ` | ` for a one-line message. */
export function lastLines(text: string, count: number): string {
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line !== '')
    .slice(-count)
    .join(' | ');
}
