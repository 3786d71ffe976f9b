// `berth ps [app]`: instances with state, pid, port, cpu, memory and uptime.
import type { Command } from 'commander';
import type { PodView } from '../../domain/api-types.js';
import { BerthError } from '../../domain/errors.js';
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
      // An app on a Kubernetes target: its pods are its instances.
      const pods =
        app === undefined
          ? undefined
          : await context
              .client()
              .request<PodView[]>('GET', `/v1/apps/${encodeURIComponent(app)}/pods`)
              .catch((error: unknown) => {
                if (error instanceof BerthError && error.code === 'not_found') return undefined;
                throw error;
              });
      if (pods !== undefined) {
        if (options.json) return printJson(pods);
        const now = Date.now();
        printTable(
          ['pod', 'service', 'state', 'release', 'restarts', 'uptime'],
          pods.map((p) => [
            p.name,
            p.service,
            p.ready ? 'ready' : p.phase.toLowerCase(),
            p.release,
            p.restarts,
            p.startedAt === null ? '-' : formatAge(now - p.startedAt),
          ]),
        );
        return;
      }
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
