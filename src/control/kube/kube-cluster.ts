// One Kubernetes cluster as Berth talks to it: server-side apply as field manager `berth`, prune by label, reads of
// rollout state, pod logs and events. Every call goes through @kubernetes/client-node with the target's kubeconfig.

import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { createInterface } from 'node:readline';
import {
  ApiException,
  ApisApi,
  CoreV1Api,
  type CoreV1Event,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
  type V1Deployment,
  type V1Pod,
  type V1ReplicaSet,
  VersionApi,
} from '@kubernetes/client-node';
import { BerthError, type Issue } from '../../domain/errors.js';
import { appSelector, FIELD_MANAGER, type KubeObject } from './kube-manifests.js';
import { apiVersionsFromDiscovery, type KubeApiVersions } from './kube-versions.js';
import { PooledKubeConfig } from './pooled-kube-config.js';

/** Where a target points: a kubeconfig file, one of its contexts (its current one when absent), a namespace. */
export interface KubeTargetConfig {
  kubeconfig: string;
  context?: string;
  /** The context's namespace, else `default`, when absent. */
  namespace?: string;
}

/** An object by kind and name: what prune lists and deletes. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
}

/** What a prune found (and, unless a dry run, deleted). */
export interface PruneResult {
  dryRun: boolean;
  objects: ObjectRef[];
}

export class KubeCluster {
  readonly namespace: string;
  /** The API server's URL, from the kubeconfig. */
  readonly server: string;
  readonly #objects: KubernetesObjectApi;
  readonly #core: CoreV1Api;
  readonly #config: KubeConfig;
  #versions: Promise<KubeApiVersions> | undefined;

  constructor(target: KubeTargetConfig) {
    const config = new PooledKubeConfig();
    try {
      config.loadFromFile(target.kubeconfig);
    } catch (error) {
      throw new BerthError('invalid_request', `${target.kubeconfig}: not a readable kubeconfig`, {
        cause: error,
      });
    }
    if (target.context !== undefined) {
      if (!config.getContexts().some((c) => c.name === target.context)) {
        throw new BerthError(
          'invalid_request',
          `${target.kubeconfig} has no context ${target.context} (it has: ${config
            .getContexts()
            .map((c) => c.name)
            .join(', ')})`,
        );
      }
      config.setCurrentContext(target.context);
    }
    const cluster = config.getCurrentCluster();
    if (cluster === null) {
      throw new BerthError('invalid_request', `${target.kubeconfig}: its current context names no cluster`);
    }
    this.server = cluster.server;
    const context = config.getContextObject(config.getCurrentContext());
    this.namespace = target.namespace ?? context?.namespace ?? 'default';
    this.#config = config;
    this.#objects = KubernetesObjectApi.makeApiClient(config);
    this.#core = config.makeApiClient(CoreV1Api);
  }

