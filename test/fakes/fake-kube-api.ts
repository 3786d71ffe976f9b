// A small in-process Kubernetes API for layer-2 tests of Berth's cluster client: discovery, server-side apply (as a
// whole-object replace), reads, label-selected lists, deletes, pod logs and events, over plain HTTP on loopback (client-node allows it only with insecure-skip-tls-verify). Its
// Deployment "controller" is a script the test gives: what the new pods do, tick by tick. It checks nothing a real
// server checks (test/kube-*.test.ts does that against kube-apiserver): it only lets a test see what the client
// sent and decide what the cluster answers.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';

/** A stored object: plain JSON as the API returns it. */
// biome-ignore lint/suspicious/noExplicitAny: objects are plain JSON of every kind
export type FakeObject = Record<string, any>;

/** One request the client made. */
export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  contentType: string | undefined;
  body: FakeObject | undefined;
}

/** What the new pods of a Deployment's revision do: ready, never ready, crash-looping, or past the deadline. */
export type PodScript = (image: string, tick: number) => 'ready' | 'not-ready' | 'crash' | 'deadline';

interface Resource {
  group: string;
  kind: string;
  name: string;
  namespaced: boolean;
}

const RESOURCES: Resource[] = [
  { group: 'v1', kind: 'Secret', name: 'secrets', namespaced: true },
  { group: 'v1', kind: 'Service', name: 'services', namespaced: true },
  { group: 'v1', kind: 'Pod', name: 'pods', namespaced: true },
  { group: 'v1', kind: 'Event', name: 'events', namespaced: true },
  { group: 'apps/v1', kind: 'Deployment', name: 'deployments', namespaced: true },
  { group: 'apps/v1', kind: 'ReplicaSet', name: 'replicasets', namespaced: true },
  { group: 'networking.k8s.io/v1', kind: 'Ingress', name: 'ingresses', namespaced: true },
  {
    group: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    name: 'horizontalpodautoscalers',
    namespaced: true,
  },
  { group: 'policy/v1', kind: 'PodDisruptionBudget', name: 'poddisruptionbudgets', namespaced: true },
];

/** A field another manager owns: the next apply of that object is refused with 409, as a real server does. */
export interface FakeConflict {
  kind: string;
  name: string;
  field: string;
  manager: string;
}

export class FakeKubeApi {
  readonly requests: FakeRequest[] = [];
  /** `group/resource/name` → object (one namespace: `default`). */
  readonly objects = new Map<string, FakeObject>();
  /** A pod's log lines: the current container's, and (`previous`) the crashed one's. */
  podLogs: (pod: string) => { current: string[]; previous: string[] } = () => ({ current: [], previous: [] });
  conflicts: FakeConflict[] = [];
  /** Lines written with `writeLog`, per pod, with the kubelet's timestamp: what a followed log streams. */
  readonly #written = new Map<string, { stamp: string; line: string }[]>();
  readonly #following = new Map<string, Set<ServerResponse>>();
  script: PodScript = () => 'ready';
  readonly #server: Server;
  #ticks = new Map<string, number>();
  #port = 0;

