// An app spec as Kubernetes objects: Deployment, Service, Ingress, HorizontalPodAutoscaler, PodDisruptionBudget and
// Secret, labelled and annotated for Berth. Pure: the same input gives the same objects, byte for byte.
import { createHash } from 'node:crypto';
import { BerthError, type Issue } from '../../domain/errors.js';
import { type AppSpec, DEFAULT_PROGRESS_DEADLINE_MS, type ServiceSpec } from '../../domain/spec.js';
import { formatSize } from '../../lib/size.js';
import type { KubeApiVersions } from './kube-versions.js';

/** The field manager of every apply, and the value of `app.kubernetes.io/managed-by`. */
export const FIELD_MANAGER = 'berth';
export const LABEL_NAME = 'app.kubernetes.io/name';
export const LABEL_COMPONENT = 'app.kubernetes.io/component';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_PART_OF = 'app.kubernetes.io/part-of';
/** On every object: the release that last applied it. On a pod template: the release that introduced the pods. */
export const RELEASE_ANNOTATION = 'berth.dev/release';
/** On a pod template: the versions of the secrets its env takes, so a changed secret rolls the Deployment. */
export const SECRETS_ANNOTATION = 'berth.dev/secret-versions';
/** Port of an HTTP service's containers when its spec has none (Heroku's and Cloud Run's habit), and its Service's. */
export const DEFAULT_CONTAINER_PORT = 8080;
export const SERVICE_PORT = 80;

/** A Kubernetes object as Berth writes and reads it: plain JSON. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** How the app's Ingress is served: the class of controller and, with cert-manager, the issuer of its certificate. */
export interface IngressSettings {
  className?: string;
  clusterIssuer?: string;
}

/** Per service: the release whose pods run now (kept while the pod template is unchanged) and how many run. */
export interface ServicePlacement {
  release: number;
  /** Desired pods; ignored for an autoscaled service (its HorizontalPodAutoscaler owns `replicas`). */
  replicas: number;
}

export interface ManifestInput {
  spec: AppSpec;
  /** The release being applied: every object's `berth.dev/release`. */
  release: number;
  namespace: string;
  versions: KubeApiVersions;
  services: Record<string, ServicePlacement>;
  /** The app's config vars (`berth config set`): plain env of every service. */
  configVars: Record<string, string>;
  /** The version of each secret the services name; pods take the values from the Secret by reference. */
  secretVersions: Record<string, number>;
  /**
   * The secret values, to send as the app's Secret object. Absent for an export: its objects then only refer to
   * the Secret (`secretKeyRef`), which the user provides.
   */
  secretValues?: Record<string, string>;
  ingress?: IngressSettings;
}

/** The name of each object Berth makes for an app. */
export const objectNames = {
  workload: (app: string, service: string): string => `${app}-${service}`,
  ingress: (app: string): string => app,
  secret: (app: string): string => `${app}-secrets`,
  tls: (app: string): string => `${app}-tls`,
};

/** The label selector of every object Berth made for `app` (what prune lists). */
export function appSelector(app: string): string {
  return `${LABEL_MANAGED_BY}=${FIELD_MANAGER},${LABEL_PART_OF}=${app}`;
}

/** Whether a service takes HTTP: it has a health check or a port (routed services always get a check). */
function takesHttp(service: ServiceSpec): boolean {
  return service.health !== null || service.port !== undefined;
}

/** The port a service's containers listen on, given to them in `PORT`. */
export function containerPortOf(service: ServiceSpec): number {
  return service.port ?? DEFAULT_CONTAINER_PORT;
}

/**
 * Refuses what cannot become Kubernetes objects, before anything is built or sent: a process-runtime app, an image
 * not pinned by digest, names too long for a Service. Every problem at once, each with its field path.
 */
