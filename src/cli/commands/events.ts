// `berth events [app]`: the record of every state change, oldest first.
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { formatTime, printJson, UsageError } from '../output.js';

export function registerEvents(program: Command, context: CliContext): void {
  program
    .command('events')
    .description('show events (state changes, who did what)')
    .argument('[app]', 'only this app')
    .option('-n, --limit <count>', 'how many of the newest events', '50')
    .option('--json', 'print as JSON')
    .action(async (app: string | undefined, options: { limit: string; json?: boolean }) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1)
        throw new UsageError(`--limit: expected a positive whole number`);
      const events = await context.client().events({ app, limit });
      if (options.json) return printJson(events);
      for (const event of events) {
        process.stdout.write(
          `${formatTime(event.at)}  ${event.kind.padEnd(24)} ${event.actor.padEnd(10)} ${event.message}\n`,
        );
      }
    });
}
