// `berth logs <app> [-f]`: instances' output and platform events, merged in time order, filtered.
import type { Command } from 'commander';
import { BerthError } from '../../domain/errors.js';
import type { AppLogLine } from '../../domain/metrics-types.js';
import type { CliContext } from '../context.js';
import { printJson, UsageError } from '../output.js';

export function formatLogLine(line: AppLogLine): string {
  const time = new Date(line.t).toISOString().slice(11, 23);
  return `${time} ${line.instance}[${line.source}] ${line.line}\n`;
}

export function registerLogs(program: Command, context: CliContext): void {
  program
    .command('logs')
    .description("show an app's instance output and events, merged in time order")
    .argument('<app>', 'the app')
    .option('-f, --follow', 'keep printing new lines')
    .option('-n, --lines <count>', 'how many of the newest lines to start with', '100')
    .option('-s, --service <name>', 'only this service')
    .option('-i, --instance <id>', 'only this instance')
    .option('--since <when>', 'only lines from this far back (15m, 2h) or since a time (ISO 8601)')
    .option('-g, --grep <text>', 'only lines containing this text')
    .option('--no-events', 'leave out platform events')
    .option('--no-access', "leave out the proxy's access lines (when access logs are on)")
    .option('--json', 'print JSON lines')
    .action(
      async (
        app: string,
        options: {
          follow?: boolean;
          lines: string;
          service?: string;
          instance?: string;
          since?: string;
          grep?: string;
          events: boolean;
          access: boolean;
          json?: boolean;
        },
      ) => {
        const lines = Number(options.lines);
        if (!Number.isInteger(lines) || lines < 1)
          throw new UsageError('--lines: expected a positive whole number');
        const query = new URLSearchParams({ lines: String(lines) });
        for (const key of ['service', 'instance', 'since', 'grep'] as const) {
          const value = options[key];
          if (value !== undefined) query.set(key, value);
        }
        if (!options.events) query.set('events', '0');
        if (!options.access) query.set('access', '0');
        const print = (line: AppLogLine): void => {
          process.stdout.write(options.json ? `${JSON.stringify(line)}\n` : formatLogLine(line));
        };
        const client = context.client();
        const path = `/v1/apps/${encodeURIComponent(app)}/logs`;
        // The server filters Berth's own lines; a cluster's lines are filtered here.
        const keep = (line: AppLogLine): boolean =>
          (options.events || line.source !== 'event') &&
          (options.instance === undefined || line.instance === options.instance) &&
          (options.grep === undefined || line.line.includes(options.grep));
        if (!options.follow) {
          const all = await client.request<AppLogLine[]>('GET', `${path}?${query}`);
          // An app on a Kubernetes target: its pods' output and the cluster's events, merged in.
          const cluster = new URLSearchParams({ lines: String(lines) });
          if (options.service !== undefined) cluster.set('service', options.service);
          const pods = (
            await client
              .request<AppLogLine[]>('GET', `/v1/apps/${encodeURIComponent(app)}/cluster-logs?${cluster}`)
              .catch((error: unknown) => {
                if (error instanceof BerthError && error.code === 'not_found') return [];
                throw error;
              })
          ).filter(keep);
          if (pods.length > 0)
            all.splice(0, all.length, ...[...all, ...pods].sort((a, b) => a.t - b.t).slice(-lines));
          if (options.json) return printJson(all);
          for (const line of all) print(line);
          return;
        }
        query.set('follow', '1');
        const stop = new AbortController();
        process.once('SIGINT', () => stop.abort());
        // An app on a Kubernetes target: its pods' logs as the cluster streams them and its events, beside Berth's.
        const cluster = new URLSearchParams({ lines: String(lines), follow: '1' });
        if (options.service !== undefined) cluster.set('service', options.service);
        const follow = async (streamPath: string, optional: boolean): Promise<void> => {
          try {
            for await (const text of client.stream(streamPath, stop.signal)) {
              if (text === '') continue;
              const line = JSON.parse(text) as AppLogLine;
              if (!optional || keep(line)) print(line);
            }
          } catch (error) {
            if (stop.signal.aborted) return;
            if (optional && error instanceof BerthError && error.code === 'not_found') return;
            stop.abort();
            throw error;
          }
        };
        await Promise.all([
          follow(`${path}?${query}`, false),
          follow(`/v1/apps/${encodeURIComponent(app)}/cluster-logs?${cluster}`, true),
        ]);
      },
    );
}
