// Offline work on a data directory, holding its lock like a control plane would: a backup of a stopped Berth,
// and the restore of a backup into an empty data directory. Run by `berth backup` and `berth restore`.
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { archive, prepareBackup, restoreBackup } from '../control/backup/data-dir-backup.js';
import { Database } from '../control/store/database.js';
import { EventStore } from '../control/store/event-store.js';
import { Store } from '../control/store/store.js';
import { controlPaths, resolveDataDir } from '../domain/data-dir.js';
import { BerthError } from '../domain/errors.js';
import { lockDataDir } from './data-dir-lock.js';

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  const { values } = parseArgs({
    args: rest,
    options: {
      'data-dir': { type: 'string' },
      output: { type: 'string' },
      file: { type: 'string' },
      'include-master-key': { type: 'boolean' },
      'master-key-file': { type: 'string' },
    },
  });
  const dataDir = resolveDataDir(values['data-dir']);
  if (command === 'backup' && values.output !== undefined) {
    const lock = lockDataDir(dataDir, 'back up the data directory offline');
    const db = Database.open(controlPaths(dataDir).database);
    const store = new Store(db, new EventStore(db));
    try {
      const prepared = await prepareBackup({
        store,
        dataDir,
        includeMasterKey: values['include-master-key'] === true,
      });
      const partial = `${values.output}.partial`;
      try {
        await pipeline(archive(prepared), createWriteStream(partial, { mode: 0o600 }));
        renameSync(partial, values.output);
      } catch (error) {
        rmSync(partial, { force: true });
        throw error;
      }
      process.stdout.write(`${JSON.stringify(prepared.manifest)}\n`);
    } finally {
      db.close();
      lock.release();
    }
    return;
  }
  if (command === 'restore' && values.file !== undefined) {
    const lock = lockDataDir(dataDir, 'restore into the data directory');
    try {
      const result = await restoreBackup({
        file: values.file,
        dataDir,
        ...(values['master-key-file'] === undefined ? {} : { masterKeyFile: values['master-key-file'] }),
      });
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } finally {
      lock.release();
    }
    return;
  }
  process.stderr.write(
    'usage: data-dir-tool.js backup --data-dir DIR --output FILE [--include-master-key]\n' +
      '       data-dir-tool.js restore --data-dir DIR --file FILE [--master-key-file KEY]\n',
  );
  process.exit(2);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(error instanceof BerthError && error.code === 'conflict' ? 3 : 1);
});
