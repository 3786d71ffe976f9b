// `POST /v1/backup`: a consistent backup of the running Berth, streamed as a .tar.gz (the CLI writes it to a file).
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AddonSnapshot } from '../addons/addon-service.js';
import { archive, prepareBackup } from '../backup/data-dir-backup.js';
import type { EventStore } from '../store/event-store.js';
import type { Store } from '../store/store.js';
import { parseInput } from './parse-input.js';

const backupBody = z.strictObject({ includeMasterKey: z.boolean().default(false) });

/** The header carrying the backup's manifest (apps, artifacts, what it leaves out) ahead of the archive. */
export const BACKUP_MANIFEST_HEADER = 'x-berth-backup-manifest';

export function registerBackupRoutes(
  api: FastifyInstance,
  options: {
    store: Store;
    events: EventStore;
    dataDir: string;
    /** The running add-ons: a backup holds a consistent dump of each. */
    addons?: { snapshot(dir: string): Promise<AddonSnapshot[]> };
  },
): void {
  api.post('/v1/backup', async (request, reply) => {
    const body = parseInput(backupBody, request.body ?? {}, 'body');
    const prepared = await prepareBackup({
      store: options.store,
      dataDir: options.dataDir,
      includeMasterKey: body.includeMasterKey,
      ...(options.addons === undefined ? {} : { addons: options.addons }),
    });
    const { manifest } = prepared;
    options.events.record({
      actor: 'admin',
      kind: 'backup.created',
      message: `backup of ${manifest.apps.length} apps, ${manifest.artifacts.length} artifacts and ${manifest.addons?.length ?? 0} add-ons${manifest.masterKey ? ', with the master key' : ''}`,
      data: {
        apps: manifest.apps,
        artifacts: manifest.artifacts.length,
        addons: manifest.addons?.length ?? 0,
        masterKey: manifest.masterKey,
      },
    });
    return reply
      .header('content-type', 'application/gzip')
      .header(BACKUP_MANIFEST_HEADER, Buffer.from(JSON.stringify(manifest)).toString('base64'))
      .send(archive(prepared));
  });
}