  /** The server's API versions for the kinds Berth writes, from `/version` and discovery (asked once). */
  versions(): Promise<KubeApiVersions> {
    this.#versions ??= (async () => {
      const [version, groups] = await Promise.all([
        this.#call('ask its version', () => this.#config.makeApiClient(VersionApi).getCode()),
        this.#call('list its API groups', () => this.#config.makeApiClient(ApisApi).getAPIVersions()),
      ]);
      const served = new Set(groups.groups.flatMap((g) => g.versions.map((v) => v.groupVersion)));
      return apiVersionsFromDiscovery(`${version.major}.${version.minor}`, served);
    })();
    this.#versions.catch(() => {
      this.#versions = undefined;
    });
    return this.#versions;
  }

  /**
   * Server-side apply of each object, in order, as field manager `berth` without forcing: a field another manager
   * owns is a `conflict` naming the object, the field and that manager. With `dryRun` the server validates and
   * merges but stores nothing. Returns the objects as the server holds them after the apply.
   */
  async apply(objects: readonly KubeObject[], options: { dryRun?: boolean } = {}): Promise<KubeObject[]> {
    const applied: KubeObject[] = [];
    for (const object of objects) {
      try {
        const result = await this.#objects.patch(
          object as KubernetesObject,
          undefined,
          options.dryRun === true ? 'All' : undefined,
          FIELD_MANAGER,
          false,
          PatchStrategy.ServerSideApply,
        );
        applied.push(result as KubeObject);
      } catch (error) {
        throw applyError(object, error);
      }
    }
    return applied;
  }

  /**
   * Objects of `app` that Berth made (by label) and `keep` no longer names, of the kinds Berth writes; deleted
   * unless `dryRun`. The caller shows the dry-run list first.
   */
  async prune(app: string, keep: readonly KubeObject[], options: { dryRun: boolean }): Promise<PruneResult> {
    const versions = await this.versions();
    const kinds: [string, string][] = [
      ['v1', 'Secret'],
      ['v1', 'Service'],
      ['apps/v1', 'Deployment'],
      ['networking.k8s.io/v1', 'Ingress'],
      [versions.horizontalPodAutoscaler, 'HorizontalPodAutoscaler'],
      [versions.podDisruptionBudget, 'PodDisruptionBudget'],
    ];
    const kept = new Set(keep.map((o) => `${o.kind}/${o.metadata.name}`));
    const found: ObjectRef[] = [];
    for (const [apiVersion, kind] of kinds) {
      const list = await this.#call(`list ${kind}s of ${app}`, () =>
        this.#objects.list(
          apiVersion,
          kind,
          this.namespace,
          undefined,
          undefined,
          undefined,
          undefined,
          appSelector(app),
        ),
      );
      for (const item of list.items) {
        const name = item.metadata?.name ?? '';
        if (!kept.has(`${kind}/${name}`)) found.push({ apiVersion, kind, name });
      }
    }
    if (!options.dryRun) {
      for (const ref of found) {
        await this.#call(`delete ${ref.kind} ${ref.name}`, () =>
          this.#objects.delete({
            apiVersion: ref.apiVersion,
            kind: ref.kind,
            metadata: { name: ref.name, namespace: this.namespace },
          }),
        );
      }
    }
    return { dryRun: options.dryRun, objects: found };
  }

  /** A Deployment, or undefined when there is none. */
  async deployment(name: string): Promise<V1Deployment | undefined> {
    try {
      return (await this.#objects.read({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name, namespace: this.namespace },
      })) as V1Deployment;
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return undefined;
      throw clusterError(`read Deployment ${name}`, error);
    }
  }

  /** ReplicaSets matching a label selector (`a=b,c=d`). */
  async replicaSets(selector: string): Promise<V1ReplicaSet[]> {
    const list = await this.#call('list ReplicaSets', () =>
      this.#objects.list<V1ReplicaSet>(
        'apps/v1',
        'ReplicaSet',
        this.namespace,
        undefined,
        undefined,
        undefined,
        undefined,
        selector,
      ),
    );
    return list.items;
  }

  /** Pods matching a label selector. */
  async pods(selector: string): Promise<V1Pod[]> {
    const list = await this.#call('list pods', () =>
      this.#core.listNamespacedPod({ namespace: this.namespace, labelSelector: selector }),
    );
    return list.items;
  }

  /**
   * A pod's last log lines, or undefined when the server cannot give them (a pod not yet on a node, a kubelet that
   * does not answer): logs are then missing from a reason, never a reason to fail.
   */
  async podLog(
    name: string,
    tailLines: number,
    previous = false,
    timestamps = false,
  ): Promise<string[] | undefined> {
    try {
      const text = await this.#core.readNamespacedPodLog({
        name,
        namespace: this.namespace,
        tailLines,
        previous,
        timestamps,
      });
      return text.split('\n').filter((line) => line !== '');
    } catch {
      return undefined;
    }
  }

  /**
   * Follows a container's log as the kubelet streams it (`follow=true`), each line with the kubelet's timestamp,
   * from `sinceTime` (RFC 3339) or the container's start. Resolves when the stream ends however it ends (the
   * container stopped, the pod went away, the connection broke, `signal` aborted); rejects when the cluster refuses
   * to give the log. A plain request with the kubeconfig's agent and credentials: client-node's `Log` leaves its
   * stream open when the connection breaks.
   */
  async followPodLog(
    pod: string,
    container: string,
    options: { sinceTime?: string; signal: AbortSignal },
    onLine: (line: string) => void,
  ): Promise<void> {
    const url = new URL(
      `${this.server}/api/v1/namespaces/${encodeURIComponent(this.namespace)}/pods/${encodeURIComponent(pod)}/log`,
    );
    url.searchParams.set('container', container);
    url.searchParams.set('follow', 'true');
    url.searchParams.set('timestamps', 'true');
    if (options.sinceTime !== undefined) url.searchParams.set('sinceTime', options.sinceTime);
    const request: RequestOptions = {};
    await this.#config.applyToHTTPSOptions(request);
    if (options.signal.aborted) return;
    await new Promise<void>((resolve, reject) => {
      const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
      const call = send(url, { ...request, method: 'GET', signal: options.signal }, (response) => {
        // A broken or aborted stream errors (`aborted`): its end is what matters, and `close` tells it.
        response.on('error', () => {});
        if (response.statusCode !== 200) {
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => {
            body += chunk;
          });
          response.once('close', () => {
            const status = (() => {
              try {
                return JSON.parse(body) as StatusBody;
              } catch {
                return { message: body };
              }
            })();
            reject(
              new BerthError(
                'runtime_failure',
                `the cluster refused to follow the log of pod ${pod} (${response.statusCode}): ${status.message ?? ''}`,
              ),
            );
          });
          return;
        }
        const lines = createInterface({ input: response, crlfDelay: Number.POSITIVE_INFINITY });
        lines.on('line', onLine);
        // readline passes its input's errors on: the `aborted` of a broken stream, whose end `close` tells.
        lines.on('error', () => {});
        // The response's `close` comes after the last line, however it ended (end, reset, abort); readline's own
        // `close` only on a clean end.
        response.once('close', () => resolve());
      });
      call.on('error', (error) => {
        if (options.signal.aborted) resolve();
        else reject(clusterError(`follow the log of pod ${pod}`, error));
      });
      call.end();
    });
  }

  /** The namespace's events about objects whose name starts with `prefix` (the app's), oldest first. */
  async events(prefix: string): Promise<CoreV1Event[]> {
    const list = await this.#call('list events', () =>
      this.#core.listNamespacedEvent({ namespace: this.namespace }),
    );
    const at = (e: CoreV1Event): number =>
      new Date(e.lastTimestamp ?? e.eventTime ?? e.metadata.creationTimestamp ?? 0).getTime();
    return list.items
      .filter((e) => (e.involvedObject.name ?? '').startsWith(prefix))
      .sort((a, b) => at(a) - at(b));
  }

  async #call<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw clusterError(what, error);
    }
  }
}

