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
      /**
       * An app on a Kubernetes target: the cluster's events as they are recorded. The stream's backlog (read after
       * the follower noted what exists) closes any gap since the lines above; those already shown are skipped.
       */
      const followCluster = async (
        name: string,
        shown: readonly AppLogLine[],
        from: number,
      ): Promise<void> => {
        const printed = new Set(shown.map((l) => `${l.t} ${l.line}`));
        const query = new URLSearchParams({ lines: String(limit), output: '0', follow: '1' });
        try {
          for await (const text of client.stream(
            `/v1/apps/${encodeURIComponent(name)}/cluster-logs?${query}`,
          )) {
            if (text === '') continue;
            const l = JSON.parse(text) as AppLogLine;
            if (l.t < from || printed.has(`${l.t} ${l.line}`)) continue;
            process.stdout.write(clusterText(l));
          }
        } catch (error) {
          // An app on this machine has no cluster to follow; any other failure ends the command as Berth's would.
          if (error instanceof BerthError && error.code === 'not_found') return;
          process.stderr.write(`berth: ${(error as Error).message}\n`);
          process.exit(1);
        }
      };
      // An app on a Kubernetes target: the cluster's events about its objects, merged in time order.
      const cluster =
        app === undefined
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
      const clusterText = (l: AppLogLine): string =>
        options.json
          ? `${JSON.stringify(l)}\n`
          : `${formatTime(l.t)}  ${'kubernetes'.padEnd(24)} ${'cluster'.padEnd(10)} ${l.line}\n`;
      const lines = [
        ...events.map((event) => ({
          t: event.at,
          text: options.json ? `${JSON.stringify(event)}\n` : line(event),
        })),
        ...cluster.map((l) => ({ t: l.t, text: clusterText(l) })),
      ].sort((a, b) => a.t - b.t);
      for (const { text } of lines) process.stdout.write(text);
      if (!options.follow) return;
      if (app !== undefined) void followCluster(app, cluster, lines[0]?.t ?? 0);
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
