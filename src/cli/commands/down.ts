// `berth down <app>` / `berth down --all`: stops instances (the app stays defined; `apply` brings it back).
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { printJson, UsageError } from '../output.js';

export function registerDown(program: Command, context: CliContext): void {
  program
    .command('down')
    .description("stop an app's instances, or with --all every app's")
    .argument('[app]', 'the app')
    .option('--all', 'every app')
    .option('--json', 'print as JSON')
    .action(async (app: string | undefined, options: { all?: boolean; json?: boolean }) => {
      if ((app === undefined) === !options.all) throw new UsageError('name an app, or pass --all (not both)');
      const client = context.client();
      const statuses = options.all ? await client.downAll() : [await client.down(app!)];
      if (options.json) return printJson(statuses);
      for (const status of statuses) process.stdout.write(`${status.app}: stopping all instances\n`);
    });
}
