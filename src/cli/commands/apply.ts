// `berth apply [-f berth.yaml]`: validates the spec, stores it, prints what will change, then what changed.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import type { AppStatus } from '../../domain/api-types.js';
import { BerthError } from '../../domain/errors.js';
import { parseDuration } from '../../lib/duration.js';
import type { ApiClient } from '../client.js';
import type { CliContext } from '../context.js';
import { printJson, UsageError } from '../output.js';

export function registerApply(program: Command, context: CliContext): void {
  program
    .command('apply')
    .description('apply an app spec: validate it, store it, start or stop instances to match')
    .option('-f, --file <path>', 'the app spec', 'berth.yaml')
    .option('--no-wait', 'return once stored, without waiting for the instances')
    .option('--timeout <duration>', 'how long to wait for the app to converge', '2m')
    .option('--json', 'print the result as JSON')
    .action(async (options: { file: string; wait: boolean; timeout: string; json?: boolean }) => {
      const timeoutMs = parseTimeout(options.timeout);
      const path = resolve(options.file);
      if (!existsSync(path)) throw new BerthError('invalid_spec', `${options.file}: no such file`);
      const directory = dirname(path);
      const procfilePath = join(directory, 'Procfile');
      const client = context.client();
      const result = await client.apply({
        file: relative(process.cwd(), path) || path,
        text: readFileSync(path, 'utf8'),
        procfile: existsSync(procfilePath) ? readFileSync(procfilePath, 'utf8') : undefined,
        directory,
      });
      if (!options.json) {
        if (!result.created)
          process.stdout.write(`${result.app}: no changes (v${result.release} is current)\n`);
        else {
          process.stdout.write(`${result.app}: release v${result.release}\n`);
          for (const change of result.changes) process.stdout.write(`  ${change}\n`);
        }
      }
      const status = options.wait
        ? await waitForConvergence(client, result.app, timeoutMs, !options.json)
        : null;
      const events = await client.events({ app: result.app, after: result.eventsAfter, limit: 1000 });
      if (options.json) return printJson({ ...result, status, events });
      const happened = events.filter((e) => e.kind.startsWith('instance.'));
      if (happened.length > 0) {
        process.stdout.write('what changed:\n');
        for (const event of happened) process.stdout.write(`  ${event.message}\n`);
      }
      if (status && !status.converged) {
        process.exitCode = 1;
        process.stdout.write(
          `${result.app} did not converge within ${options.timeout}; see \`berth events\`\n`,
        );
      }
    });
}

function parseTimeout(text: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    throw new UsageError(`--timeout: ${(error as Error).message}`);
  }
}

/** Polls the app until every service runs its desired count of healthy, current instances, or the deadline. */
async function waitForConvergence(
  client: ApiClient,
  app: string,
  timeoutMs: number,
  showProgress: boolean,
): Promise<AppStatus> {
  const deadline = Date.now() + timeoutMs;
  let lastLine = '';
  for (;;) {
    const status = await client.app(app);
    const line = status.services
      .map(
        (s) =>
          `${s.name}: ${s.healthy}/${s.desired} healthy${s.starting ? `, ${s.starting} starting` : ''}${s.outdated ? `, ${s.outdated} old` : ''}${s.draining ? `, ${s.draining} draining` : ''}`,
      )
      .join('  ');
    if (showProgress && line !== lastLine) process.stdout.write(`  ${line}\n`);
    lastLine = line;
    if (status.converged || Date.now() >= deadline) return status;
    await new Promise((r) => setTimeout(r, 100));
  }
}