export function checkForKubernetes(spec: AppSpec, target: string): void {
  if (spec.runtime !== 'docker') {
    throw new BerthError(
      'invalid_spec',
      `${spec.app} runs as processes on this machine (runtime: process); a Kubernetes target runs containers: give each service an image (image: or a Dockerfile, with registry:) and set runtime: docker`,
      { issues: [{ path: 'runtime', message: `target ${target} runs containers only` }] },
    );
  }
  const issues: Issue[] = [];
  for (const [name, service] of Object.entries(spec.services)) {
    const objectName = objectNames.workload(spec.app, name);
    if (objectName.length > 63) {
      issues.push({
        path: `services.${name}`,
        message: `the Kubernetes name ${objectName} is longer than 63 characters; shorten the app or service name`,
      });
    }
    if (service.autoscale?.steps !== undefined) {
      issues.push({
        path: `services.${name}.autoscale.steps`,
        message:
          'step rules on alarms have no HorizontalPodAutoscaler equivalent; remove them for a Kubernetes target',
      });
    }
    if (service.deploy.strategy === 'canary') {
      issues.push({
        path: `services.${name}.deploy.strategy`,
        message:
          "a canary shifts traffic in Berth's proxy, which does not serve a Kubernetes target; use strategy: rolling there",
      });
    }
    for (const key of ['stickiness', 'releaseOverride'] as const) {
      const set =
        key === 'stickiness' ? service.deploy.stickinessS !== undefined : service.deploy.releaseOverride;
      if (set === true)
        issues.push({
          path: `services.${name}.deploy.${key}`,
          message: `${key} acts in Berth's proxy, which does not serve a Kubernetes target; leave it out there`,
        });
    }
    if (service.autoscale?.memoryPercent !== undefined && service.resources?.memoryBytes === undefined) {
      issues.push({
        path: `services.${name}.autoscale.memory`,
        message: 'on Kubernetes memory utilisation is a share of the memory request: set resources.memory',
      });
    }
  }
  if (issues.length > 0) {
    throw new BerthError('invalid_spec', `${spec.app} cannot run on target ${target} as it is`, { issues });
  }
}

/** 127.0.0.0/8, `localhost`, `::1`: an address that, on a cluster's node, is the node itself. */
function isLoopback(host: string): boolean {
  // `[::1]:5000`, `[::1]`, `127.0.0.1:5000`, `localhost`: the name without brackets and port.
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

/**
 * The services whose images the cluster's nodes could not pull: from a registry on loopback (Berth's own listens on
 * 127.0.0.1, and is where an image is pushed when the app names no `registry:`), while the cluster's API server
 * (`server`, the kubeconfig's URL) is elsewhere, so its nodes are other machines. A cluster on this machine (k3s,
 * the tests' API server) pulls from here.
 */
export function unreachableImages(spec: AppSpec, server: string): Issue[] {
  let host: string;
  try {
    host = new URL(server).host;
  } catch {
    return [];
  }
  if (isLoopback(host)) return [];
  const issues: Issue[] = [];
  for (const service of Object.values(spec.services)) {
    const image = service.image;
    const pinned = image !== undefined && /@sha256:[a-f0-9]{64}$/.test(image);
    // An image to build goes to the app's registry, else Berth's own on 127.0.0.1.
    const registry = pinned ? image.split('/')[0]! : (spec.registry?.url.split('/')[0] ?? '127.0.0.1');
    if (pinned && !image.includes('/')) continue;
    if (isLoopback(registry)) {
      issues.push({
        path: pinned ? `services.${service.name}.image` : 'registry',
        message: `${service.name}'s image would come from ${registry}, which the cluster's nodes cannot reach: set registry: { url: … } to a registry they pull from (Berth pushes the app's images there)`,
      });
    }
  }
  return issues;
}

/** Whether every service's image is a digest reference (`…@sha256:…`): what a release must run on a cluster. */
export function unpinnedImages(spec: AppSpec): string[] {
  return Object.values(spec.services)
    .filter((service) => service.image === undefined || !/@sha256:[a-f0-9]{64}$/.test(service.image))
    .map((service) => service.name);
}

/**
 * Every object of the app, in the order they are applied: the Secret before the Deployments that refer to it,
 * workloads before what points at them.
 */
export function renderManifests(input: ManifestInput): KubeObject[] {
  const { spec } = input;
  const objects: KubeObject[] = [];
  const secretNames = [...new Set(Object.values(spec.services).flatMap((s) => s.secrets))].sort();
  if (input.secretValues !== undefined && secretNames.length > 0)
    objects.push(secretObject(input, secretNames));
  const services = Object.values(spec.services).sort((a, b) => a.name.localeCompare(b.name));
  for (const service of services) objects.push(deploymentObject(input, service));
  for (const service of services) if (takesHttp(service)) objects.push(serviceObject(input, service));
  const ingress = ingressObject(input);
  if (ingress !== undefined) objects.push(ingress);
  for (const service of services)
    if (service.autoscale !== undefined) objects.push(autoscalerObject(input, service));
  for (const service of services) {
    const budget = disruptionBudgetObject(input, service);
    if (budget !== undefined) objects.push(budget);
  }
  return objects;
}

/**
 * A digest of a Deployment's pod template: what Kubernetes rolls on. Rendered with the release that introduced the
 * running pods, an unchanged service hashes the same, so a release that does not touch it keeps its pods (and the
 * release they were started by), as on this machine.
 */
export function podTemplateHash(deployment: KubeObject): string {
  const template = (deployment['spec'] as Record<string, unknown> | undefined)?.['template'] ?? {};
  return createHash('sha256').update(stableJson(template)).digest('hex').slice(0, 16);
}

function metadata(
  input: ManifestInput,
  name: string,
  service?: string,
): KubeObject['metadata'] & { labels: Record<string, string>; annotations: Record<string, string> } {
  return {
    name,
    namespace: input.namespace,
    labels: labels(input.spec.app, service),
    annotations: { [RELEASE_ANNOTATION]: `v${input.release}` },
  };
}

function labels(app: string, service?: string): Record<string, string> {
  return {
    [LABEL_NAME]: app,
    ...(service === undefined ? {} : { [LABEL_COMPONENT]: service }),
    [LABEL_PART_OF]: app,
    [LABEL_MANAGED_BY]: FIELD_MANAGER,
  };
}

/** What selects a service's pods: stable across releases (a Deployment's selector cannot change). */
function selector(app: string, service: string): Record<string, string> {
  return { [LABEL_NAME]: app, [LABEL_COMPONENT]: service };
}

function secretObject(input: ManifestInput, names: string[]): KubeObject {
  const values = input.secretValues ?? {};
  const data: Record<string, string> = {};
  for (const name of names) {
    const value = values[name];
    if (value === undefined) throw new BerthError('internal', `no value for secret ${name}`);
    data[name] = Buffer.from(value, 'utf8').toString('base64');
  }
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: metadata(input, objectNames.secret(input.spec.app)),
    type: 'Opaque',
    data,
  };
}

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

