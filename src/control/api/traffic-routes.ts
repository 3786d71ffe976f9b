// API routes of `berth traffic`: an app's split between its services and external origins, its ramp, and abort.
import type { FastifyInstance } from 'fastify';
import { BerthError } from '../../domain/errors.js';
import type { TrafficController } from '../traffic/traffic-controller.js';

export interface TrafficRoutesOptions {
  traffic: TrafficController;
  actor: string;
}

export function registerTrafficRoutes(api: FastifyInstance, options: TrafficRoutesOptions): void {
  const { traffic, actor } = options;

  api.get<{ Params: { app: string } }>('/v1/apps/:app/traffic', async (request) =>
    traffic.status(request.params.app),
  );

  /** Body `{ weights: { web: 10, heroku: 90 } }`. */
  api.put<{ Params: { app: string }; Body: unknown }>('/v1/apps/:app/traffic', async (request) => {
    const body = request.body;
    const weights = isRecord(body) ? body['weights'] : undefined;
    if (!isRecord(weights))
      throw new BerthError(
        'invalid_request',
        'expected { "weights": { "<service or origin>": <weight>, ... } }',
      );
    return traffic.set(request.params.app, weights, actor);
  });

  /** Body `{ service: "web", steps: [10, 25, 50, 100], intervalMs: 600000 }`. */
  api.post<{ Params: { app: string }; Body: unknown }>('/v1/apps/:app/traffic/ramp', async (request) => {
    const body = isRecord(request.body) ? request.body : {};
    return traffic.ramp(
      request.params.app,
      { service: body['service'], steps: body['steps'], intervalMs: body['intervalMs'] },
      actor,
    );
  });

  api.post<{ Params: { app: string } }>('/v1/apps/:app/traffic/abort', async (request) =>
    traffic.abort(request.params.app, actor),
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
