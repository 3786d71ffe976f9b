// `berth events [app] [-f]`: the record of every state change, oldest first; `-f` keeps printing new ones.
import type { Command } from 'commander';
import type { BerthEvent } from '../../domain/event.js';
import type { CliContext } from '../context.js';
import { formatTime, printJson, UsageError } from '../output.js';

/** How long one long-poll waits on the server before asking again. */
const WAIT_MS = 25_000;

export function registerEvents(program: Command, context: CliContext): void {
  program
    .command('events')
    .description('show events (state changes, who did what)')
    .argument('[app]', 'only this app')
    .option('-n, --limit <count>', 'how many of the newest events', '50')
    .option('-f, --follow', 'keep printing new events as they happen')
    .option('--json', 'print as JSON (JSON lines with --follow)')
    .action(async (app: string | undefined, options: { limit: string; follow?: boolean; json?: boolean }) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1)
        throw new UsageError(`--limit: expected a positive whole number`);
      const client = context.client();
      const events = await client.events({ app, limit });
      const print = (event: BerthEvent): void => {
        process.stdout.write(
          options.json
            ? `${JSON.stringify(event)}\n`
            : `${formatTime(event.at)}  ${event.kind.padEnd(24)} ${event.actor.padEnd(10)} ${event.message}\n`,
        );
      };
      if (options.json && !options.follow) return printJson(events);
      for (const event of events) print(event);
      if (!options.follow) return;
      let after = events[events.length - 1]?.id ?? 0;
      if (after === 0) after = (await client.events({ limit: 1 }))[0]?.id ?? 0;
      let stopped = false;
      process.once('SIGINT', () => {
        stopped = true;
        process.exit(0);
      });
      while (!stopped) {
        const query = new URLSearchParams({ after: String(after), wait: String(WAIT_MS), limit: '10000' });
        if (app) query.set('app', app);
        const fresh = await client.request<BerthEvent[]>('GET', `/v1/events?${query}`);
        for (const event of fresh) print(event);
        after = fresh[fresh.length - 1]?.id ?? after;
      }
    });
}
