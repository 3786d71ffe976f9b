// REST routes of add-ons: create, list, info, destroy, rotate, back up, list backups, restore. No password leaves.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AddonService } from '../addons/addon-service.js';
import { parseInput } from './parse-input.js';

const ADMIN_ACTOR = 'admin';

const createBody = z.strictObject({
  kind: z.string().min(1),
  name: z.string().min(1).optional(),
  version: z.string().min(1).optional(),
  as: z.string().min(1).optional(),
});
const destroyQuery = z.strictObject({ confirm: z.string().optional() });
const restoreBody = z.strictObject({ backup: z.string().min(1) });

type AppParams = { Params: { app: string } };
type AddonParams = { Params: { app: string; name: string } };

/** Registers `/v1/addons` and `/v1/apps/:app/addons…`. */
export function registerAddonRoutes(api: FastifyInstance, addons: AddonService): void {
  api.get('/v1/addons', async () => addons.list());

  api.get<AppParams>('/v1/apps/:app/addons', async (request) => addons.list(request.params.app));

  api.post<AppParams>('/v1/apps/:app/addons', async (request) => {
    const body = parseInput(createBody, request.body, 'body');
    return addons.create({ app: request.params.app, ...body, actor: ADMIN_ACTOR });
  });

  api.get<AddonParams>('/v1/apps/:app/addons/:name', async (request) =>
    addons.info(request.params.app, request.params.name),
  );

  api.delete<AddonParams>('/v1/apps/:app/addons/:name', async (request) => {
    const query = parseInput(destroyQuery, request.query, 'query');
    return addons.destroy(request.params.app, request.params.name, query.confirm, ADMIN_ACTOR);
  });

  api.post<AddonParams>('/v1/apps/:app/addons/:name/stop', async (request) =>
    addons.stopAddon(request.params.app, request.params.name, ADMIN_ACTOR),
  );

  api.post<AddonParams>('/v1/apps/:app/addons/:name/start', async (request) =>
    addons.startAddon(request.params.app, request.params.name, ADMIN_ACTOR),
  );

  api.post<AddonParams>('/v1/apps/:app/addons/:name/rotate', async (request) =>
    addons.rotate(request.params.app, request.params.name, ADMIN_ACTOR),
  );

  api.post<AddonParams>('/v1/apps/:app/addons/:name/backups', async (request) =>
    addons.backup(request.params.app, request.params.name, ADMIN_ACTOR),
  );

  api.get<AddonParams>('/v1/apps/:app/addons/:name/backups', async (request) =>
    addons.listBackups(request.params.app, request.params.name),
  );

  api.get<AppParams>('/v1/apps/:app/addon-backups', async (request) =>
    addons.listBackups(request.params.app),
  );

  api.post<AddonParams>('/v1/apps/:app/addons/:name/restore', async (request) => {
    const body = parseInput(restoreBody, request.body, 'body');
    return addons.restore(request.params.app, request.params.name, body.backup, ADMIN_ACTOR);
  });
}