  constructor() {
    this.#server = createServer((request, response) => {
      this.#handle(request, response).catch((error: Error) => {
        response.writeHead(500, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ kind: 'Status', message: error.message }));
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.#port = (this.#server.address() as { port: number }).port;
  }

  stop(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  /** Writes a kubeconfig for this server into `dir` and returns its path. */
  kubeconfig(dir: string): string {
    const file = join(dir, 'kubeconfig');
    writeFileSync(
      file,
      `apiVersion: v1
kind: Config
clusters: [{ name: fake, cluster: { server: "http://127.0.0.1:${this.#port}", insecure-skip-tls-verify: true } }]
users: [{ name: tester, user: { token: fake-token } }]
contexts: [{ name: fake, context: { cluster: fake, user: tester, namespace: default } }]
current-context: fake
`,
    );
    return file;
  }

  /** A line of a pod's container, now: sent at once to whoever follows that pod's log. */
  writeLog(pod: string, line: string): void {
    // Nanoseconds as a kubelet prints them; in the millisecond of a follower's start a line counts as before it.
    const stamp = new Date().toISOString().replace('Z', '000000Z');
    const lines = this.#written.get(pod) ?? [];
    lines.push({ stamp, line });
    this.#written.set(pod, lines);
    for (const response of this.#following.get(pod) ?? []) response.write(`${stamp} ${line}\n`);
  }

  /** Ends the log streams of a pod, as when its container restarts; `broken`: resets their connections instead. */
  endLogs(pod: string, how: 'ended' | 'broken' = 'ended'): void {
    for (const response of this.#following.get(pod) ?? []) {
      if (how === 'broken') response.socket?.destroy();
      else response.end();
    }
    this.#following.delete(pod);
  }

  /** Stores an object as if another client had made it. */
  put(object: FakeObject): FakeObject {
    const resource = this.#resource(object['apiVersion'], object['kind']);
    object['metadata']['namespace'] ??= 'default';
    object['metadata']['uid'] ??= randomUUID();
    this.objects.set(`${resource.group}/${resource.name}/${object['metadata']['name']}`, object);
    return object;
  }

  get(apiVersion: string, kind: string, name: string): FakeObject | undefined {
    const resource = this.#resource(apiVersion, kind);
    return this.objects.get(`${resource.group}/${resource.name}/${name}`);
  }

  /** The applies that stored something (not dry runs), as `Kind/name`. */
  applied(): string[] {
    return this.requests
      .filter((r) => r.method === 'PATCH' && !r.query.has('dryRun'))
      .map((r) => `${r.body?.['kind']}/${r.body?.['metadata']?.['name']}`);
  }

  #resource(apiVersion: string, kind: string): Resource {
    const found = RESOURCES.find((r) => r.group === apiVersion && r.kind === kind);
    if (!found) throw new Error(`the fake API serves no ${apiVersion} ${kind}`);
    return found;
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://fake');
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString();
    const body = text === '' ? undefined : (JSON.parse(text) as FakeObject);
    this.requests.push({
      method: request.method ?? 'GET',
      path: url.pathname,
      query: url.searchParams,
      contentType: request.headers['content-type'],
      body,
    });
    const send = (status: number, value: unknown, type = 'application/json'): void => {
      response.writeHead(status, { 'content-type': type });
      response.end(typeof value === 'string' ? value : JSON.stringify(value));
    };
    const path = url.pathname;
    if (path === '/version') return send(200, { major: '1', minor: '29', gitVersion: 'v1.29.0' });
    if (path === '/apis') {
      const groups = [...new Set(RESOURCES.map((r) => r.group).filter((g) => g.includes('/')))];
      return send(200, {
        kind: 'APIGroupList',
        groups: groups.map((g) => ({
          name: g.split('/')[0],
          versions: [{ groupVersion: g, version: g.split('/')[1] }],
          preferredVersion: { groupVersion: g, version: g.split('/')[1] },
        })),
      });
    }
    const discovery = /^\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))$/.exec(path);
    if (discovery) {
      const group = discovery[1] ?? discovery[2]!;
      return send(200, {
        kind: 'APIResourceList',
        groupVersion: group,
        resources: RESOURCES.filter((r) => r.group === group).map((r) => ({
          name: r.name,
          kind: r.kind,
          namespaced: r.namespaced,
          singularName: '',
          verbs: ['get', 'list', 'patch', 'delete'],
        })),
      });
    }
    const match =
      /^\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?(\/log)?$/.exec(path);
    if (!match) return send(404, status(404, 'NotFound', `no route ${path}`));
    const group = match[1] ?? match[2]!;
    const plural = match[4]!;
    const name = match[5];
    const key = `${group}/${plural}/${name}`;
    if (match[6] !== undefined && url.searchParams.get('follow') === 'true') {
      const since = Date.parse(url.searchParams.get('sinceTime') ?? '') || 0;
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.flushHeaders();
      // The kubelet's sinceTime has whole seconds: lines of that second come again.
      for (const { stamp, line } of this.#written.get(name!) ?? []) {
        if (Math.floor(Date.parse(stamp) / 1000) >= Math.floor(since / 1000))
          response.write(`${stamp} ${line}\n`);
      }
      const set = this.#following.get(name!) ?? new Set();
      set.add(response);
      this.#following.set(name!, set);
      response.once('close', () => set.delete(response));
      return;
    }
    if (match[6] !== undefined) {
      const log = this.podLogs(name!);
      const lines = url.searchParams.get('previous') === 'true' ? log.previous : log.current;
      const tail = Number(url.searchParams.get('tailLines') ?? lines.length);
      return send(
        200,
        lines
          .slice(-tail)
          .map((l) => `${l}\n`)
          .join(''),
        'text/plain',
      );
    }
    if (request.method === 'GET' && name === undefined) {
      const selector = url.searchParams.get('labelSelector');
      const items = [...this.objects.entries()]
        .filter(([k, o]) => k.startsWith(`${group}/${plural}/`) && matches(o, selector))
        .map(([, o]) => o);
      return send(200, { kind: 'List', apiVersion: group, metadata: {}, items });
    }
    if (request.method === 'GET') {
      if (plural === 'deployments' && this.objects.has(key)) this.#reconcile(this.objects.get(key)!);
      const found = this.objects.get(key);
      return found ? send(200, found) : send(404, status(404, 'NotFound', `${plural} "${name}" not found`));
    }
    if (request.method === 'DELETE') {
      if (!this.objects.delete(key))
        return send(404, status(404, 'NotFound', `${plural} "${name}" not found`));
      return send(200, status(200, 'Success', 'deleted'));
    }
    if (request.method === 'PATCH' && body) {
      const conflict = this.conflicts.find(
        (c) => c.kind === body['kind'] && c.name === body['metadata']['name'],
      );
      if (conflict && url.searchParams.get('force') !== 'true') {
        return send(409, {
          ...status(
            409,
            'Conflict',
            `Apply failed with 1 conflict: conflict with "${conflict.manager}": ${conflict.field}`,
          ),
          details: {
            name,
            kind: plural,
            causes: [
              {
                reason: 'FieldManagerConflict',
                message: `conflict with "${conflict.manager}" using ${group}`,
                field: conflict.field,
              },
            ],
          },
        });
      }
      const old = this.objects.get(key);
      const stored: FakeObject = structuredClone(body);
      stored['metadata'] = {
        ...stored['metadata'],
        namespace: 'default',
        uid: old?.['metadata']?.['uid'] ?? randomUUID(),
        generation: old?.['metadata']?.['generation'] ?? 1,
        managedFields: [
          {
            manager: url.searchParams.get('fieldManager'),
            operation: 'Apply',
            time: new Date().toISOString(),
          },
        ],
      };
      if (plural === 'deployments') {
        const changed = JSON.stringify(old?.['spec']) !== JSON.stringify(stored['spec']);
        if (old && changed) stored['metadata']['generation'] = old['metadata']['generation'] + 1;
        stored['metadata']['annotations'] = {
          ...stored['metadata']['annotations'],
          'deployment.kubernetes.io/revision':
            old?.['metadata']?.['annotations']?.['deployment.kubernetes.io/revision'] ?? '0',
        };
        stored['status'] = old?.['status'] ?? {};
      }
      if (url.searchParams.get('dryRun') !== 'All') this.objects.set(key, stored);
      return send(200, stored);
    }
    return send(405, status(405, 'MethodNotAllowed', `${request.method} ${path}`));
  }

  /**
   * What the Deployment controller and kubelets would have done by now: a ReplicaSet per pod template, its pods
   * doing what the script says, the old ReplicaSet's pods gone once the new ones are ready, and the status.
   */
  #reconcile(deployment: FakeObject): void {
    const name: string = deployment['metadata']['name'];
    const template = deployment['spec']['template'];
    const hash = fingerprint(JSON.stringify(template));
    const desired: number = deployment['spec']['replicas'] ?? 1;
    const annotations = deployment['metadata']['annotations'];
    let rs = [...this.objects.values()].find(
      (o) => o['kind'] === 'ReplicaSet' && o['metadata']['labels']['pod-template-hash'] === hash,
    );
    const revisions = [...this.objects.values()]
      .filter(
        (o) =>
          o['kind'] === 'ReplicaSet' &&
          o['metadata']['ownerReferences'][0].uid === deployment['metadata']['uid'],
      )
      .map((o) => Number(o['metadata']['annotations']['deployment.kubernetes.io/revision']));
    const next = String(Math.max(0, ...revisions) + 1);
    if (!rs) {
      rs = this.put({
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: {
          name: `${name}-${hash}`,
          labels: { ...template['metadata']['labels'], 'pod-template-hash': hash },
          annotations: { 'deployment.kubernetes.io/revision': next },
          ownerReferences: [
            { apiVersion: 'apps/v1', kind: 'Deployment', name, uid: deployment['metadata']['uid'] },
          ],
        },
        spec: { replicas: desired, selector: {} },
      });
    } else if (
      rs['metadata']['annotations']['deployment.kubernetes.io/revision'] !==
      annotations['deployment.kubernetes.io/revision']
    ) {
      rs['metadata']['annotations']['deployment.kubernetes.io/revision'] = next;
    }
    annotations['deployment.kubernetes.io/revision'] =
      rs['metadata']['annotations']['deployment.kubernetes.io/revision'];
    const tick = (this.#ticks.get(hash) ?? 0) + 1;
    this.#ticks.set(hash, tick);
    const image: string = template['spec']['containers'][0]['image'];
    const behaviour = this.script(image, tick);
    let ready = 0;
    for (let i = 0; i < desired; i++) {
      const pod = this.put({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: `${name}-${hash}-${i}`,
          labels: { ...template['metadata']['labels'], 'pod-template-hash': hash },
          annotations: template['metadata']['annotations'] ?? {},
        },
        status: podStatus(behaviour, i, tick),
      });
      if (pod['status']['conditions'][0].status === 'True') ready++;
    }
    for (const [key, pod] of this.objects) {
      const ofThis = pod['kind'] === 'Pod' && pod['metadata']['name'].startsWith(`${name}-`);
      const index = Number(pod['metadata']['name'].split('-').at(-1));
      const surplus = pod['metadata']['labels']['pod-template-hash'] === hash && index >= desired;
      const old = pod['metadata']['labels']['pod-template-hash'] !== hash && ready === desired;
      if (ofThis && (surplus || old)) this.objects.delete(key);
    }
    const applied = deployment['metadata']['managedFields'][0].time;
    const conditions =
      behaviour === 'deadline'
        ? [
            {
              type: 'Progressing',
              status: 'False',
              reason: 'ProgressDeadlineExceeded',
              lastUpdateTime: new Date(Date.parse(applied) + 1000).toISOString(),
            },
          ]
        : [{ type: 'Progressing', status: 'True', reason: 'ReplicaSetUpdated', lastUpdateTime: applied }];
    deployment['status'] = {
      observedGeneration: deployment['metadata']['generation'],
      replicas: desired,
      updatedReplicas: desired,
      readyReplicas: ready,
      availableReplicas: ready,
      conditions,
    };
  }
}

