// The control plane's REST API (fastify): every route needs the bearer token or a dashboard session; errors have one shape.
import { createRequire } from 'node:module';
import fastify, { type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify';
import { z } from 'zod';
import { BerthError, httpStatusOf } from '../../domain/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { AppManager } from '../app-manager.js';
import { registerDashboardRoutes } from '../dashboard/dashboard-routes.js';
import { requestAccess } from '../dashboard/request-access.js';
import { SessionStore } from '../dashboard/session-store.js';
import { StaticAssets } from '../dashboard/static-assets.js';
import type { Deployer } from '../deploy/deployer.js';
import type { KubeApps } from '../kube/kube-apps.js';
import type { Store } from '../store/store.js';
import type { UsageMonitor } from '../usage-monitor.js';
import { registerDeployRoutes } from './deploy-routes.js';
import { parseInput } from './parse-input.js';

export interface ApiOptions {
  token: string;
  store: Store;
  apps: AppManager;
  deployer: Deployer;
  usage: UsageMonitor;
  /** Apps on Kubernetes targets (deploy, rollback and scale go there for them). */
  kube?: KubeApps;
  version: string;
  /** Where unexpected failures (500s) are logged with their stack; errors users caused are not logged. */
  log: Logger;
  /** More route sets (observability: metrics, events, logs, drains), registered after the core ones. */
  routes?: ((api: FastifyInstance) => void)[];
  /** How long a dashboard session lasts after sign-in (default 8 h). */
  sessionTtlMs?: number;
  /** How often the dashboard's live feed ticks for fresh metrics (the collector's interval; default 5 s). */
  liveTickMs?: number;
}

/** The actor recorded in events for requests made with the admin token. */
const ADMIN_ACTOR = 'admin';

const scaleBody = z.strictObject({
  counts: z.record(z.string(), z.number().int().min(0).max(100)),
});

/**
 * Fastify's JSON-schema compilers (ajv, fast-json-stringify), loaded on first use: Berth's routes validate their
 * input with zod and declare no fastify schema, and building the compilers at every start cost ~50 ms of CPU.
 */
const fastifyRequire = createRequire(createRequire(import.meta.url).resolve('fastify'));
const lazySchemaCompilers: NonNullable<FastifyServerOptions['schemaController']> = {
  compilersFactory: {
    buildValidator: (...args) => fastifyRequire('@fastify/ajv-compiler')()(...args),
    buildSerializer: (...args) => fastifyRequire('@fastify/fast-json-stringify-compiler')()(...args),
  },
};

export function createApi(options: ApiOptions): FastifyInstance {
  const { store, apps, usage } = options;
  const api = fastify({ logger: false, bodyLimit: 10 * 1024 * 1024, schemaController: lazySchemaCompilers });

  const sessions = new SessionStore({ ttlMs: options.sessionTtlMs });
  const closing = new AbortController();
  api.addHook('preClose', async () => closing.abort());

  // The CLI sends the bearer token; the dashboard a session cookie (and its CSRF token on every action).
  api.addHook('onRequest', async (request, reply) => {
    const access = requestAccess(request.raw as Parameters<typeof requestAccess>[0], options.token, sessions);
    if (access.by === 'refused') return sendError(reply, access.error);
  });

  api.setErrorHandler(async (error, request, reply) => {
    const fastifyError = error as { statusCode?: number; message: string };
    const berthError =
      error instanceof BerthError
        ? error
        : fastifyError.statusCode !== undefined && fastifyError.statusCode < 500
          ? new BerthError('invalid_request', fastifyError.message)
          : new BerthError('internal', (error as Error).message, { cause: error });
    if (httpStatusOf(berthError.code) >= 500) {
      options.log.error({ err: error, method: request.method, url: request.url }, 'API request failed');
    }
    return sendError(reply, berthError);
  });

  api.setNotFoundHandler(async (request, reply) =>
    sendError(reply, new BerthError('not_found', `no route ${request.method} ${request.url}`)),
  );

  api.get('/v1/ping', async () => ({ ok: true, version: options.version }));

  registerDeployRoutes(api, {
    store,
    apps,
    deployer: options.deployer,
    actor: ADMIN_ACTOR,
    ...(options.kube === undefined ? {} : { kube: options.kube }),
  });

  api.get('/v1/apps', async () => store.listApps().map((app) => apps.status(app.name)));

  api.get<{ Params: { app: string } }>('/v1/apps/:app', async (request) => apps.status(request.params.app));

  api.post<{ Params: { app: string } }>('/v1/apps/:app/scale', async (request) => {
    const body = parseInput(scaleBody, request.body, 'body');
    if (options.kube?.targetOf(request.params.app) !== undefined) {
      return options.kube.scale(request.params.app, body.counts, ADMIN_ACTOR);
    }
    return apps.scale(request.params.app, body.counts, ADMIN_ACTOR);
  });

  api.post<{ Params: { app: string; service: string } }>(
    '/v1/apps/:app/services/:service/restart',
    async (request) => apps.restart(request.params.app, request.params.service, ADMIN_ACTOR),
  );

  api.post<{ Params: { app: string } }>('/v1/apps/:app/down', async (request) => {
    apps.down(request.params.app, ADMIN_ACTOR);
    return apps.status(request.params.app);
  });

  api.post('/v1/down', async () => {
    for (const app of store.listApps()) apps.down(app.name, ADMIN_ACTOR);
    return store.listApps().map((app) => apps.status(app.name));
  });

  api.get<{ Querystring: { app?: string; all?: string } }>('/v1/instances', async (request) => {
    const { app, all } = request.query;
    const instances = store.listInstances({ app, live: all !== '1' && all !== 'true' });
    return instances.map((instance) => ({ ...instance, usage: usage.usageOf(instance) }));
  });

  registerDashboardRoutes(api, {
    token: options.token,
    store,
    sessions,
    assets: new StaticAssets(),
    tickMs: options.liveTickMs ?? 5000,
    closing: closing.signal,
  });

  for (const register of options.routes ?? []) register(api);

  return api;
}

function sendError(reply: FastifyReply, error: BerthError): FastifyReply {
  return reply.code(httpStatusOf(error.code)).send({ error: error.toJSON() });
}
