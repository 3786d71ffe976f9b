// REST routes of secrets and config vars: no response carries a secret value except an explicit, recorded reveal.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { SecretsService } from '../secrets/secrets-service.js';
import { parseInput } from './parse-input.js';

/** The actor recorded in events for requests made with the admin token. */
const ADMIN_ACTOR = 'admin';

const valuesBody = z.strictObject({ values: z.record(z.string(), z.string()) });
const unsetQuery = z.strictObject({ force: z.enum(['0', '1', 'true', 'false']).optional() });
const unsetConfigBody = z.strictObject({ keys: z.array(z.string()).min(1) });
const exportBody = z.strictObject({ passphrase: z.string() });
const importBody = z.strictObject({ passphrase: z.string(), bundle: z.unknown() });

type AppParams = { Params: { app: string } };
type SecretParams = { Params: { app: string; name: string } };

/** Registers `/v1/apps/:app/secrets…`, `/v1/apps/:app/config` and `/v1/secrets/rotate-master-key`. */
export function registerSecretsRoutes(api: FastifyInstance, secrets: SecretsService): void {
  api.get<AppParams>('/v1/apps/:app/secrets', async (request) => secrets.list(request.params.app));

  api.post<AppParams>('/v1/apps/:app/secrets', async (request) => {
    const body = parseInput(valuesBody, request.body, 'body');
    return secrets.set(request.params.app, body.values, ADMIN_ACTOR);
  });

  api.delete<SecretParams>('/v1/apps/:app/secrets/:name', async (request) => {
    const query = parseInput(unsetQuery, request.query, 'query');
    const force = query.force === '1' || query.force === 'true';
    return secrets.unset(request.params.app, [request.params.name], ADMIN_ACTOR, { force });
  });

  api.post<SecretParams>('/v1/apps/:app/secrets/:name/reveal', async (request) =>
    secrets.reveal(request.params.app, request.params.name, ADMIN_ACTOR),
  );

  api.post<SecretParams>('/v1/apps/:app/secrets/:name/rollback', async (request) =>
    secrets.rollback(request.params.app, request.params.name, ADMIN_ACTOR),
  );

  api.post<SecretParams>('/v1/apps/:app/secrets/:name/restore', async (request) =>
    secrets.restore(request.params.app, request.params.name, ADMIN_ACTOR),
  );

  api.post<AppParams>('/v1/apps/:app/secrets/export', async (request) => {
    const body = parseInput(exportBody, request.body, 'body');
    return secrets.exportBundle(request.params.app, body.passphrase, ADMIN_ACTOR);
  });

  api.post<AppParams>('/v1/apps/:app/secrets/import', async (request) => {
    const body = parseInput(importBody, request.body, 'body');
    return secrets.importBundle(request.params.app, body.bundle, body.passphrase, ADMIN_ACTOR);
  });

  api.post('/v1/secrets/rotate-master-key', async () => secrets.rotateMasterKey(ADMIN_ACTOR));

  api.get<AppParams>('/v1/apps/:app/config', async (request) => secrets.listConfig(request.params.app));

  api.post<AppParams>('/v1/apps/:app/config', async (request) => {
    const body = parseInput(valuesBody, request.body, 'body');
    return secrets.setConfig(request.params.app, body.values, ADMIN_ACTOR);
  });

  api.post<AppParams>('/v1/apps/:app/config/unset', async (request) => {
    const body = parseInput(unsetConfigBody, request.body, 'body');
    return secrets.unsetConfig(request.params.app, body.keys, ADMIN_ACTOR);
  });
}
