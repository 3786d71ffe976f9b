// The `berth` command line: a thin client of the control plane's REST API.
import { Command, CommanderError } from 'commander';
import { VERSION } from '../domain/version.js';
import { CliContext } from './context.js';
import { EXIT_USAGE, printError } from './output.js';

type Register = (program: Command, context: CliContext) => void;

/**
 * Each module of `commands/` and the top-level commands it registers, in the order `berth --help` lists them.
 * Only the module of the command being run is loaded: loading every module (and what they import) took longer than
 * most commands' own work.
 */
const COMMANDS: [load: () => Promise<Register>, names: readonly string[]][] = [
  [async () => (await import('./commands/up.js')).registerUp, ['up', 'stop']],
  [
    async () => (await import('./commands/deploy.js')).registerDeploy,
    ['deploy', 'apply', 'rollback', 'releases'],
  ],
  [async () => (await import('./commands/targets.js')).registerTargets, ['targets', 'export']],
  [async () => (await import('./commands/ps.js')).registerPs, ['ps']],
  [async () => (await import('./commands/scale.js')).registerScale, ['scale']],
  [async () => (await import('./commands/restart.js')).registerRestart, ['restart']],
  [async () => (await import('./commands/traffic.js')).registerTraffic, ['traffic']],
  [async () => (await import('./commands/autoscale.js')).registerAutoscale, ['autoscale']],
  [async () => (await import('./commands/secrets.js')).registerSecrets, ['secrets', 'config']],
  [async () => (await import('./commands/addons.js')).registerAddons, ['addons']],
  [async () => (await import('./commands/events.js')).registerEvents, ['events']],
  [async () => (await import('./commands/logs.js')).registerLogs, ['logs']],
  [async () => (await import('./commands/metrics.js')).registerMetrics, ['metrics']],
  [async () => (await import('./commands/top.js')).registerTop, ['top']],
  [async () => (await import('./commands/alarms.js')).registerAlarms, ['alarms']],
  [async () => (await import('./commands/drains.js')).registerDrains, ['drains']],
  [
    async () => (await import('./commands/pipeline.js')).registerPipeline,
    ['pipeline', 'git-remote', 'import'],
  ],
  [async () => (await import('./commands/down.js')).registerDown, ['down']],
  [async () => (await import('./commands/proxy.js')).registerProxy, ['proxy']],
  [async () => (await import('./commands/domains.js')).registerDomains, ['domains']],
  [async () => (await import('./commands/ca.js')).registerCa, ['ca']],
  [async () => (await import('./commands/backup.js')).registerBackup, ['backup', 'restore']],
  [async () => (await import('./commands/install.js')).registerInstall, ['install']],
];

/** The command `args` (argv without node and the script) run: the first word that is not a global option. */
export function commandName(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--data-dir') i++;
    else if (!arg.startsWith('-')) return arg;
  }
  return undefined;
}

/**
 * The program for `args`: the command they name registered, or every command when they name none or an unknown
 * one (help, and commander's suggestion of the closest name, need them all).
 */
export async function buildProgram(args: readonly string[] = process.argv.slice(2)): Promise<Command> {
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
  const name = commandName(args);
  const named = COMMANDS.filter(([, names]) => name !== undefined && names.includes(name));
  for (const [load] of named.length > 0 ? named : COMMANDS) (await load())(program, context);
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
    const args = addonVersionArgs(argv);
    await (await buildProgram(args.slice(2))).parseAsync(args);
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
