// REST routes of Kubernetes targets: add, list and remove targets; an app's pods, cluster events and export.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { requestStop } from '../../lib/request-stop.js';
import type { KubeApps } from '../kube/kube-apps.js';
import type { TargetStore } from '../kube/target-store.js';
import { parseInput } from './parse-input.js';

const name = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,62}$/, 'expected a name such as prod (lowercase letters, digits, dashes)');

const targetBody = z.strictObject({
  name,
  kubeconfig: z.string().startsWith('/', 'must be an absolute path'),
  context: z.string().min(1).optional(),
  namespace: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'expected a Kubernetes namespace name')
    .optional(),
});

const clusterLogsQuery = z.strictObject({
  lines: z.coerce.number().int().min(1).max(100_000).default(100),
  service: z.string().optional(),
  output: z.enum(['0', '1']).optional(),
  /** `1`: the newest lines, then new ones as NDJSON until the client goes (`berth logs -f`, `berth events -f`). */
  follow: z.enum(['0', '1']).optional(),
});

const exportQuery = z.strictObject({
  kubeVersion: z.string().optional(),
  namespace: z.string().optional(),
});

/** Registers `/v1/targets` and the app routes that read from a target. */
export function registerKubeRoutes(
  api: FastifyInstance,
  options: { kube: KubeApps; targets: TargetStore },
): void {
  const { kube, targets } = options;
  // Follow streams end when the API closes, so the server can close.
  const closing = new AbortController();
  api.addHook('preClose', async () => closing.abort());
  api.get('/v1/targets', async () => targets.list());
  api.post('/v1/targets', async (request) => kube.addTarget(parseInput(targetBody, request.body, 'body')));
  api.delete<{ Params: { name: string } }>('/v1/targets/:name', async (request) => {
    targets.remove(request.params.name);
    return { removed: request.params.name };
  });
  api.get<{ Params: { app: string } }>('/v1/apps/:app/pods', async (request) =>
    kube.pods(request.params.app),
  );
  api.get<{ Params: { app: string } }>('/v1/apps/:app/cluster-logs', async (request, reply) => {
    const { follow, ...query } = parseInput(clusterLogsQuery, request.query, 'query');
    const filter = {
      ...(query.service === undefined ? {} : { service: query.service }),
      output: query.output !== '0',
    };
    if (follow !== '1') return kube.logs(request.params.app, { ...query, ...filter });
    // The follower notes what exists before the backlog is read, so no line falls between the two.
    const follower = await kube.follower(request.params.app, filter);
    await follower.start();
    const backlog = await kube.logs(request.params.app, { ...query, ...filter });
    reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    reply.raw.write(backlog.map((line) => `${JSON.stringify(line)}\n`).join(''));
    const stop = requestStop(request.raw, closing.signal);
    try {
      await follower.run((line) => reply.raw.write(`${JSON.stringify(line)}\n`), stop.signal);
    } finally {
      stop.release();
    }
    reply.raw.end();
    return reply;
  });
  api.get<{ Params: { app: string } }>('/v1/apps/:app/export/k8s', async (request) =>
    kube.export(request.params.app, parseInput(exportQuery, request.query, 'query')),
  );
}
