// `berth backup FILE` (a consistent snapshot, running or not) and `berth restore FILE` (into an empty data dir).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { type ControlEndpoint, controlPaths } from '../../domain/data-dir.js';
import { BerthError } from '../../domain/errors.js';
import { isRunning, readPidFile } from '../../lib/process-identity.js';
import { ApiClient } from '../client.js';
import type { CliContext } from '../context.js';
import { formatBytes, UsageError } from '../output.js';

const DATA_DIR_TOOL = fileURLToPath(new URL('../../main/data-dir-tool.js', import.meta.url));

/** What `POST /v1/backup` and the offline tool say about a backup (its manifest.json). */
interface Manifest {
  apps: { name: string; release: number }[];
  artifacts: string[];
  masterKey: boolean;
  addons?: { app: string; name: string; kind: string }[];
  notIncluded: string[];
}

export function registerBackup(program: Command, context: CliContext): void {
  program
    .command('backup')
    .description('write a consistent backup of this Berth (state, artifacts, CA, sealed secrets) to FILE')
    .argument('<file>', 'where to write it (a .tar.gz, mode 0600)')
    .option('--include-master-key', 'also store the master key in the file (by default it is kept apart)')
    .option('--force', 'replace FILE if it exists')
    .action(async (file: string, options: { includeMasterKey?: boolean; force?: boolean }) => {
      const output = resolve(file);
      if (existsSync(output) && !options.force)
        throw new UsageError(`${file} exists; choose another name or add --force`);
      const dataDir = context.dataDir;
      const endpoint = readPidFile<ControlEndpoint>(controlPaths(dataDir).endpoint);
      const manifest =
        endpoint !== undefined && isRunning(endpoint)
          ? await backupRunning(ApiClient.fromDataDir(dataDir), output, options.includeMasterKey === true)
          : await runTool([
              'backup',
              '--data-dir',
              dataDir,
              '--output',
              output,
              ...(options.includeMasterKey ? ['--include-master-key'] : []),
            ]);
      const m = manifest as Manifest;
      process.stdout.write(
        `backed up ${m.apps.map((a) => `${a.name} v${a.release}`).join(', ') || 'no apps'} (${m.artifacts.length} artifacts) to ${output} (${formatBytes(statSync(output).size)})\n`,
      );
      if (m.addons !== undefined && m.addons.length > 0) {
        process.stdout.write(
          `add-ons dumped into it: ${m.addons.map((a) => `${a.app}/${a.name} (${a.kind})`).join(', ')}; their backups are in it too\n`,
        );
      }
      process.stdout.write(
        m.masterKey
          ? 'the file holds the master key: keep it as safe as the key itself\n'
          : `not in it: ${m.notIncluded.join('; ')}.\nkeep the master key apart (${dataDir}/master.key or BERTH_MASTER_KEY): the secrets in the backup need it\n`,
      );
    });

  program
    .command('restore')
    .description('restore a backup into an empty data directory; then `berth up` brings every app back')
    .argument('<file>', 'a file written by `berth backup`')
    .option('--master-key-file <path>', 'the master key to restore with (when the backup does not hold it)')
    .action(async (file: string, options: { masterKeyFile?: string }) => {
      const input = resolve(file);
      if (!existsSync(input)) throw new UsageError(`${file}: no such file`);
      if (options.masterKeyFile !== undefined && !existsSync(options.masterKeyFile))
        throw new UsageError(`--master-key-file: ${options.masterKeyFile}: no such file`);
      const dataDir = context.dataDir;
      const result = (await runTool([
        'restore',
        '--data-dir',
        dataDir,
        '--file',
        input,
        ...(options.masterKeyFile === undefined ? [] : ['--master-key-file', resolve(options.masterKeyFile)]),
      ])) as {
        manifest: Manifest & { dataDir: string; createdAt: number };
        endedInstances: number;
        masterKey: string;
      };
      const { manifest } = result;
      process.stdout.write(
        `restored ${manifest.apps.map((a) => `${a.name} v${a.release}`).join(', ') || 'no apps'} into ${dataDir} ` +
          `(backup of ${manifest.dataDir}, ${new Date(manifest.createdAt).toISOString()})\n`,
      );
      if (result.masterKey === 'missing') {
        process.stdout.write(
          `the backup holds no master key: put it at ${dataDir}/master.key (mode 0600) or set BERTH_MASTER_KEY before \`berth up\`\n`,
        );
      }
      process.stdout.write(
        `start it with: berth --data-dir ${dataDir} up   (add --http-port/--https-port/--api-port if the old one still runs)\n`,
      );
    });
}

/** Streams the running control plane's backup into `output` (through a .partial file, so a failure leaves nothing). */
async function backupRunning(client: ApiClient, output: string, includeMasterKey: boolean): Promise<unknown> {
  const response = await client.raw('POST', '/v1/backup', { includeMasterKey });
  const header = response.headers.get('x-berth-backup-manifest');
  const partial = `${output}.partial`;
  try {
    await pipeline(Readable.fromWeb(response.body as never), createWriteStream(partial, { mode: 0o600 }));
    // A connection cut mid-stream would leave a short archive: only a whole one (gzip's CRC, tar's end) is kept.
    await verifyArchive(partial);
    renameSync(partial, output);
  } catch (error) {
    rmSync(partial, { force: true });
    throw new BerthError('runtime_failure', `the backup did not complete: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return JSON.parse(Buffer.from(header ?? '', 'base64').toString('utf8') || '{}');
}

/** Lists the archive end to end; throws unless it is whole and holds a manifest. */
async function verifyArchive(path: string): Promise<void> {
  const tar = spawn('tar', ['-tzf', path], { stdio: ['ignore', 'pipe', 'pipe'] });
  let listing = '';
  let stderr = '';
  tar.stdout.on('data', (chunk: Buffer) => {
    listing += String(chunk);
  });
  tar.stderr.on('data', (chunk: Buffer) => {
    stderr += String(chunk);
  });
  const [code] = (await once(tar, 'exit')) as [number | null];
  if (code !== 0 || !/^(\.\/)?manifest\.json$/m.test(listing))
    throw new Error(`the archive is incomplete (${stderr.trim() || 'no manifest.json'})`);
}

/** Runs the offline data-dir tool (it takes the data directory's lock) and returns the JSON it prints. */
async function runTool(args: string[]): Promise<unknown> {
  const child = spawn(process.execPath, [DATA_DIR_TOOL, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += String(chunk);
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += String(chunk);
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0)
    throw new BerthError(
      code === 3 ? 'conflict' : 'runtime_failure',
      stderr.trim() || `exited with code ${code}`,
    );
  return JSON.parse(stdout);
}
