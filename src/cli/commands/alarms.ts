// `berth alarms [app]`, `berth alarms set APP NAME ...`, `berth alarms remove APP NAME`: threshold alarms on series.
import type { Command } from 'commander';
import { type ALARM_COMPARISONS, ALARM_METRICS, type AlarmView } from '../../domain/metrics-types.js';
import { parseDuration } from '../../lib/duration.js';
import type { CliContext } from '../context.js';
import { formatTime, printJson, printTable, UsageError } from '../output.js';

function positiveInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag}: expected a positive whole number`);
  return n;
}

export function registerAlarms(program: Command, context: CliContext): void {
  const alarms = program
    .command('alarms')
    .description('show alarms and their states (OK, ALARM, INSUFFICIENT_DATA)')
    .argument('[app]', 'only this app')
    .option('--json', 'print as JSON')
    .action(async (app: string | undefined, options: { json?: boolean }) => {
      const query = app === undefined ? '' : `?app=${encodeURIComponent(app)}`;
      const list = await context.client().request<AlarmView[]>('GET', `/v1/alarms${query}`);
      if (options.json) return printJson(list);
      if (list.length === 0) {
        process.stdout.write(
          'no alarms; add one with `berth alarms set APP NAME --metric p95 --above 500`\n',
        );
        return;
      }
      printTable(
        ['app', 'alarm', 'state', 'since', 'rule', 'reason'],
        list.map((a) => [
          a.app,
          a.name,
          a.state,
          formatTime(a.stateAt),
          `${a.service} ${a.metric} ${a.comparison} ${a.threshold} (${a.datapointsToAlarm}/${a.evaluationPeriods} × ${a.periodMs / 1000}s)`,
          a.reason,
        ]),
      );
    });

  alarms
    .command('set')
    .description('create or replace an alarm')
    .argument('<app>', 'the app')
    .argument('<name>', 'alarm name')
    .requiredOption('--metric <metric>', `one of ${ALARM_METRICS.join(', ')}`)
    .option('--above <value>', 'breach when the value is greater than this')
    .option('--below <value>', 'breach when the value is less than this')
    .option('-s, --service <name>', 'the service', 'web')
    .option('--period <duration>', 'datapoint length: 10s or 1m', '1m')
    .option('--datapoints <m/n>', 'M of the last N datapoints breaching means ALARM', '3/5')
    .option('--webhook <url>', 'POST state changes here')
    .option('--json', 'print as JSON')
    .action(
      async (
        app: string,
        name: string,
        options: {
          metric: string;
          above?: string;
          below?: string;
          service: string;
          period: string;
          datapoints: string;
          webhook?: string;
          json?: boolean;
        },
      ) => {
        if (!(ALARM_METRICS as readonly string[]).includes(options.metric)) {
          throw new UsageError(`--metric: expected one of ${ALARM_METRICS.join(', ')}`);
        }
        if ((options.above === undefined) === (options.below === undefined)) {
          throw new UsageError('give exactly one of --above or --below');
        }
        const threshold = Number(options.above ?? options.below);
        if (!Number.isFinite(threshold)) throw new UsageError('--above/--below: expected a number');
        const [m, n] = options.datapoints.split('/');
        if (m === undefined || n === undefined) throw new UsageError('--datapoints: expected M/N, e.g. 3/5');
        let periodMs: number;
        try {
          periodMs = parseDuration(options.period);
        } catch (error) {
          throw new UsageError(`--period: ${(error as Error).message}`);
        }
        const comparison: (typeof ALARM_COMPARISONS)[number] = options.above !== undefined ? '>' : '<';
        const alarm = await context
          .client()
          .request<AlarmView>(
            'PUT',
            `/v1/apps/${encodeURIComponent(app)}/alarms/${encodeURIComponent(name)}`,
            {
              service: options.service,
              metric: options.metric,
              comparison,
              threshold,
              periodMs,
              datapointsToAlarm: positiveInt('--datapoints', m),
              evaluationPeriods: positiveInt('--datapoints', n),
              ...(options.webhook ? { webhook: options.webhook } : {}),
            },
          );
        if (options.json) return printJson(alarm);
        process.stdout.write(`alarm ${alarm.name} set: ${alarm.state}\n`);
      },
    );

  alarms
    .command('remove')
    .description('delete an alarm')
    .argument('<app>', 'the app')
    .argument('<name>', 'alarm name')
    .action(async (app: string, name: string) => {
      await context
        .client()
        .request('DELETE', `/v1/apps/${encodeURIComponent(app)}/alarms/${encodeURIComponent(name)}`);
      process.stdout.write(`alarm ${name} removed\n`);
    });
}
