// The proxy in the API: `GET /v1/proxy` (keeper, workers, crashes) and `POST /v1/proxy/restart` (a handover).
import type { FastifyInstance } from 'fastify';
import type { ProxySupervisor } from '../traffic/proxy-supervisor.js';

export function registerProxyRoutes(api: FastifyInstance, supervisor: ProxySupervisor): void {
  api.get('/v1/proxy', async () => supervisor.view());
  // A new worker takes over the listeners; the old one finishes its requests: no connection is refused.
  api.post('/v1/proxy/restart', async () => supervisor.restart());
}
