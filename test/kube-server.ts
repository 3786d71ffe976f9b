// A real Kubernetes control plane on loopback for layer-3 tests: etcd (Debian's etcd-server), kube-apiserver and
// kube-controller-manager v1.20.2 built by scripts/build-kube.sh, and a stand-in kubelet that only writes pod status.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, type KubeConfig, type V1Pod, Watch } from '@kubernetes/client-node';
import { PooledKubeConfig } from '../src/control/kube/pooled-kube-config.js';
import { requireTool } from './require-tool.js';
import { waitFor } from './wait.js';

/** Where scripts/build-kube.sh puts the binaries. */
export const KUBE_DIR = process.env['BERTH_KUBE_DIR'] ?? '/var/cache/berth/kube-1.20.2';

/** False when the layer-3 tests can run, else the one-line reason they are skipped. */
export function requireKube(): string | false {
  for (const binary of ['kube-apiserver', 'kube-controller-manager']) {
    try {
      accessSync(join(KUBE_DIR, binary), constants.X_OK);
    } catch {
      return `${binary} not built in ${KUBE_DIR}: run scripts/build-kube.sh (Debian source package kubernetes, golang-1.19-go)`;
    }
  }
  return requireTool('etcd', 'etcd-server') || requireTool('openssl', 'openssl');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface KubeServer {
  /** A kubeconfig file for the cluster (context `test`, a bearer token, the test CA). */
  kubeconfig: string;
  config: KubeConfig;
  core: CoreV1Api;
  /** Every process's output, for a failing test's message. */
  logs(): string;
  stop(): Promise<void>;
}

/** Starts etcd, the API server and the controller manager (deployment, replicaset and garbage collector). */
export async function startKubeServer(): Promise<KubeServer> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-kube-'));
  // etcd syncs its log on every write the API server waits for: in memory (tmpfs) a sync costs nothing, where on a
  // disk shared with other tests it takes milliseconds, up to tens of them.
  const etcdDir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : dir, 'berth-etcd-'));
  const processes: { name: string; child: ChildProcess; log: string }[] = [];
  const start = (name: string, command: string, args: string[]): void => {
    const log = join(dir, `${name}.log`);
    const out = openSync(log, 'a');
    const child = spawn(command, args, { stdio: ['ignore', out, out], cwd: dir });
    processes.push({ name, child, log });
  };
  const stop = async (): Promise<void> => {
    for (const { child } of processes.reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(etcdDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  };
  const logs = (): string =>
    processes
      .map((p) => `== ${p.name}\n${readFileSync(p.log, 'utf8').split('\n').slice(-30).join('\n')}`)
      .join('\n');
  try {
    // A CA and a serving certificate for 127.0.0.1; the service-account signing key the 1.20 server insists on.
    const openssl = (...args: string[]): void => {
      execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    };
    // P-256 keys: generated in milliseconds where RSA-2048 takes a tenth of a second or more each.
    openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '2',
      '-subj',
      '/CN=berth-test-ca',
    );
    openssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
      '-subj',
      '/CN=kube-apiserver',
    );
    writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    openssl(
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.crt',
      '-days',
      '2',
      '-extfile',
      'san.ext',
    );
    openssl('ecparam', '-genkey', '-name', 'prime256v1', '-noout', '-out', 'sa.key');
    const token = 'berth-test-token';
    // The user is in system:masters: RBAC lets it do anything, as a cluster admin's kubeconfig would.
    writeFileSync(join(dir, 'tokens.csv'), `${token},berth-admin,1,"system:masters"\n`);
    const [etcdPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    start('etcd', 'etcd', [
      '--data-dir',
      etcdDir,
      '--listen-client-urls',
      `http://127.0.0.1:${etcdPort}`,
      '--advertise-client-urls',
      `http://127.0.0.1:${etcdPort}`,
      '--listen-peer-urls',
      `http://127.0.0.1:${etcdPeerPort}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${etcdPeerPort}`,
      '--initial-cluster',
      `default=http://127.0.0.1:${etcdPeerPort}`,
    ]);
    start('kube-apiserver', join(KUBE_DIR, 'kube-apiserver'), [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      '--insecure-port=0',
      '--tls-cert-file=server.crt',
      '--tls-private-key-file=server.key',
      '--client-ca-file=ca.crt',
      '--token-auth-file=tokens.csv',
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc',
      '--service-account-key-file=sa.key',
      '--service-account-signing-key-file=sa.key',
      '--service-cluster-ip-range=10.0.0.0/24',
      // No service-account controller runs, so pods are admitted without a token volume.
      '--disable-admission-plugins=ServiceAccount',
      '--enable-priority-and-fairness=false',
    ]);
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: test\n  cluster:\n    server: https://127.0.0.1:${apiPort}\n    certificate-authority: ${join(dir, 'ca.crt')}`,
        `users:\n- name: admin\n  user:\n    token: ${token}`,
        'contexts:\n- name: test\n  context:\n    cluster: test\n    user: admin\n    namespace: default',
        'current-context: test',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    // Kept-alive connections, as Berth's own client has: the stand-in kubelets call through it on every change of pods.
    const config = new PooledKubeConfig();
    config.loadFromFile(kubeconfig);
    const core = config.makeApiClient(CoreV1Api);
    // A process that exited ends the wait at once (a check that throws would only be retried until the deadline).
    const exited = await waitFor(
      'the API server to serve the default namespace',
      async () => {
        const gone = processes.find((p) => p.child.exitCode !== null);
        if (gone) return gone;
        try {
          await core.readNamespace({ name: 'default' });
          return null;
        } catch {
          return undefined;
        }
      },
      120_000,
      250,
    );
    if (exited) throw new Error(`${exited.name} exited with code ${exited.child.exitCode}:\n${logs()}`);
    start('kube-controller-manager', join(KUBE_DIR, 'kube-controller-manager'), [
      `--kubeconfig=${kubeconfig}`,
      '--controllers=deployment,replicaset,garbagecollector',
      '--leader-elect=false',
      '--port=0',
      '--secure-port=0',
      '--use-service-account-credentials=false',
    ]);
    return { kubeconfig, config, core, logs, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** What the stand-in kubelet makes of a pod: it passes its readiness check, keeps failing it, or crash-loops. */
export type PodFate = 'ready' | 'not-ready' | 'crash-loop';

/**
 * Does through the API what a kubelet does for pods' status, and nothing else: no container runs. Each pod of the
 * namespace gets the status its fate says (Running and Ready; Running and not Ready; restarting with exit code 1 in
 * CrashLoopBackOff), written once through the `pods/status` subresource. Like a kubelet it watches its pods: any
 * change of the namespace's pods starts a round over the listed pods, so a new pod gets its status within a round
 * trip, and an idle namespace costs nothing.
 */
export class StandInKubelet {
  readonly #core: CoreV1Api;
  readonly #watch: Watch;
  readonly #namespace: string;
  readonly #fate: (pod: V1Pod) => PodFate;
  readonly #done = new Set<string>();
  #running = true;
  /** A change was seen (or may have been missed) since the last round began. */
  #dirty = true;
  #wake: (() => void) | undefined;
  #loop: Promise<void>;

  constructor(server: KubeServer, namespace: string, fate: (pod: V1Pod) => PodFate) {
    this.#core = server.core;
    this.#watch = new Watch(server.config);
    this.#namespace = namespace;
    this.#fate = fate;
    this.#loop = this.#run();
  }

  #poke = (): void => {
    this.#dirty = true;
    this.#wake?.();
  };

  async #run(): Promise<void> {
    let watch: { ended: boolean; controller?: AbortController } | undefined;
    while (this.#running) {
      if (watch === undefined || watch.ended) {
        if (watch !== undefined) await pause();
        const next: { ended: boolean; controller?: AbortController } = { ended: false };
        try {
          // Without a resourceVersion the watch begins with every pod there is: nothing falls between it and a round.
          next.controller = await this.#watch.watch(
            `/api/v1/namespaces/${this.#namespace}/pods`,
            {},
            this.#poke,
            () => {
              next.ended = true;
              this.#poke();
            },
          );
        } catch {
          next.ended = true;
        }
        watch = next;
        // Changes made while no watch ran are seen by the next round.
        this.#dirty = true;
      }
      if (this.#dirty) {
        this.#dirty = false;
        if (!(await this.#round())) {
          // A pod deleted or changed under us: the next round sees it as it is now.
          this.#dirty = true;
          await pause();
        }
        continue;
      }
      if (watch.ended) continue;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
    watch?.controller?.abort();
  }

  /** Writes the status of each pod not done yet; false when a write or the list failed. */
  async #round(): Promise<boolean> {
    try {
      const pods = await this.#core.listNamespacedPod({ namespace: this.#namespace });
      for (const pod of pods.items) {
        const uid = pod.metadata?.uid ?? '';
        if (this.#done.has(uid) || pod.metadata?.deletionTimestamp !== undefined) continue;
        await this.#core.replaceNamespacedPodStatus({
          name: pod.metadata!.name!,
          namespace: this.#namespace,
          body: { ...pod, status: statusFor(pod, this.#fate(pod)) },
        });
        this.#done.add(uid);
      }
      return true;
    } catch {
      return false;
    }
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#wake?.();
    await this.#loop;
  }
}

/** Between two tries after a failure: short, as a test waits on it. */
function pause(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 200));
}

function statusFor(pod: V1Pod, fate: PodFate): V1Pod['status'] {
  const now = new Date();
  const container = pod.spec!.containers[0]!;
  const ready = fate === 'ready';
  return {
    phase: 'Running',
    startTime: now,
    conditions: [
      { type: 'Initialized', status: 'True', lastTransitionTime: now },
      { type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: now },
      { type: 'ContainersReady', status: ready ? 'True' : 'False', lastTransitionTime: now },
      { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
    ],
    containerStatuses: [
      {
        name: container.name,
        image: container.image ?? '',
        imageID: '',
        ready,
        started: fate !== 'crash-loop',
        restartCount: fate === 'crash-loop' ? 3 : 0,
        state:
          fate === 'crash-loop'
            ? { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed container' } }
            : { running: { startedAt: now } },
        ...(fate === 'crash-loop'
          ? { lastState: { terminated: { exitCode: 1, reason: 'Error', finishedAt: now } } }
          : {}),
      },
    ],
  };
}
