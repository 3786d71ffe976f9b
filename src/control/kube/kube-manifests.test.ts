// Generation (layer 1): every spec feature → Kubernetes objects, checked against kubernetes-models and golden files.
// biome-ignore-all lint/suspicious/noExplicitAny: the test walks plain JSON objects as the API returns them
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { BerthError } from '../../domain/errors.js';
import { type AppSpec, parseSpec } from '../../domain/spec.js';
import {
  checkForKubernetes,
  type KubeObject,
  type ManifestInput,
  podTemplateHash,
  RELEASE_ANNOTATION,
  renderManifests,
  unpinnedImages,
  unreachableImages,
} from './kube-manifests.js';
import { validateManifests, validationIssues } from './kube-validate.js';
import { apiVersionsFor, apiVersionsFromDiscovery, parseKubeVersion } from './kube-versions.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

export const LEDGER_YAML = `
app: ledger
runtime: docker
routes:
  - host: ledger.example.com
    service: web
  - host: ledger.example.com
    pathPrefix: /api
    service: api
services:
  web:
    image: registry.example.com/ledger/web@${DIGEST}
    run: node server.js
    port: 3000
    instances: 3
    health: { path: /health, interval: 2s, timeout: 1s, healthy: 2, unhealthy: 3, grace: 5s }
    deploy: { maxSurge: 50%, minHealthy: 100%, drain: 10s, stopTimeout: 20s, progressDeadline: 2m }
    resources: { cpu: 0.5, memory: 256Mi }
    env: { NODE_ENV: production }
    secrets: [DATABASE_URL]
  api:
    image: registry.example.com/ledger/api@${DIGEST}
    port: 4000
    deploy: { minHealthy: 50% }
    resources: { memory: 512Mi }
    autoscale: { min: 2, max: 6, cpu: 70, memory: 80, requestsPerMinute: 1200 }
  worker:
    image: registry.example.com/ledger/worker@${DIGEST}
    run: node worker.js
    deploy: { minHealthy: 0% }
`;

function ledger(text = LEDGER_YAML): AppSpec {
  return parseSpec(text, { file: 'berth.yaml' });
}

function input(spec: AppSpec, version: string, overrides: Partial<ManifestInput> = {}): ManifestInput {
  return {
    spec,
    release: 4,
    namespace: 'shop',
    versions: apiVersionsFor(version),
    services: Object.fromEntries(
      Object.keys(spec.services).map((name) => [name, { release: 3, replicas: 3 }]),
    ),
    configVars: { LOG_LEVEL: 'info' },
    secretVersions: { DATABASE_URL: 2 },
    secretValues: { DATABASE_URL: 'postgres://u:p@db/ledger' },
    ingress: { className: 'nginx', clusterIssuer: 'letsencrypt' },
    ...overrides,
  };
}

function find(objects: KubeObject[], kind: string, name: string): Record<string, any> {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(found, `${kind} ${name} among ${objects.map((o) => `${o.kind} ${o.metadata.name}`).join(', ')}`);
  return found as Record<string, any>;
}

/** Compares with the golden file; BERTH_UPDATE_GOLDEN=1 rewrites it (review the diff). */
function golden(name: string, objects: KubeObject[]): void {
  const text = objects.map((o) => `---\n${stringify(o, { aliasDuplicateObjects: false })}`).join('');
  // Tests run from dist/: the golden files live beside this source file.
  const path = join(import.meta.dirname, '..', '..', '..', '..', 'src', 'control', 'kube', 'testdata', name);
  if (process.env['BERTH_UPDATE_GOLDEN'] === '1') writeFileSync(path, text);
  assert.equal(text, readFileSync(path, 'utf8'), `${name} differs (BERTH_UPDATE_GOLDEN=1 rewrites it)`);
}

