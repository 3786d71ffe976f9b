// `berth addons …`: managed Redis and PostgreSQL per app: create, list, info, destroy, rotate, backups, restore.
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import type { AddonBackupView, AddonView } from '../../domain/addon.js';
import { formatDuration } from '../../lib/duration.js';
import type { CliContext } from '../context.js';
import { formatAge, formatBytes, formatTime, printJson, printTable, UsageError } from '../output.js';

type AddonInfo = AddonView & { logTail: string[]; waitingInstances: number };

const path = (app: string, name?: string): string =>
  `/v1/apps/${encodeURIComponent(app)}/addons${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;

function stateOf(addon: AddonView, now: number): string {
  if (addon.state === 'unavailable' && addon.nextStartAt > now)
    return `unavailable (restart in ${formatAge(addon.nextStartAt - now)})`;
  return addon.rotating ? `${addon.state}, rotating` : addon.state;
}

function printAddons(addons: AddonView[]): void {
  const now = Date.now();
  printTable(
    ['app', 'name', 'kind', 'state', 'as', 'port', 'pid', 'cpu', 'mem', 'backups', 'uptime'],
    addons.map((a) => [
      a.app,
      a.name,
      `${a.kind} ${a.version}`,
      stateOf(a, now),
      a.as,
      a.port,
      a.pid ?? '-',
      a.usage === null ? '-' : `${a.usage.cpuPercent.toFixed(1)}%`,
      formatBytes(a.usage?.memoryBytes ?? null),
      a.backups.count,
      a.startedAt === null ? '-' : formatAge(now - a.startedAt),
    ]),
  );
}

function printBackups(backups: AddonBackupView[]): void {
  printTable(
    ['id', 'addon', 'kind', 'trigger', 'taken', 'size', 'took'],
    backups.map((b) => [
      b.id,
      b.addon,
      `${b.kind} ${b.version}`,
      b.trigger,
      formatTime(b.createdAt),
      formatBytes(b.sizeBytes),
      formatDuration(b.tookMs),
    ]),
  );
}

export function registerAddons(program: Command, context: CliContext): void {
  const addons = program
    .command('addons')
    .description(
      'managed Redis and PostgreSQL servers per app; their URLs are secrets given to every service',
    );

  addons
    .command('list', { isDefault: true })
    .description('add-ons of every app, or of one (the default: `berth addons [APP]`)')
    .argument('[app]', 'only this app')
    .option('--json', 'print JSON')
    .action(async (app: string | undefined, options: { json?: boolean }) => {
      const list = await context
        .client()
        .request<AddonView[]>('GET', app === undefined ? '/v1/addons' : path(app));
      if (options.json) return printJson(list);
      if (list.length === 0) {
        process.stdout.write(
          `no add-ons${app === undefined ? '' : ` for ${app}`}; create one with: berth addons create APP redis|postgres\n`,
        );
        return;
      }
      printAddons(list);
    });

  addons
    .command('create')
    .description(
      'provision a server for the app; its URL becomes a secret (REDIS_URL, DATABASE_URL) every service gets',
    )
    .argument('<app>', 'the app')
    .argument('<kind>', 'redis or postgres')
    .option('--name <name>', 'name of the add-on (default: the kind)')
    .option(
      '--version, --server-version <version>',
      'major version of the server (default: the newest installed)',
    )
    .option('--as <VAR>', 'the variable its URL is given as (default REDIS_URL / DATABASE_URL)')
    .option('--json', 'print JSON')
    .action(
      async (
        app: string,
        kind: string,
        options: { name?: string; serverVersion?: string; as?: string; json?: boolean },
      ) => {
        const started = Date.now();
        const body = {
          kind,
          ...(options.name === undefined ? {} : { name: options.name }),
          ...(options.serverVersion === undefined ? {} : { version: options.serverVersion }),
          ...(options.as === undefined ? {} : { as: options.as }),
        };
        const addon = await context.client().request<AddonView>('POST', path(app), body);
        if (options.json) return printJson(addon);
        process.stdout.write(
          `${app}: ${addon.name} (${addon.kind} ${addon.version}) available on 127.0.0.1:${addon.port} in ${formatDuration(Date.now() - started)}\n` +
            `  ${addon.as}=${addon.maskedUrl}  (a sealed secret, given to every service of ${app})\n`,
        );
      },
    );

  addons
    .command('info')
    .description('one add-on: state, URL (masked), process, backups, its last log lines')
    .argument('<app>', 'the app')
    .argument('<name>', 'the add-on')
    .option('--json', 'print JSON')
    .action(async (app: string, name: string, options: { json?: boolean }) => {
      const info = await context.client().request<AddonInfo>('GET', path(app, name));
      if (options.json) return printJson(info);
      const now = Date.now();
      const lines = [
        `${info.app}/${info.name}: ${info.kind} ${info.version}, ${stateOf(info, now)}${info.declared ? ' (declared in berth.yaml)' : ''}`,
        `  url       ${info.as}=${info.maskedUrl}`,
        `  process   ${info.pid === null ? 'not running' : `pid ${info.pid}, up ${formatAge(now - (info.startedAt ?? now))}`}${info.usage === null ? '' : `, cpu ${info.usage.cpuPercent.toFixed(1)}%, mem ${formatBytes(info.usage.memoryBytes)}`}${info.failures > 0 ? `, ${info.failures} failures in a row` : ''}`,
        `  data      ${info.dataDir}${info.user === '' ? '' : ` (user ${info.user})`}`,
        `  backups   ${info.backups.count}${info.backups.lastAt === null ? '' : `, last ${formatAge(now - info.backups.lastAt)} ago`}; every ${formatDuration(info.backups.everyMs)}, newest ${info.backups.keep} kept`,
      ];
      if (info.rotating)
        lines.push(`  rotating  ${info.waitingInstances} instances still run with the previous credentials`);
      if (info.reason !== null) lines.push(`  reason    ${info.reason}`);
      if (info.logTail.length > 0) lines.push('  last log lines:', ...info.logTail.map((l) => `    ${l}`));
      process.stdout.write(`${lines.join('\n')}\n`);
    });

  addons
    .command('destroy')
    .description(
      "stop the server and delete its data and URL (asks for the app's name; its backups are kept 7 days)",
    )
    .argument('<app>', 'the app')
    .argument('<name>', 'the add-on')
    .option('--confirm <app>', "the app's name, to confirm without a prompt")
    .action(async (app: string, name: string, options: { confirm?: string }) => {
      let confirm = options.confirm;
      if (confirm === undefined) {
        if (!process.stdin.isTTY)
          throw new UsageError(`destroying ${app}/${name} deletes its data: add --confirm ${app}`);
        const prompt = createInterface({ input: process.stdin, output: process.stderr });
        confirm = (
          await prompt.question(
            `destroying ${app}/${name} deletes its data; type the app's name to confirm: `,
          )
        ).trim();
        prompt.close();
      }
      const result = await context
        .client()
        .request<{ backupsKept: number }>(
          'DELETE',
          `${path(app, name)}?confirm=${encodeURIComponent(confirm)}`,
        );
      process.stdout.write(
        `${app}/${name} destroyed${result.backupsKept > 0 ? `; its ${result.backupsKept} backups are kept for 7 days (berth addons backups ${app})` : ''}\n`,
      );
    });

  for (const [verb, description] of [
    ['stop', 'stop the server (its data stays; nothing restarts it until `berth addons start`)'],
    ['start', 'start a stopped server again'],
  ] as const) {
    addons
      .command(verb)
      .description(description)
      .argument('<app>', 'the app')
      .argument('<name>', 'the add-on')
      .action(async (app: string, name: string) => {
        const addon = await context.client().request<AddonView>('POST', `${path(app, name)}/${verb}`, {});
        process.stdout.write(
          `${app}/${name}: ${addon.state}${addon.pid === null ? '' : ` (pid ${addon.pid})`}\n`,
        );
      });
  }

  addons
    .command('rotate')
    .description(
      "new password: the server and the URL secret change together, the app's services roll health-gated",
    )
    .argument('<app>', 'the app')
    .argument('<name>', 'the add-on')
    .action(async (app: string, name: string) => {
      const addon = await context.client().request<AddonView>('POST', `${path(app, name)}/rotate`, {});
      process.stdout.write(
        `${app}/${name}: new credentials; ${addon.as} is a new secret version and the services of ${app} roll onto it.\n` +
          '  the previous credentials keep working until no instance started with them runs (see berth addons info)\n',
      );
    });

  addons
    .command('backup')
    .description('back up now (Redis: BGSAVE and the RDB; PostgreSQL: pg_dump -Fc) into the data directory')
    .argument('<app>', 'the app')
    .argument('<name>', 'the add-on')
    .option('--json', 'print JSON')
    .action(async (app: string, name: string, options: { json?: boolean }) => {
      const backup = await context
        .client()
        .request<AddonBackupView>('POST', `${path(app, name)}/backups`, {});
      if (options.json) return printJson(backup);
      process.stdout.write(
        `${app}/${name}: backup ${backup.id} (${formatBytes(backup.sizeBytes)} in ${formatDuration(backup.tookMs)})\n`,
      );
    });

  addons
    .command('backups')
    .description("an app's add-on backups (also of destroyed add-ons), oldest first")
    .argument('<app>', 'the app')
    .argument('[name]', 'only this add-on')
    .option('--json', 'print JSON')
    .action(async (app: string, name: string | undefined, options: { json?: boolean }) => {
      const list = await context
        .client()
        .request<AddonBackupView[]>(
          'GET',
          name === undefined
            ? `/v1/apps/${encodeURIComponent(app)}/addon-backups`
            : `${path(app, name)}/backups`,
        );
      if (options.json) return printJson(list);
      printBackups(list);
    });

  addons
    .command('restore')
    .description('load a backup into the add-on NAME: an existing one (its data replaced) or a new one')
    .argument('<app>', 'the app')
    .argument('<name>', 'the add-on to restore into (created from the backup if it does not exist)')
    .argument('<backup>', 'a backup id (berth addons backups APP)')
    .action(async (app: string, name: string, backup: string) => {
      const started = Date.now();
      const addon = await context
        .client()
        .request<AddonView>('POST', `${path(app, name)}/restore`, { backup });
      process.stdout.write(
        `${app}/${name}: ${backup} restored in ${formatDuration(Date.now() - started)} (${addon.kind} ${addon.version}, ${addon.state}; ${addon.as}=${addon.maskedUrl})\n`,
      );
    });
}
