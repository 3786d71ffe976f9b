// `berth events [app] [-f]`: the record of every state change, oldest first; `-f` keeps printing new ones.
import type { Command } from 'commander';
import { BerthError } from '../../domain/errors.js';
import type { BerthEvent } from '../../domain/event.js';
import type { AppLogLine } from '../../domain/metrics-types.js';
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
      const line = (event: BerthEvent): string =>
        `${formatTime(event.at)}  ${event.kind.padEnd(24)} ${event.actor.padEnd(10)} ${event.message}\n`;
      const print = (event: BerthEvent): void => {
        process.stdout.write(options.json ? `${JSON.stringify(event)}\n` : line(event));
      };
      if (options.json && !options.follow) return printJson(events);
      // An app on a Kubernetes target: the cluster's events about its objects, merged in time order.
      const cluster =
        app === undefined || options.follow
          ? []
          : await client
              .request<AppLogLine[]>(
                'GET',
                `/v1/apps/${encodeURIComponent(app)}/cluster-logs?${new URLSearchParams({ lines: String(limit), output: '0' })}`,
              )
              .catch((error: unknown) => {
                if (error instanceof BerthError && error.code === 'not_found') return [];
                throw error;
              });
      const lines = [
        ...events.map((event) => ({ t: event.at, text: line(event) })),
        ...cluster.map((l) => ({
          t: l.t,
          text: `${formatTime(l.t)}  ${'kubernetes'.padEnd(24)} ${'cluster'.padEnd(10)} ${l.line}\n`,
        })),
      ].sort((a, b) => a.t - b.t);
      for (const { text } of lines) process.stdout.write(text);
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
