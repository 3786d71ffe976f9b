// `berth traffic APP [web=10 heroku=90] [--ramp web 10,25,50,100 --interval 10m] [--abort]`: the split between an
// app's services and its external origins, and ramps judged by the canary analysis.
import type { Command } from 'commander';
import type { TrafficStatus } from '../../domain/traffic.js';
import { formatDuration, parseDuration } from '../../lib/duration.js';
import type { CliContext } from '../context.js';
import { printJson, printTable, UsageError } from '../output.js';

/** Parses `web=10 heroku=90`; anything else is a usage error naming the argument. */
export function parseTrafficArgs(args: string[]): Record<string, number> {
  const weights: Record<string, number> = {};
  for (const arg of args) {
    const match = /^([a-z][a-z0-9-]*)=(\d{1,4})$/.exec(arg);
    if (!match) throw new UsageError(`${arg}: expected NAME=WEIGHT, e.g. web=10 heroku=90`);
    if (Object.hasOwn(weights, match[1]!)) throw new UsageError(`${arg}: ${match[1]} is named twice`);
    weights[match[1]!] = Number(match[2]);
  }
  return weights;
}

/** Parses `10,25,50,100`. */
export function parseSteps(text: string): number[] {
  const steps = text.split(',').map((s) => (/^\d{1,3}$/.test(s.trim()) ? Number(s) : Number.NaN));
  if (steps.some((s) => Number.isNaN(s)))
    throw new UsageError(`${text}: expected percentages separated by commas, e.g. 10,25,50,100`);
  return steps;
}

function printStatus(status: TrafficStatus): void {
  printTable(
    ['side', 'kind', 'share', 'health', 'requests', '5xx', '502-504', 'p99'],
    status.sides.map((side) => [
      side.name,
      side.kind === 'origin' ? `origin ${side.url}` : 'service',
      `${side.percent}%`,
      side.targets.length === 0
        ? '-'
        : side.kind === 'origin'
          ? side.targets.map((t) => t.health).join(',')
          : `${side.targets.filter((t) => t.health === 'healthy').length}/${side.targets.length} healthy`,
      side.requests,
      side.errors5xx,
      side.gateway,
      side.requests === 0 ? '-' : `${Number(side.p99Ms.toFixed(1))}ms`,
    ]),
  );
  const ramp = status.split?.ramp;
  if (ramp) {
    const share = ramp.steps[ramp.step] ?? 100;
    const where =
      ramp.state === 'running'
        ? `step ${ramp.step + 1}/${ramp.steps.length} at ${share}%, ${formatDuration(ramp.intervalMs)} a step${ramp.windowStartedAt === null ? ', waiting for a healthy target' : ''}`
        : ramp.state;
    process.stdout.write(`ramp of ${ramp.service} (${ramp.steps.join(', ')} %): ${where}\n`);
    if (ramp.last)
      process.stdout.write(
        `last analysis: ${ramp.last.verdict} at ${ramp.last.weight}%: ${ramp.last.reasons.join('; ')}\n`,
      );
  }
  for (const warning of status.warnings) process.stdout.write(`warning: ${warning}\n`);
}

export function registerTraffic(program: Command, context: CliContext): void {
  program
    .command('traffic')
    .description(
      'split an app between its services and external origins: `berth traffic shop web=10 heroku=90`; show it: `berth traffic shop`; ramp: `berth traffic shop --ramp web 10,25,50,100 --interval 10m`',
    )
    .argument('<app>', 'the app')
    .argument(
      '[weights...]',
      'NAME=WEIGHT pairs (services and origins); with --ramp, the steps: 10,25,50,100',
    )
    .option('--ramp <service>', 'ramp this service up through the steps, judged by its canary analysis')
    .option(
      '--interval <duration>',
      'with --ramp: how long each step runs before the analysis decides',
      '10m',
    )
    .option('--abort', 'stop the running ramp: every request back to the origins')
    .option('--json', 'print as JSON')
    .action(
      async (
        app: string,
        args: string[],
        options: { ramp?: string; interval: string; abort?: boolean; json?: boolean },
      ) => {
        const client = context.client();
        const path = `/v1/apps/${encodeURIComponent(app)}/traffic`;
        let status: TrafficStatus;
        if (options.abort) {
          if (args.length > 0 || options.ramp) throw new UsageError('--abort takes no weights and no --ramp');
          status = await client.request<TrafficStatus>('POST', `${path}/abort`, {});
        } else if (options.ramp !== undefined) {
          if (args.length !== 1)
            throw new UsageError('--ramp SERVICE takes the steps next, e.g. --ramp web 10,25,50,100');
          let intervalMs: number;
          try {
            intervalMs = parseDuration(options.interval);
          } catch {
            throw new UsageError(
              `--interval ${options.interval}: expected a duration such as 30s, 10m or 1h`,
            );
          }
          status = await client.request<TrafficStatus>('POST', `${path}/ramp`, {
            service: options.ramp,
            steps: parseSteps(args[0]!),
            intervalMs,
          });
        } else if (args.length > 0) {
          status = await client.request<TrafficStatus>('PUT', path, { weights: parseTrafficArgs(args) });
        } else {
          status = await client.request<TrafficStatus>('GET', path);
        }
        if (options.json) return printJson(status);
        printStatus(status);
      },
    );
}