function deploymentObject(input: ManifestInput, service: ServiceSpec): KubeObject {
  const { spec } = input;
  const placement = input.services[service.name];
  if (placement === undefined) throw new BerthError('internal', `no placement for service ${service.name}`);
  const port = containerPortOf(service);
  const http = takesHttp(service);
  const env = new Map<string, Record<string, unknown>>();
  const plain = (name: string, value: string): void => {
    env.set(name, { name, value });
  };
  for (const [name, value] of Object.entries(service.env)) plain(name, value);
  // As on this machine: a config var set with `berth config set` wins over the spec's env, a secret over both.
  for (const [name, value] of Object.entries(input.configVars)) plain(name, value);
  for (const name of service.secrets) {
    env.set(name, {
      name,
      valueFrom: { secretKeyRef: { name: objectNames.secret(spec.app), key: name } },
    });
  }
  plain('PORT', String(port));
  plain('BERTH_APP', spec.app);
  plain('BERTH_SERVICE', service.name);
  plain('BERTH_RELEASE', `v${placement.release}`);
  env.set('BERTH_INSTANCE', {
    name: 'BERTH_INSTANCE',
    valueFrom: { fieldRef: { fieldPath: 'metadata.name' } },
  });
  const container: Record<string, unknown> = {
    name: service.name,
    image: service.image,
    ...(service.run === '' ? {} : { args: ['/bin/sh', '-c', `exec ${service.run}`] }),
    env: [...env.values()],
    ...(http ? { ports: [{ name: 'http', containerPort: port, protocol: 'TCP' }] } : {}),
    ...resourcesOf(service),
    ...probesOf(service),
    lifecycle: { preStop: preStopOf(input, service) },
  };
  const secretVersions = service.secrets
    .map((name) => `${name}=${input.secretVersions[name] ?? 0}`)
    .sort()
    .join(',');
  const deploy = service.deploy;
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: metadata(input, objectNames.workload(spec.app, service.name), service.name),
    spec: {
      // An autoscaled service's count belongs to its HorizontalPodAutoscaler: applying one would fight it.
      ...(service.autoscale === undefined ? { replicas: placement.replicas } : {}),
      selector: { matchLabels: selector(spec.app, service.name) },
      progressDeadlineSeconds: seconds(deploy.progressDeadlineMs ?? DEFAULT_PROGRESS_DEADLINE_MS),
      strategy: {
        type: 'RollingUpdate',
        rollingUpdate: {
          maxSurge: `${deploy.maxSurgePercent}%`,
          maxUnavailable: `${100 - deploy.minHealthyPercent}%`,
        },
      },
      template: {
        metadata: {
          labels: { ...labels(spec.app, service.name) },
          annotations: {
            [RELEASE_ANNOTATION]: `v${placement.release}`,
            ...(secretVersions === '' ? {} : { [SECRETS_ANNOTATION]: secretVersions }),
          },
        },
        spec: {
          containers: [container],
          // Kubernetes counts the preStop hook inside the grace period: drain first, then stopTimeout after SIGTERM.
          terminationGracePeriodSeconds: Math.ceil((deploy.drainMs + deploy.stopTimeoutMs) / 1000),
          // Docker-link style variables for every Service in the namespace would leak into the app's env.
          enableServiceLinks: false,
        },
      },
    },
  };
}

