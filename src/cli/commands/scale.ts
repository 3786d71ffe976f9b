// `berth scale [app] web=3 worker=1`: sets desired counts.
import type { Command } from 'commander';
import type { ServiceAutoscaleStatus } from '../../domain/autoscale-types.js';
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

/** What a hand-set count means for a service with an autoscaling policy: whether the autoscaler will move it. */
export function autoscaleNotes(
  app: string,
  counts: Record<string, number>,
  policies: readonly ServiceAutoscaleStatus[],
): string[] {
  const notes: string[] = [];
  for (const [name, count] of Object.entries(counts)) {
    const status = policies.find((p) => p.service === name);
    if (!status) continue;
    const { min, max } = status.policy;
    if (count === 0) {
      notes.push(
        `note: ${name} is autoscaled; at 0 the autoscaler leaves it alone until the next apply or scale`,
      );
    } else if (count < min || count > max) {
      const to = Math.min(max, Math.max(min, count));
      notes.push(
        `note: ${name} is autoscaled (min ${min}, max ${max}): the autoscaler will set it back to ${to}`,
      );
    } else {
      notes.push(
        `note: ${name} is autoscaled (min ${min}, max ${max}): the autoscaler will change ${count} when its metrics ask (berth autoscale status ${app})`,
      );
    }
  }
  return notes;
}

export function registerScale(program: Command, context: CliContext): void {
  program
    .command('scale')
    .description('set how many instances of each service run, e.g. `berth scale shop web=3`')
    .argument('<app>', 'the app')
    .argument('<counts...>', 'SERVICE=COUNT pairs')
    .option('--json', 'print as JSON')
    .action(async (app: string, args: string[], options: { json?: boolean }) => {
      const counts = parseScaleArgs(args);
      const client = context.client();
      const services = await client.scale(app, counts);
      if (options.json) return printJson(services);
      printTable(
        ['service', 'desired', 'healthy', 'starting'],
        services.map((s) => [s.name, s.desired, s.healthy, s.starting]),
      );
      const policies = await client
        .request<ServiceAutoscaleStatus[]>('GET', `/v1/apps/${encodeURIComponent(app)}/autoscale`)
        .catch(() => []);
      for (const note of autoscaleNotes(app, counts, policies)) process.stdout.write(`${note}\n`);
    });
}