interface StatusBody {
  message?: string;
  reason?: string;
  details?: { causes?: { field?: string; message?: string; reason?: string }[] };
}

function statusOf(error: ApiException<unknown>): StatusBody {
  const body = error.body;
  if (typeof body === 'string') {
    try {
      return JSON.parse(body) as StatusBody;
    } catch {
      return { message: body };
    }
  }
  return (body ?? {}) as StatusBody;
}

/** A failed call as a BerthError: the server's own message, never a bare status code. */
function clusterError(what: string, error: unknown): BerthError {
  if (error instanceof BerthError) return error;
  if (error instanceof ApiException) {
    const status = statusOf(error);
    const code = error.code === 401 || error.code === 403 ? 'unauthorized' : 'runtime_failure';
    return new BerthError(code, `the cluster refused to ${what} (${error.code}): ${status.message ?? ''}`, {
      cause: error,
    });
  }
  return new BerthError('runtime_failure', `could not ${what} on the cluster: ${(error as Error).message}`, {
    cause: error,
  });
}

/**
 * An apply's failure. A conflict names each field and the manager that owns it (the server says
 * `conflict with "kubectl-edit" using apps/v1: .spec.replicas`); a refusal by validation names the fields.
 */
function applyError(object: KubeObject, error: unknown): BerthError {
  const subject = `${object.kind} ${object.metadata.name}`;
  if (!(error instanceof ApiException)) return clusterError(`apply ${subject}`, error);
  const status = statusOf(error);
  const causes = status.details?.causes ?? [];
  if (error.code === 409 && status.reason === 'Conflict' && causes.length > 0) {
    const owned = causes.map((cause) => ({
      field: cause.field ?? '',
      manager: /conflict with "([^"]+)"/.exec(cause.message ?? '')?.[1] ?? 'another manager',
    }));
    const issues: Issue[] = owned.map((o) => ({
      path: `${subject} ${o.field}`.trim(),
      message: `also managed by ${o.manager}`,
    }));
    const fields = owned.map((o) => `${o.field} is managed by ${o.manager}`).join('; ');
    return new BerthError(
      'conflict',
      `${subject}: ${fields}; Berth does not take fields over: undo the other change or remove that manager's fields`,
      { issues, cause: error },
    );
  }
  if (error.code === 422 || error.code === 400) {
    const issues: Issue[] = causes.map((cause) => ({
      path: `${subject} ${cause.field ?? ''}`.trim(),
      message: cause.message ?? 'is invalid',
    }));
    return new BerthError('invalid_spec', `the cluster refused ${subject}: ${status.message ?? ''}`, {
      issues,
      cause: error,
    });
  }
  return clusterError(`apply ${subject}`, error);
}
