// `berth secrets …` and `berth config …`: encrypted secrets (values never printed unless revealed) and plain config.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { formatAge, printJson, printTable, UsageError } from '../output.js';

interface SecretInfo {
  name: string;
  version: number;
  previousVersion: number | null;
  updatedAt: number;
  usedBy: string[];
  deletedAt: number | null;
  purgeAt: number | null;
}

interface ConfigVar {
  key: string;
  value: string;
  updatedAt: number;
}

const app = (name: string): string => `/v1/apps/${encodeURIComponent(name)}`;

/** Splits `NAME=VALUE` at the first `=`. */
function splitAssignment(text: string, what: string): [string, string] {
  const at = text.indexOf('=');
  if (at <= 0) throw new UsageError(`expected ${what}=VALUE, got ${JSON.stringify(text.split('=')[0])}`);
  return [text.slice(0, at), text.slice(at + 1)];
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** A passphrase from a file (never from the command line): its first line. */
function readPassphrase(path: string | undefined): string {
  if (!path)
    throw new UsageError(
      '--passphrase-file is required (a passphrase on the command line would be in shell history)',
    );
  return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
}

/** `NAME=VALUE`, `NAME=-` (stdin, one trailing newline dropped) and `--from-file NAME=path` (exact bytes). */
async function collectValues(assignments: string[], files: string[]): Promise<Record<string, string>> {
  const values: Record<string, string> = {};
  const fromStdin = assignments.map((a) => splitAssignment(a, 'NAME')).filter(([, value]) => value === '-');
  if (fromStdin.length > 1) throw new UsageError('only one secret can be read from stdin (NAME=-)');
  for (const assignment of assignments) {
    const [name, value] = splitAssignment(assignment, 'NAME');
    values[name] = value === '-' ? (await readStdin()).replace(/\r?\n$/, '') : value;
  }
  for (const file of files) {
    const [name, path] = splitAssignment(file, 'NAME');
    values[name] = readFileSync(path, 'utf8');
  }
  if (Object.keys(values).length === 0)
    throw new UsageError('give at least one NAME=VALUE, NAME=- or --from-file NAME=path');
  return values;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function registerSecrets(program: Command, context: CliContext): void {
  const secrets = program
    .command('secrets')
    .description('encrypted secrets, given to the services that name them as environment variables');

  secrets
    .command('set')
    .description('set secrets (each a new version); NAME=- reads the value from stdin')
    .argument('<app>', 'the app')
    .argument('[assignments...]', 'NAME=VALUE or NAME=-')
    .option('--from-file <NAME=path>', 'read a value from a file (repeatable)', collect, [])
    .action(async (appName: string, assignments: string[], options: { fromFile: string[] }) => {
      const values = await collectValues(assignments, options.fromFile);
      const written = await context
        .client()
        .request<{ name: string; version: number }[]>('POST', `${app(appName)}/secrets`, { values });
      for (const w of written) process.stdout.write(`${appName}: ${w.name} v${w.version} set\n`);
    });

  secrets
    .command('list')
    .description("an app's secrets: names, versions, which services use them (never values)")
    .argument('<app>', 'the app')
    .option('--json', 'print JSON')
    .action(async (appName: string, options: { json?: boolean }) => {
      const list = await context.client().request<SecretInfo[]>('GET', `${app(appName)}/secrets`);
      if (options.json) return printJson(list);
      const now = Date.now();
      printTable(
        ['name', 'version', 'previous', 'updated', 'used by', 'status'],
        list.map((s) => [
          s.name,
          `v${s.version}`,
          s.previousVersion === null ? '-' : `v${s.previousVersion}`,
          `${formatAge(now - s.updatedAt)} ago`,
          s.usedBy.join(',') || '-',
          s.deletedAt === null ? 'active' : `unset, purged in ${formatAge((s.purgeAt ?? now) - now)}`,
        ]),
      );
    });

  secrets
    .command('get')
    .description('print a secret value (only with --reveal; recorded as an event)')
    .argument('<app>', 'the app')
    .argument('<name>', 'the secret')
    .option('--reveal', 'really print the value')
    .action(async (appName: string, name: string, options: { reveal?: boolean }) => {
      if (!options.reveal)
        throw new UsageError('values are printed only with --reveal, which is recorded as an event');
      const revealed = await context
        .client()
        .request<{ value: string }>('POST', `${app(appName)}/secrets/${encodeURIComponent(name)}/reveal`, {});
      process.stdout.write(`${revealed.value}\n`);
    });

  secrets
    .command('unset')
    .description('remove secrets; restorable for 7 days unless --force')
    .argument('<app>', 'the app')
    .argument('<names...>', 'secret names')
    .option('--force', 'purge now, with no recovery window')
    .action(async (appName: string, names: string[], options: { force?: boolean }) => {
      const client = context.client();
      for (const name of names) {
        await client.request(
          'DELETE',
          `${app(appName)}/secrets/${encodeURIComponent(name)}${options.force ? '?force=1' : ''}`,
        );
        process.stdout.write(
          `${appName}: ${name} ${options.force ? 'purged' : `unset (restore within 7 days: berth secrets restore ${appName} ${name})`}\n`,
        );
      }
    });

  secrets
    .command('restore')
    .description('undo an unset within its recovery window')
    .argument('<app>', 'the app')
    .argument('<name>', 'the secret')
    .action(async (appName: string, name: string) => {
      const info = await context
        .client()
        .request<SecretInfo>('POST', `${app(appName)}/secrets/${encodeURIComponent(name)}/restore`, {});
      process.stdout.write(`${appName}: ${name} restored (v${info.version})\n`);
    });

  secrets
    .command('rollback')
    .description('make the previous version current again')
    .argument('<app>', 'the app')
    .argument('<name>', 'the secret')
    .action(async (appName: string, name: string) => {
      const result = await context
        .client()
        .request<{ version: number; from: number }>(
          'POST',
          `${app(appName)}/secrets/${encodeURIComponent(name)}/rollback`,
          {},
        );
      process.stdout.write(`${appName}: ${name} current v${result.from} → v${result.version}\n`);
    });

  secrets
    .command('rotate-master-key')
    .description('generate a new master key and re-seal every data key with it (values are not touched)')
    .action(async () => {
      const result = await context
        .client()
        .request<{ resealed: number }>('POST', '/v1/secrets/rotate-master-key', {});
      process.stdout.write(
        `master key rotated: ${result.resealed} data keys re-sealed; back up ${context.dataDir}/master.key again\n`,
      );
    });

  secrets
    .command('export')
    .description("write an app's secrets and config as a bundle encrypted to a passphrase (to stdout)")
    .argument('<app>', 'the app')
    .option('--passphrase-file <path>', 'file holding the passphrase')
    .action(async (appName: string, options: { passphraseFile?: string }) => {
      const passphrase = readPassphrase(options.passphraseFile);
      const bundle = await context.client().request('POST', `${app(appName)}/secrets/export`, { passphrase });
      process.stdout.write(`${JSON.stringify(bundle)}\n`);
    });

  secrets
    .command('import')
    .description(
      'set the secrets and config of a bundle made by `berth secrets export` (from a file or stdin)',
    )
    .argument('<app>', 'the app to import into')
    .argument('[bundle]', 'bundle file (default: stdin)')
    .option('--passphrase-file <path>', 'file holding the passphrase')
    .action(async (appName: string, file: string | undefined, options: { passphraseFile?: string }) => {
      const passphrase = readPassphrase(options.passphraseFile);
      const text = file ? readFileSync(file, 'utf8') : await readStdin();
      let bundle: unknown;
      try {
        bundle = JSON.parse(text);
      } catch {
        throw new UsageError('the bundle is not JSON; give a file made by `berth secrets export`');
      }
      const result = await context
        .client()
        .request<{ secrets: string[]; config: string[] }>('POST', `${app(appName)}/secrets/import`, {
          bundle,
          passphrase,
        });
      process.stdout.write(
        `${appName}: imported ${result.secrets.length} secrets (${result.secrets.join(', ') || 'none'}) and ${result.config.length} config vars\n`,
      );
    });

  const config = program
    .command('config')
    .description('plain (non-secret) config vars, given to every service of an app');

  config
    .command('set')
    .description('set config vars')
    .argument('<app>', 'the app')
    .argument('<assignments...>', 'KEY=VALUE')
    .action(async (appName: string, assignments: string[]) => {
      const values = Object.fromEntries(assignments.map((a) => splitAssignment(a, 'KEY')));
      const vars = await context.client().request<ConfigVar[]>('POST', `${app(appName)}/config`, { values });
      printConfig(vars);
    });

  config
    .command('list')
    .description("an app's config vars, in plain text")
    .argument('<app>', 'the app')
    .option('--json', 'print JSON')
    .action(async (appName: string, options: { json?: boolean }) => {
      const vars = await context.client().request<ConfigVar[]>('GET', `${app(appName)}/config`);
      if (options.json) return printJson(vars);
      printConfig(vars);
    });

  config
    .command('unset')
    .description('remove config vars')
    .argument('<app>', 'the app')
    .argument('<keys...>', 'KEY')
    .action(async (appName: string, keys: string[]) => {
      printConfig(
        await context.client().request<ConfigVar[]>('POST', `${app(appName)}/config/unset`, { keys }),
      );
    });
}

function printConfig(vars: ConfigVar[]): void {
  for (const v of vars) process.stdout.write(`${v.key}=${v.value}\n`);
}
