// The `berth` command line: a thin client of the control plane's REST API.
import { Command, CommanderError } from 'commander';
import { registerAlarms } from './commands/alarms.js';
import { registerAutoscale } from './commands/autoscale.js';
import { registerCa } from './commands/ca.js';
import { registerDeploy } from './commands/deploy.js';
import { registerDown } from './commands/down.js';
import { registerDrains } from './commands/drains.js';
import { registerEvents } from './commands/events.js';
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
    .option('--data-dir <dir>', 'data directory (default: $BERTH_HOME or ~/.berth)')
    .exitOverride()
    .showHelpAfterError();
  const context = new CliContext(program);
  registerUp(program, context);
  registerDeploy(program, context);
  registerPs(program, context);
  registerScale(program, context);
  registerAutoscale(program, context);
  registerSecrets(program, context);
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
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version print and exit 0; every other commander error is a usage error.
      return error.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    return printError(error);
  }
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
