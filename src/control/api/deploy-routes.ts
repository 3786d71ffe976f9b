// API routes of releases and deployments: deploy a directory, roll back, list releases, follow a deployment.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { DeploymentView } from '../../domain/api-types.js';
import { BerthError } from '../../domain/errors.js';
import type { AppManager } from '../app-manager.js';
import type { Deployer } from '../deploy/deployer.js';
import type { KubeApps } from '../kube/kube-apps.js';
import { unpinnedImages } from '../kube/kube-manifests.js';
import type { Store } from '../store/store.js';
import { parseInput } from './parse-input.js';

export interface DeployRoutesOptions {
  store: Store;
  apps: AppManager;
  deployer: Deployer;
  actor: string;
  /** Apps on Kubernetes targets; without it a deploy naming a target is refused. */
  kube?: KubeApps;
}

const deployBody = z.strictObject({
  directory: z.string().startsWith('/', 'must be an absolute path'),
  file: z
    .string()
    .min(1)
    .regex(/^[^/]+$/, 'must be a file name inside the directory')
    .optional(),
  /** A Kubernetes target's name (`berth deploy --target`); else the spec's `target:`; else this machine. */
  target: z.string().min(1).optional(),
});

const rollbackBody = z.strictObject({
  version: z.number().int().min(1).optional(),
});

export function registerDeployRoutes(api: FastifyInstance, options: DeployRoutesOptions): void {
  const { store, apps, deployer, actor, kube } = options;

  api.post('/v1/deploy', async (request) => {
    const body = parseInput(deployBody, request.body, 'body');
    const file = body.file ?? 'berth.yaml';
    const { spec } = deployer.readSource(body.directory, { specFile: file, fileNames: 'path' });
    const target = body.target ?? spec.target;
    if (target === undefined) return deployer.deploy(body.directory, actor, file);
    if (kube === undefined)
      throw new BerthError('internal', 'this control plane deploys to no Kubernetes target');
    await kube.checkRegistry(spec, target);
    // Images pinned by digest go as they are; anything else is built and pushed first (the app's registry).
    const pinned = unpinnedImages(spec).length === 0;
    const built = pinned
      ? spec
      : (await deployer.build(body.directory, { specFile: file, fileNames: 'path' })).spec;
    return kube.deploy(built, body.directory, target, actor);
  });

  api.post<{ Params: { app: string } }>('/v1/apps/:app/rollback', async (request) => {
    const body = parseInput(rollbackBody, request.body, 'body');
    if (kube?.targetOf(request.params.app) !== undefined) {
      return kube.rollback(request.params.app, actor, body.version, (app, version) =>
        apps.rollbackTarget(app, version),
      );
    }
    return deployer.rollback(request.params.app, actor, body.version);
  });

  api.get<{ Params: { app: string } }>('/v1/apps/:app/releases', async (request) => {
    apps.status(request.params.app);
    const deployments = store.listDeployments({ app: request.params.app });
    return store.listReleases(request.params.app).map((release) => ({
      ...release,
      deployment: deployments.filter((d) => d.toRelease === release.version).at(-1) ?? null,
    }));
  });

  api.get<{ Params: { app: string } }>('/v1/apps/:app/deployments', async (request) => {
    apps.status(request.params.app);
    return store.listDeployments({ app: request.params.app });
  });

  api.get<{ Params: { id: string } }>('/v1/deployments/:id', async (request): Promise<DeploymentView> => {
    const deployment = store.getDeployment(Number(request.params.id));
    if (!deployment) throw new BerthError('not_found', `no deployment ${request.params.id}`);
    return { deployment, status: apps.status(deployment.app) };
  });
}