/** Pod `i` of a revision at `tick`: ready ones come up one per tick, so progress is seen to move. */
function podStatus(behaviour: ReturnType<PodScript>, i: number, tick: number): FakeObject {
  const ready = behaviour === 'ready' && i < tick - 1;
  const base = { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] };
  if (behaviour !== 'crash') return base;
  return {
    ...base,
    containerStatuses: [
      {
        name: 'app',
        image: '',
        imageID: '',
        ready: false,
        restartCount: tick,
        state: { waiting: { reason: 'CrashLoopBackOff' } },
        lastState: { terminated: { exitCode: 3, reason: 'Error' } },
      },
    ],
  };
}

function status(code: number, reason: string, message: string): FakeObject {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    status: code < 300 ? 'Success' : 'Failure',
    code,
    reason,
    message,
  };
}

/** Equality-based label selectors (`a=b,c=d`), the only kind Berth sends. */
function matches(object: FakeObject, selector: string | null): boolean {
  if (!selector) return true;
  const labels = object['metadata']?.['labels'] ?? {};
  return selector.split(',').every((term) => {
    const [key, value] = term.split('=');
    return labels[key!] === value;
  });
}

function fingerprint(text: string): string {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return (h >>> 0).toString(36).padStart(7, '0').slice(0, 10);
}
