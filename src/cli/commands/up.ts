// `berth up`: runs the control plane in the foreground; stopping it leaves the instances running.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { UsageError } from '../output.js';

const CONTROL_PLANE = fileURLToPath(new URL('../../main/control-plane.js', import.meta.url));

export function registerUp(program: Command, context: CliContext): void {
  program
    .command('up')
    .description('run the control plane in the foreground (Ctrl-C stops Berth, not the apps)')
    .option('--port <port>', 'port of the REST API on 127.0.0.1', '7070')
    .option('--metrics-port <port>', 'also serve Prometheus /metrics without a token on 127.0.0.1:<port>')
    .option('--metrics-interval <duration>', 'how often to collect metrics (default 5s)')
    .option('--access-log', "have the proxy log every request; shown in each app's `berth logs`")
    .action(
      async (options: {
        port: string;
        metricsPort?: string;
        metricsInterval?: string;
        accessLog?: boolean;
      }) => {
        if (!/^\d+$/.test(options.port))
          throw new UsageError(`--port: expected a port number, got ${options.port}`);
        if (options.metricsPort !== undefined && !/^\d+$/.test(options.metricsPort))
          throw new UsageError(`--metrics-port: expected a port number, got ${options.metricsPort}`);
        const extra = [
          ...(options.metricsPort === undefined ? [] : ['--metrics-port', options.metricsPort]),
          ...(options.metricsInterval === undefined ? [] : ['--metrics-interval', options.metricsInterval]),
          ...(options.accessLog ? ['--access-log'] : []),
        ];
        const child = spawn(
          process.execPath,
          [CONTROL_PLANE, '--data-dir', context.dataDir, '--port', options.port, ...extra],
          {
            stdio: 'inherit',
          },
        );
        const forward = (signal: NodeJS.Signals): void => {
          child.kill(signal);
        };
        process.on('SIGINT', forward);
        process.on('SIGTERM', forward);
        const code = await new Promise<number>((resolve) =>
          child.on('exit', (exitCode) => resolve(exitCode ?? 1)),
        );
        process.exitCode = code;
      },
    );
}
