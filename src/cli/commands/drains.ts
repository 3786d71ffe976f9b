// `berth drains add|list|remove APP`: forward an app's logs to an HTTPS endpoint or a syslog server.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { DrainView } from '../../domain/metrics-types.js';
import type { CliContext } from '../context.js';
import { formatTime, printJson, printTable } from '../output.js';

export function registerDrains(program: Command, context: CliContext): void {
  const drains = program.command('drains').description("forward an app's logs (HTTPS, syslog RFC 5424)");

  drains
    .command('list')
    .description("list an app's drains with lines sent, queued and dropped")
    .argument('<app>', 'the app')
    .option('--json', 'print as JSON')
    .action(async (app: string, options: { json?: boolean }) => {
      const list = await context
        .client()
        .request<DrainView[]>('GET', `/v1/apps/${encodeURIComponent(app)}/drains`);
      if (options.json) return printJson(list);
      printTable(
        ['id', 'kind', 'url', 'sent', 'queued', 'dropped', 'created', 'last error'],
        list.map((d) => [
          d.id,
          d.kind,
          d.url,
          d.sent,
          d.queued,
          d.dropped,
          formatTime(d.createdAt),
          d.lastError ?? '',
        ]),
      );
    });

  drains
    .command('add')
    .description('add a drain: https://host/path, syslog://host:port or syslog+tls://host:port')
    .argument('<app>', 'the app')
    .argument('<url>', 'where to send the lines')
    .option('--ca <file>', 'trust this CA (PEM) for the TLS certificate of the destination')
    .option('--json', 'print as JSON')
    .action(async (app: string, url: string, options: { ca?: string; json?: boolean }) => {
      const drain = await context
        .client()
        .request<DrainView>('POST', `/v1/apps/${encodeURIComponent(app)}/drains`, {
          url,
          ...(options.ca ? { caFile: resolve(options.ca) } : {}),
        });
      if (options.json) return printJson(drain);
      process.stdout.write(`drain ${drain.id} added (${drain.kind} ${drain.url})\n`);
    });

  drains
    .command('remove')
    .description('remove a drain')
    .argument('<app>', 'the app')
    .argument('<id>', 'drain id (from `berth drains list`)')
    .action(async (app: string, id: string) => {
      await context
        .client()
        .request('DELETE', `/v1/apps/${encodeURIComponent(app)}/drains/${encodeURIComponent(id)}`);
      process.stdout.write(`drain ${id} removed\n`);
    });
}
