// REST route of autoscaling: each policy's decision now, per metric, and the last changes it made.
import type { FastifyInstance } from 'fastify';
import type { ServiceAutoscaleStatus } from '../../domain/autoscale-types.js';
import { BerthError } from '../../domain/errors.js';
import type { Autoscaler } from '../autoscale/autoscaler.js';
import type { Store } from '../store/store.js';

/** Registers `GET /v1/apps/:app/autoscale`. */
export function registerAutoscaleRoutes(
  api: FastifyInstance,
  options: { store: Store; autoscaler: Autoscaler },
): void {
  api.get<{ Params: { app: string } }>(
    '/v1/apps/:app/autoscale',
    async (request): Promise<ServiceAutoscaleStatus[]> => {
      if (!options.store.getApp(request.params.app)) {
        throw new BerthError('not_found', `no app named ${request.params.app}`);
      }
      return options.autoscaler.status(request.params.app);
    },
  );
}
