// What every command gets: the data directory from the global options, and a client of the running control plane.
import type { Command } from 'commander';
import { resolveDataDir } from '../domain/data-dir.js';
import { ApiClient } from './client.js';

export interface GlobalOptions {
  dataDir?: string;
}

export class CliContext {
  readonly #program: Command;

  constructor(program: Command) {
    this.#program = program;
  }

  get dataDir(): string {
    return resolveDataDir(this.#program.opts<GlobalOptions>().dataDir);
  }

  client(): ApiClient {
    return ApiClient.fromDataDir(this.dataDir);
  }
}