describe('Kubernetes manifests', () => {
  it('renders every spec feature as valid objects for a current server (golden file)', () => {
    const objects = renderManifests(input(ledger(), '1.33'));
    validateManifests(objects);
    assert.deepEqual(
      objects.map((o) => `${o.apiVersion} ${o.kind} ${o.metadata.name}`),
      [
        'v1 Secret ledger-secrets',
        'apps/v1 Deployment ledger-api',
        'apps/v1 Deployment ledger-web',
        'apps/v1 Deployment ledger-worker',
        'v1 Service ledger-api',
        'v1 Service ledger-web',
        'networking.k8s.io/v1 Ingress ledger',
        'autoscaling/v2 HorizontalPodAutoscaler ledger-api',
        'policy/v1 PodDisruptionBudget ledger-api',
        'policy/v1 PodDisruptionBudget ledger-web',
      ],
    );
    for (const object of objects) {
      assert.equal(object.metadata.annotations?.[RELEASE_ANNOTATION], 'v4', `${object.kind} release`);
      assert.equal(object.metadata.labels?.['app.kubernetes.io/managed-by'], 'berth');
      assert.equal(object.metadata.labels?.['app.kubernetes.io/part-of'], 'ledger');
    }
    golden('ledger-1.33.yaml', objects);
  });

  it('maps deploy, health, resources and env of a service onto its Deployment', () => {
    const web = find(renderManifests(input(ledger(), '1.33')), 'Deployment', 'ledger-web');
    assert.equal(web.spec.replicas, 3);
    assert.deepEqual(web.spec.strategy.rollingUpdate, { maxSurge: '50%', maxUnavailable: '0%' });
    assert.equal(web.spec.progressDeadlineSeconds, 120);
    const pod = web.spec.template.spec;
    assert.equal(pod.terminationGracePeriodSeconds, 30, 'drain 10 s + stopTimeout 20 s');
    const [container] = pod.containers;
    assert.equal(container.image, `registry.example.com/ledger/web@${DIGEST}`);
    assert.deepEqual(container.args, ['/bin/sh', '-c', 'exec node server.js']);
    assert.deepEqual(container.resources, {
      requests: { memory: '256Mi', cpu: '500m' },
      limits: { memory: '256Mi', cpu: '500m' },
    });
    assert.deepEqual(container.readinessProbe, {
      httpGet: { path: '/health', port: 'http' },
      periodSeconds: 2,
      timeoutSeconds: 1,
      successThreshold: 2,
      failureThreshold: 3,
    });
    assert.equal(container.livenessProbe.initialDelaySeconds, 5);
    assert.deepEqual(container.lifecycle.preStop, { sleep: { seconds: 10 } });
    const env = Object.fromEntries(container.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
    assert.equal(env.NODE_ENV, 'production');
    assert.equal(env.LOG_LEVEL, 'info');
    assert.equal(env.PORT, '3000');
    assert.equal(env.BERTH_RELEASE, 'v3', 'the release that introduced the pods');
    assert.deepEqual(env.DATABASE_URL, { secretKeyRef: { name: 'ledger-secrets', key: 'DATABASE_URL' } });
    assert.equal(web.spec.template.metadata.annotations['berth.dev/secret-versions'], 'DATABASE_URL=2');
  });

  it('sends secret values only inside the Secret object, base64 as the API wants them', () => {
    const objects = renderManifests(input(ledger(), '1.33'));
    const secret = find(objects, 'Secret', 'ledger-secrets');
    assert.equal(Buffer.from(secret.data.DATABASE_URL, 'base64').toString(), 'postgres://u:p@db/ledger');
    const others = JSON.stringify(objects.filter((o) => o.kind !== 'Secret'));
    assert.ok(!others.includes('postgres://'), 'no value outside the Secret');
  });

  it('exports secrets as references only when no values are given', () => {
    const objects = renderManifests(input(ledger(), '1.33', { secretValues: undefined }));
    assert.ok(!objects.some((o) => o.kind === 'Secret'));
    assert.ok(!JSON.stringify(objects).includes('postgres://'));
    validateManifests(objects);
  });

  it('writes the Ingress with TLS, the redirect annotations and path prefixes per host', () => {
    const ingress = find(renderManifests(input(ledger(), '1.33')), 'Ingress', 'ledger');
    assert.equal(ingress.metadata.annotations['nginx.ingress.kubernetes.io/force-ssl-redirect'], 'true');
    assert.equal(ingress.metadata.annotations['traefik.ingress.kubernetes.io/router.tls'], 'true');
    assert.equal(ingress.metadata.annotations['cert-manager.io/cluster-issuer'], 'letsencrypt');
    assert.equal(ingress.spec.ingressClassName, 'nginx');
    assert.deepEqual(ingress.spec.tls, [{ hosts: ['ledger.example.com'], secretName: 'ledger-tls' }]);
    assert.deepEqual(
      ingress.spec.rules[0].http.paths.map((p: any) => [p.path, p.backend.service.name]),
      [
        ['/', 'ledger-web'],
        ['/api', 'ledger-api'],
      ],
    );
  });

  it('leaves replicas of an autoscaled service to its HorizontalPodAutoscaler, with all three metrics', () => {
    const objects = renderManifests(input(ledger(), '1.33'));
    assert.equal(find(objects, 'Deployment', 'ledger-api').spec.replicas, undefined);
    const hpa = find(objects, 'HorizontalPodAutoscaler', 'ledger-api');
    assert.equal(hpa.spec.minReplicas, 2);
    assert.equal(hpa.spec.maxReplicas, 6);
    assert.deepEqual(
      hpa.spec.metrics.map((m: any) => m.type),
      ['Resource', 'Resource', 'Pods'],
    );
    assert.equal(hpa.spec.metrics[0].resource.target.averageValue, '700m');
    assert.equal(hpa.spec.metrics[2].pods.target.averageValue, '1200');
  });

  it('turns minHealthy into a PodDisruptionBudget, none at 0 %', () => {
    const objects = renderManifests(input(ledger(), '1.33'));
    assert.deepEqual(find(objects, 'PodDisruptionBudget', 'ledger-web').spec.maxUnavailable, 1);
    assert.deepEqual(find(objects, 'PodDisruptionBudget', 'ledger-api').spec.minAvailable, '50%');
    assert.ok(!objects.some((o) => o.kind === 'PodDisruptionBudget' && o.metadata.name === 'ledger-worker'));
  });

  it('writes the API versions a 1.20 server serves, and a preStop exec before 1.30 (golden file)', () => {
    const objects = renderManifests(input(ledger(), 'v1.20.2'));
    validateManifests(objects);
    assert.equal(find(objects, 'HorizontalPodAutoscaler', 'ledger-api').apiVersion, 'autoscaling/v2beta2');
    assert.equal(find(objects, 'PodDisruptionBudget', 'ledger-web').apiVersion, 'policy/v1beta1');
    const web = find(objects, 'Deployment', 'ledger-web');
    assert.deepEqual(web.spec.template.spec.containers[0].lifecycle.preStop, {
      exec: { command: ['sleep', '10'] },
    });
    golden('ledger-1.20.yaml', objects);
  });

  it('picks versions from discovery when the server turned the newest off', () => {
    const versions = apiVersionsFromDiscovery('1.24', new Set(['autoscaling/v2beta2', 'policy/v1beta1']));
    assert.equal(versions.horizontalPodAutoscaler, 'autoscaling/v2beta2');
    assert.equal(versions.podDisruptionBudget, 'policy/v1beta1');
    assert.throws(
      () => apiVersionsFromDiscovery('1.33', new Set(['policy/v1'])),
      /serves neither autoscaling/,
    );
    assert.throws(() => parseKubeVersion('1.18'), /too old/);
    assert.throws(() => parseKubeVersion('latest'), /expected a Kubernetes version/);
    assert.deepEqual(parseKubeVersion('1.29+'), { major: 1, minor: 29 });
  });

  it('keeps the pod template of a service the release did not change, so its pods stay', () => {
    const a = find(renderManifests(input(ledger(), '1.33', { release: 4 })), 'Deployment', 'ledger-web');
    const b = find(renderManifests(input(ledger(), '1.33', { release: 5 })), 'Deployment', 'ledger-web');
    assert.equal(podTemplateHash(a as KubeObject), podTemplateHash(b as KubeObject));
    const rotated = find(
      renderManifests(input(ledger(), '1.33', { secretVersions: { DATABASE_URL: 3 } })),
      'Deployment',
      'ledger-web',
    );
    assert.notEqual(
      podTemplateHash(a as KubeObject),
      podTemplateHash(rotated as KubeObject),
      'a secret rolls it',
    );
  });

  it('refuses a process-runtime app for a Kubernetes target, naming the field', () => {
    const spec = parseSpec('app: hello\nservices:\n  web:\n    run: node server.js\n', {
      file: 'berth.yaml',
    });
    assert.throws(
      () => checkForKubernetes(spec, 'prod'),
      (error: unknown) =>
        error instanceof BerthError &&
        /runs as processes on this machine/.test(error.message) &&
        error.issues?.[0]?.path === 'runtime',
    );
  });

  it('refuses step autoscaling and a memory target without a memory request, every problem at once', () => {
    const spec = ledger(
      LEDGER_YAML.replace('resources: { memory: 512Mi }', 'resources: { cpu: 1 }').replace(
        'requestsPerMinute: 1200 }',
        'requestsPerMinute: 1200, steps: [{ alarm: slow, add: 1 }] }',
      ),
    );
    assert.throws(
      () => checkForKubernetes(spec, 'prod'),
      (error: unknown) =>
        error instanceof BerthError &&
        error.issues?.map((i) => i.path).join(' ') ===
          'services.api.autoscale.steps services.api.autoscale.memory',
    );
  });

  it('refuses a canary strategy, which shifts traffic in a proxy the cluster does not have', () => {
    const spec = ledger();
    const canary = {
      ...spec,
      services: Object.fromEntries(
        Object.entries(spec.services).map(([name, service]) => [
          name,
          { ...service, deploy: { ...service.deploy, strategy: 'canary' as const } },
        ]),
      ),
    };
    assert.throws(
      () => checkForKubernetes(canary, 'prod'),
      (error: unknown) =>
        error instanceof BerthError &&
        (error.issues ?? []).some((i) => /^services\.\w+\.deploy\.strategy$/.test(i.path)),
    );
  });

  it("refuses stickiness and release override, which act in Berth's proxy", () => {
    const spec = ledger();
    const [name, service] = Object.entries(spec.services)[0]!;
    const sticky = {
      ...spec,
      services: {
        ...spec.services,
        [name]: { ...service, deploy: { ...service.deploy, stickinessS: 3600, releaseOverride: true } },
      },
    };
    assert.throws(
      () => checkForKubernetes(sticky, 'prod'),
      (error: unknown) =>
        error instanceof BerthError &&
        error.issues?.map((i) => i.path).join(' ') ===
          `services.${name}.deploy.stickiness services.${name}.deploy.releaseOverride`,
    );
  });

  it('names images not pinned by digest', () => {
    const spec = ledger(LEDGER_YAML.replace(`registry.example.com/ledger/web@${DIGEST}`, 'nginx:1.27'));
    assert.deepEqual(unpinnedImages(spec), ['web']);
  });

  it("refuses images from a loopback registry (Berth's own) for a cluster elsewhere, not for one on this machine", () => {
    const local = ledger(
      LEDGER_YAML.replaceAll('registry.example.com/ledger', '127.0.0.1:5000/berth/ledger'),
    );
    const remote = 'https://k8s.example.com:6443';
    assert.deepEqual(
      unreachableImages(local, remote).map((i) => i.path),
      ['services.web.image', 'services.api.image', 'services.worker.image'],
    );
    assert.match(
      unreachableImages(local, remote)[0]!.message,
      /^web's image would come from 127\.0\.0\.1:5000, which the cluster's nodes cannot reach: set registry:/,
    );
    for (const here of ['https://127.0.0.1:6443', 'https://localhost:6443', 'https://[::1]:6443']) {
      assert.deepEqual(unreachableImages(local, here), [], here);
    }
    assert.deepEqual(unreachableImages(ledger(), remote), [], 'a registry the nodes can reach');
    // An image to build goes to the app's registry, else Berth's own on 127.0.0.1.
    const built = ledger(
      'app: shop\nruntime: docker\nservices:\n  web:\n    image: shop-web:latest\n    port: 3000\n',
    );
    assert.deepEqual(
      unreachableImages(built, remote).map((i) => i.path),
      ['registry'],
    );
    const pushed = ledger(
      'app: shop\nruntime: docker\nregistry: { url: registry.example.com/team }\nservices:\n  web:\n    image: shop-web:latest\n    port: 3000\n',
    );
    assert.deepEqual(unreachableImages(pushed, remote), []);
  });

  it('reports a schema violation with the object and field', () => {
    const [deployment] = renderManifests(input(ledger(), '1.33')).filter((o) => o.kind === 'Deployment');
    const broken = structuredClone(deployment!) as Record<string, any>;
    broken.spec.replicas = 'three';
    const issues = validationIssues(broken as KubeObject);
    assert.ok(
      issues.some((i) => i.path === 'Deployment ledger-api /spec/replicas'),
      JSON.stringify(issues),
    );
    assert.throws(() => validateManifests([broken as KubeObject]), /fail their schema/);
  });
});