function resourcesOf(service: ServiceSpec): Record<string, unknown> {
  const limits: Record<string, string> = {};
  if (service.resources?.memoryBytes !== undefined)
    limits['memory'] = formatSize(service.resources.memoryBytes);
  if (service.resources?.cpu !== undefined) limits['cpu'] = `${Math.round(service.resources.cpu * 1000)}m`;
  if (Object.keys(limits).length === 0) return {};
  // Requests equal to the limits: the scheduler reserves what the instance may use (Guaranteed with both set).
  return { resources: { requests: { ...limits }, limits } };
}

/**
 * Readiness from `health` with its thresholds (no traffic until it passes, as in the proxy); liveness on the same
 * path after the grace period (a pod that keeps failing is restarted, as an unhealthy instance is replaced).
 */
function probesOf(service: ServiceSpec): Record<string, unknown> {
  const health = service.health;
  if (health === null) return {};
  const httpGet = { path: health.path, port: 'http' };
  const timing = { periodSeconds: seconds(health.intervalMs), timeoutSeconds: seconds(health.timeoutMs) };
  return {
    readinessProbe: {
      httpGet,
      ...timing,
      successThreshold: health.healthyThreshold,
      failureThreshold: health.unhealthyThreshold,
    },
    livenessProbe: {
      httpGet,
      ...timing,
      initialDelaySeconds: Math.ceil(health.graceMs / 1000),
      successThreshold: 1,
      failureThreshold: health.unhealthyThreshold,
    },
  };
}

/** The drain: the pod keeps serving while endpoints and ingress controllers stop sending to it, then SIGTERM. */
function preStopOf(input: ManifestInput, service: ServiceSpec): Record<string, unknown> {
  const drain = Math.ceil(service.deploy.drainMs / 1000);
  return input.versions.preStopSleepAction
    ? { sleep: { seconds: drain } }
    : { exec: { command: ['sleep', String(drain)] } };
}

