// `berth scale [app] web=3 worker=1`: sets desired counts.
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { printJson, printTable, UsageError } from '../output.js';

/** Parses `web=3` pairs; anything else is a usage error naming the argument. */
export function parseScaleArgs(args: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const arg of args) {
    const match = /^([a-z][a-z0-9-]*)=(\d{1,3})$/.exec(arg);
    if (!match) throw new UsageError(`${arg}: expected SERVICE=COUNT, e.g. web=3`);
    const count = Number(match[2]);
    if (count > 100) throw new UsageError(`${arg}: count must be from 0 to 100`);
    counts[match[1]!] = count;
  }
  if (args.length === 0) throw new UsageError('expected at least one SERVICE=COUNT, e.g. web=3');
  return counts;
}

export function registerScale(program: Command, context: CliContext): void {
  program
    .command('scale')
    .description('set how many instances of each service run, e.g. `berth scale shop web=3`')
    .argument('<app>', 'the app')
    .argument('<counts...>', 'SERVICE=COUNT pairs')
    .option('--json', 'print as JSON')
    .action(async (app: string, args: string[], options: { json?: boolean }) => {
      const services = await context.client().scale(app, parseScaleArgs(args));
      if (options.json) return printJson(services);
      printTable(
        ['service', 'desired', 'healthy', 'starting'],
        services.map((s) => [s.name, s.desired, s.healthy, s.starting]),
      );
    });
}
