// Process-level handlers: SIGTERM/SIGINT close cleanly; an unhandled rejection or exception is logged, then closes.
import type { Logger } from './logger.js';

export interface ProcessHandlerOptions {
  log: Logger;
  /** Stops what the process runs; called once. */
  close(): Promise<void>;
  /** How long `close` may take before the process exits anyway. */
  closeTimeoutMs?: number;
  /** Replaceable in tests. */
  exit?: (code: number) => void;
}

/**
 * Installs the handlers of a long-running process and returns how to remove them. A fault nobody caught is a bug:
 * it is logged with its stack, what runs is closed (so nothing is left half-written), and the exit code is 1.
 */
export function installProcessHandlers(options: ProcessHandlerOptions): () => void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let closing = false;
  const shutdown = (code: number): void => {
    if (closing) return;
    closing = true;
    const timer = setTimeout(() => {
      options.log.error({ timeoutMs: options.closeTimeoutMs ?? 30_000 }, 'close took too long; exiting');
      exit(code || 1);
    }, options.closeTimeoutMs ?? 30_000);
    timer.unref();
    options.close().then(
      () => exit(code),
      (error: unknown) => {
        options.log.error({ err: error }, 'close failed');
        exit(1);
      },
    );
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    options.log.info({ signal }, 'stopping');
    shutdown(0);
  };
  const onRejection = (reason: unknown): void => {
    options.log.fatal({ err: reason }, 'unhandled promise rejection; stopping');
    shutdown(1);
  };
  const onException = (error: Error): void => {
    options.log.fatal({ err: error }, 'uncaught exception; stopping');
    shutdown(1);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}