function serviceObject(input: ManifestInput, service: ServiceSpec): KubeObject {
  const { spec } = input;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(input, objectNames.workload(spec.app, service.name), service.name),
    spec: {
      type: 'ClusterIP',
      selector: selector(spec.app, service.name),
      ports: [{ name: 'http', port: SERVICE_PORT, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}

/** One Ingress for the app's routes, with TLS for every host and the HTTP → HTTPS redirect. */
function ingressObject(input: ManifestInput): KubeObject | undefined {
  const { spec } = input;
  if (spec.routes.length === 0) return undefined;
  const hosts = [...new Set(spec.routes.map((route) => route.host))];
  const settings = input.ingress ?? {};
  const object = metadata(input, objectNames.ingress(spec.app));
  object.annotations = {
    ...object.annotations,
    // ingress-nginx redirects to HTTPS by default once TLS is set; forced, it also does behind a TLS-terminating LB.
    'nginx.ingress.kubernetes.io/force-ssl-redirect': 'true',
    // Traefik: serve these routers with TLS (the redirect is the entry point's, see README "Moving to Kubernetes").
    'traefik.ingress.kubernetes.io/router.tls': 'true',
    ...(settings.clusterIssuer === undefined
      ? {}
      : { 'cert-manager.io/cluster-issuer': settings.clusterIssuer }),
  };
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: object,
    spec: {
      ...(settings.className === undefined ? {} : { ingressClassName: settings.className }),
      tls: [{ hosts, secretName: objectNames.tls(spec.app) }],
      rules: hosts.map((host) => ({
        host,
        http: {
          paths: spec.routes
            .filter((route) => route.host === host)
            .map((route) => ({
              path: route.pathPrefix ?? '/',
              pathType: 'Prefix',
              backend: {
                service: {
                  name: objectNames.workload(spec.app, route.service),
                  port: { number: SERVICE_PORT },
                },
              },
            })),
        },
      })),
    },
  };
}

/**
 * Target tracking as the HorizontalPodAutoscaler does it. CPU is an average value per pod (70 → 700m: Berth's
 * percent is of one core, not of a request); memory a utilisation of the request; requests per minute a Pods
 * metric, which needs a metrics adapter (README "Moving to Kubernetes").
 */
function autoscalerObject(input: ManifestInput, service: ServiceSpec): KubeObject {
  const policy = service.autoscale!;
  const metrics: Record<string, unknown>[] = [];
  if (policy.cpuPercent !== undefined) {
    metrics.push({
      type: 'Resource',
      resource: {
        name: 'cpu',
        target: { type: 'AverageValue', averageValue: `${Math.round(policy.cpuPercent * 10)}m` },
      },
    });
  }
  if (policy.memoryPercent !== undefined) {
    metrics.push({
      type: 'Resource',
      resource: {
        name: 'memory',
        target: { type: 'Utilization', averageUtilization: Math.round(policy.memoryPercent) },
      },
    });
  }
  if (policy.requestsPerMinute !== undefined) {
    metrics.push({
      type: 'Pods',
      pods: {
        metric: { name: 'requests_per_minute' },
        target: { type: 'AverageValue', averageValue: String(policy.requestsPerMinute) },
      },
    });
  }
  const { spec } = input;
  const name = objectNames.workload(spec.app, service.name);
  return {
    apiVersion: input.versions.horizontalPodAutoscaler,
    kind: 'HorizontalPodAutoscaler',
    metadata: metadata(input, name, service.name),
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
      // Zero needs the HPAScaleToZero feature gate: a service may be paused with `berth scale`, not by its policy.
      minReplicas: Math.max(1, policy.min),
      maxReplicas: policy.max,
      metrics,
      behavior: {
        scaleUp: { stabilizationWindowSeconds: Math.round(policy.scaleOutCooldownMs / 1000) },
        scaleDown: { stabilizationWindowSeconds: Math.round(policy.scaleInCooldownMs / 1000) },
      },
    },
  };
}

/**
 * `minHealthy` as the share of pods a voluntary eviction (a node drain) must leave. At 100 % (the default) a
 * budget would block every drain forever, so one pod at a time may go; at 0 % there is no budget.
 */
function disruptionBudgetObject(input: ManifestInput, service: ServiceSpec): KubeObject | undefined {
  const minHealthy = service.deploy.minHealthyPercent;
  if (minHealthy === 0) return undefined;
  const { spec } = input;
  return {
    apiVersion: input.versions.podDisruptionBudget,
    kind: 'PodDisruptionBudget',
    metadata: metadata(input, objectNames.workload(spec.app, service.name), service.name),
    spec: {
      selector: { matchLabels: selector(spec.app, service.name) },
      ...(minHealthy === 100 ? { maxUnavailable: 1 } : { minAvailable: `${minHealthy}%` }),
    },
  };
}

/** JSON with object keys sorted, so equal objects hash equal. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => a.localeCompare(b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
