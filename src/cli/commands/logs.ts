// `berth logs <app> [-f]`: the instances' output, prefixed with the instance it came from.
import type { Command } from 'commander';
import type { LogLine } from '../../domain/api-types.js';
import type { CliContext } from '../context.js';
import { printJson, UsageError } from '../output.js';

export function registerLogs(program: Command, context: CliContext): void {
  program
    .command('logs')
    .description("show an app's instance output")
    .argument('<app>', 'the app')
    .option('-f, --follow', 'keep printing new lines')
    .option('-n, --lines <count>', 'lines per instance stream to start with', '100')
    .option('-s, --service <name>', 'only this service')
    .option('-i, --instance <id>', 'only this instance')
    .option('--json', 'print JSON lines')
    .action(
      async (
        app: string,
        options: { follow?: boolean; lines: string; service?: string; instance?: string; json?: boolean },
      ) => {
        const lines = Number(options.lines);
        if (!Number.isInteger(lines) || lines < 1)
          throw new UsageError('--lines: expected a positive whole number');
        const query = { lines, service: options.service, instance: options.instance };
        const print = (line: LogLine): void => {
          process.stdout.write(
            options.json ? `${JSON.stringify(line)}\n` : `${line.instance}[${line.stream}] ${line.line}\n`,
          );
        };
        const client = context.client();
        if (!options.follow) {
          const all = await client.logs(app, query);
          if (options.json) return printJson(all);
          for (const line of all) print(line);
          return;
        }
        const stop = new AbortController();
        process.once('SIGINT', () => stop.abort());
        try {
          for await (const text of client.followLogs(app, query, stop.signal))
            print(JSON.parse(text) as LogLine);
        } catch (error) {
          if (!stop.signal.aborted) throw error;
        }
      },
    );
}
