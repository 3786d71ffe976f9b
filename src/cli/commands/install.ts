// `berth install systemd`: writes the unit files of a production install (proxy and control plane as two units).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { CONTROL_UNIT, PROXY_UNIT, renderUnits } from '../../domain/systemd-units.js';
import type { CliContext } from '../context.js';
import { UsageError } from '../output.js';

/** The directory holding `dist/`: this file is `dist/src/cli/commands/install.js`. */
const INSTALL_DIR = fileURLToPath(new URL('../../../../', import.meta.url)).replace(/\/$/, '');

interface InstallOptions {
  output: string;
  user?: string;
  httpPort: string;
  httpsPort: string;
  apiPort: string;
  listen?: string;
  node: string;
}

function port(flag: string, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535)
    throw new UsageError(`--${flag}: expected a port number from 1 to 65535, got ${value}`);
  return Number(value);
}

export function registerInstall(program: Command, context: CliContext): void {
  const install = program.command('install').description('set Berth up to run as a service');
  install
    .command('systemd')
    .description(
      `write ${PROXY_UNIT} and ${CONTROL_UNIT} (the proxy keeps serving while the control plane restarts)`,
    )
    .option('--output <dir>', 'where to write the unit files', '/etc/systemd/system')
    .option('--user <name>', 'run as this user (it must exist and own the data directory); default root')
    .option('--http-port <port>', 'HTTP port of the proxy', process.env.BERTH_HTTP_PORT ?? '80')
    .option('--https-port <port>', 'HTTPS port of the proxy', process.env.BERTH_HTTPS_PORT ?? '443')
    .option('--api-port <port>', 'port of the REST API on 127.0.0.1', process.env.BERTH_API_PORT ?? '7070')
    .option(
      '--listen <address>',
      "address of the proxy's listeners (default: every address)",
      process.env.BERTH_LISTEN,
    )
    .option('--node <path>', 'the node binary the units run', process.execPath)
    .action((options: InstallOptions) => {
      const dataDir = context.dataDir;
      if (!isAbsolute(options.node))
        throw new UsageError(`--node: expected an absolute path, got ${options.node}`);
      if (options.user !== undefined && !/^[a-z_][a-z0-9_-]*\$?$/.test(options.user))
        throw new UsageError(`--user: not a user name: ${options.user}`);
      const units = renderUnits({
        node: options.node,
        installDir: INSTALL_DIR,
        dataDir,
        ...(options.user === undefined ? {} : { user: options.user }),
        httpPort: port('http-port', options.httpPort),
        httpsPort: port('https-port', options.httpsPort),
        apiPort: port('api-port', options.apiPort),
        ...(options.listen === undefined ? {} : { listen: options.listen }),
      });
      const output = resolve(options.output);
      if (!existsSync(output)) mkdirSync(output, { recursive: true });
      for (const unit of units) {
        writeFileSync(join(output, unit.name), unit.text, { mode: 0o644 });
        process.stdout.write(`wrote ${join(output, unit.name)}\n`);
      }
      const owner = options.user ?? 'root';
      process.stdout.write(
        [
          '',
          'next:',
          ...(options.user === undefined
            ? []
            : [`  id ${owner} || useradd --system --home-dir ${dataDir} --shell /usr/sbin/nologin ${owner}`]),
          `  install -d -m 0700 -o ${owner} -g ${owner} ${dataDir}`,
          '  systemctl daemon-reload',
          `  systemctl enable --now ${PROXY_UNIT} ${CONTROL_UNIT}`,
          `  berth --data-dir ${dataDir} ps          # as ${owner}: the CLI reads the admin token in the data directory`,
          '',
        ].join('\n'),
      );
    });
}
