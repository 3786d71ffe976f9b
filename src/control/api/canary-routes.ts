// API routes of a running canary: promote it a step, abort it, and the deployment's current state explained.
import type { FastifyInstance } from 'fastify';
import { BerthError } from '../../domain/errors.js';
import type { AppManager } from '../app-manager.js';
import type { CanaryController } from '../deploy/canary-controller.js';
import type { Store } from '../store/store.js';

export interface CanaryRoutesOptions {
  store: Store;
  apps: AppManager;
  canaries: CanaryController;
  actor: string;
}

export function registerCanaryRoutes(api: FastifyInstance, options: CanaryRoutesOptions): void {
  const { store, apps, canaries, actor } = options;

  api.post<{ Params: { app: string } }>('/v1/apps/:app/deployment/promote', async (request) => {
    apps.status(request.params.app);
    return canaries.promote(request.params.app, actor);
  });

  api.post<{ Params: { app: string } }>('/v1/apps/:app/deployment/abort', async (request) => {
    apps.status(request.params.app);
    return canaries.abort(request.params.app, actor);
  });

  /** The app's deployment in progress, else its last one, with the app's status (`berth deploy status`). */
  api.get<{ Params: { app: string } }>('/v1/apps/:app/deployment', async (request) => {
    const status = apps.status(request.params.app);
    const deployment =
      store.activeDeployment(request.params.app) ?? store.listDeployments({ app: request.params.app }).at(-1);
    if (!deployment) throw new BerthError('not_found', `${request.params.app} has no deployment yet`);
    return { deployment, status };
  });
}
