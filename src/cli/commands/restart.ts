// `berth restart APP SERVICE`: fresh instances of the same release, rolling (replacements healthy before old drain).
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { printJson } from '../output.js';

export function registerRestart(program: Command, context: CliContext): void {
  program
    .command('restart')
    .description(
      'replace every instance of a service with a fresh one, rolling, e.g. `berth restart shop web`',
    )
    .argument('<app>', 'the app')
    .argument('<service>', 'the service')
    .option('--json', 'print as JSON')
    .action(async (app: string, service: string, options: { json?: boolean }) => {
      const status = await context.client().restart(app, service);
      if (options.json) return printJson(status);
      process.stdout.write(
        `${app}/${service}: restarting ${status.outdated} instance${status.outdated === 1 ? '' : 's'} (follow with berth ps ${app} or berth events ${app} -f)\n`,
      );
    });
}
