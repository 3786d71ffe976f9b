// The `berth` command line: a thin client of the control plane's REST API.
import { Command, CommanderError } from 'commander';
import { VERSION } from '../domain/version.js';
import { registerAddons } from './commands/addons.js';
import { registerAlarms } from './commands/alarms.js';
import { registerAutoscale } from './commands/autoscale.js';
import { registerBackup } from './commands/backup.js';
import { registerCa } from './commands/ca.js';
import { registerDeploy } from './commands/deploy.js';
import { registerDown } from './commands/down.js';
import { registerDrains } from './commands/drains.js';
import { registerEvents } from './commands/events.js';
import { registerInstall } from './commands/install.js';
import { registerLogs } from './commands/logs.js';
import { registerMetrics } from './commands/metrics.js';
import { registerPipeline } from './commands/pipeline.js';
import { registerProxy } from './commands/proxy.js';
import { registerPs } from './commands/ps.js';
import { registerScale } from './commands/scale.js';
import { registerSecrets } from './commands/secrets.js';
import { registerTop } from './commands/top.js';
import { registerUp } from './commands/up.js';
import { CliContext } from './context.js';
import { EXIT_USAGE, printError } from './output.js';

export function buildProgram(): Command {
  const program = new Command('berth')
    .description('Berth: run your apps behind a health-checked load balancer with zero-downtime deploys')
    .version(VERSION, '-V, --version', 'print the version of Berth')
    .option('--data-dir <dir>', 'data directory (default: $BERTH_HOME or ~/.berth)')
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      // commander puts its suggestion on a line of its own: keep the error to one line.
      outputError: (text, write) => write(text.replace(/\n\(Did you mean (.+)\?\)/, ' (did you mean $1?)')),
    });
  const context = new CliContext(program);
  registerUp(program, context);
  registerDeploy(program, context);
  registerPs(program, context);
  registerScale(program, context);
  registerAutoscale(program, context);
  registerSecrets(program, context);
  registerAddons(program, context);
  registerEvents(program, context);
  registerLogs(program, context);
  registerMetrics(program, context);
  registerTop(program, context);
  registerAlarms(program, context);
  registerDrains(program, context);
  registerPipeline(program, context);
  registerDown(program, context);
  registerProxy(program, context);
  registerCa(program, context);
  registerBackup(program, context);
  registerInstall(program, context);
  // A mistake gets one line and where to look, not the whole help.
  program.showHelpAfterError('(run `berth --help` for the commands)');
  for (const command of program.commands) hintAfterErrors(command, `berth ${command.name()}`);
  return program;
}

function hintAfterErrors(command: Command, path: string): void {
  command.showHelpAfterError(`(run \`${path} --help\` for its usage)`);
  for (const sub of command.commands) hintAfterErrors(sub, `${path} ${sub.name()}`);
}

/**
 * `berth addons create APP redis --version 7`: commander gives the program's own `--version` precedence wherever
 * it appears, so after `addons create` it is renamed to the subcommand's `--server-version` before parsing.
 */
export function addonVersionArgs(argv: readonly string[]): string[] {
  const addons = argv.indexOf('addons');
  const create = addons < 0 ? -1 : argv.indexOf('create', addons + 1);
  if (create < 0) return [...argv];
  return argv.map((arg, i) =>
    i > create && (arg === '--version' || arg.startsWith('--version='))
      ? arg.replace('--version', '--server-version')
      : arg,
  );
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(addonVersionArgs(argv));
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version print and exit 0; every other commander error is a usage error.
      return error.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    return printError(error);
  }
}

// `berth ps | head -3`: the reader went away; that is the end of the output, not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
