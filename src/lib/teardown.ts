// Undo in reverse order: what a start-up started is stopped again if a later step fails, and on close.
import type { Logger } from './logger.js';

/**
 * Collects how to undo each step of a start-up. `run` undoes them newest first; a failing undo is logged and the
 * others still run, so one stuck piece never leaves the rest running.
 */
export class Teardown {
  readonly #steps: { what: string; undo: () => unknown }[] = [];
  readonly #log: Logger;
  #ran: Promise<void> | undefined;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Registers how to undo a step that has just succeeded. */
  add(what: string, undo: () => unknown): void {
    this.#steps.push({ what, undo });
  }

  /** Undoes every registered step, newest first; runs once (later calls wait for the first). */
  run(): Promise<void> {
    this.#ran ??= (async () => {
      for (const step of this.#steps.splice(0).reverse()) {
        try {
          await step.undo();
        } catch (error) {
          this.#log.error({ err: error, step: step.what }, 'could not undo a start-up step');
        }
      }
    })();
    return this.#ran;
  }
}
