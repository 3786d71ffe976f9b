// `berth ps [app]`: instances with state, pid, port, cpu, memory and uptime.
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { formatAge, formatBytes, printJson, printTable } from '../output.js';

export function registerPs(program: Command, context: CliContext): void {
  program
    .command('ps')
    .description('list instances')
    .argument('[app]', 'only this app')
    .option('-a, --all', 'include stopped and crashed instances')
    .option('--json', 'print as JSON')
    .action(async (app: string | undefined, options: { all?: boolean; json?: boolean }) => {
      const instances = await context.client().instances({ app, all: options.all });
      if (options.json) return printJson(instances);
      const now = Date.now();
      printTable(
        ['instance', 'state', 'release', 'pid', 'port', 'cpu', 'mem', 'uptime'],
        instances.map((i) => [
          i.id,
          i.state,
          `v${i.release}`,
          i.pid ?? '-',
          i.port ?? '-',
          i.usage ? `${i.usage.cpuPercent.toFixed(1)}%` : '-',
          i.usage ? formatBytes(i.usage.memoryBytes) : '-',
          i.endedAt === null ? formatAge(now - i.createdAt) : `ended ${formatAge(now - i.endedAt)} ago`,
        ]),
      );
    });
}
