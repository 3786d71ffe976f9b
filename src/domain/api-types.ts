// The shapes the control plane's API returns, shared by the control plane and its clients (CLI, dashboard).
import type { Deployment } from './deployment.js';
import type { Instance, InstanceUsage } from './instance.js';
import type { AppSpec } from './spec.js';

export interface ApplyResult {
  app: string;
  /** The release now current: a new one when anything changed, else the one already running. */
  release: number;
  created: boolean;
  /** What the release is: its changes, or e.g. `rollback to v3`. */
  description: string;
  /** One line per change, e.g. `~ web: instances 2 → 3`. Empty when the spec is the one already running. */
  changes: string[];
  /** Id of the last event before this apply, so a client can show what followed it. */
  eventsAfter: number;
  /** The deployment that replaces instances, or null when no process needs replacing. */
  deployment: number | null;
}

export interface ServiceStatus {
  name: string;
  release: number;
  desired: number;
  healthy: number;
  starting: number;
  unhealthy: number;
  /** Live instances of an older configuration, still to be replaced. */
  outdated: number;
  draining: number;
  converged: boolean;
}

export interface AppStatus {
  app: string;
  release: number;
  services: ServiceStatus[];
  converged: boolean;
}

export interface ReleaseRecord {
  app: string;
  version: number;
  spec: AppSpec;
  sourceDir: string;
  /** `sha256:<hex>` of the built artifact the release runs (null for releases from before artifacts). */
  artifactDigest: string | null;
  description: string;
  createdAt: number;
}

export type InstanceView = Instance & { usage: InstanceUsage | null };

export interface LogLine {
  instance: string;
  stream: 'out' | 'err';
  line: string;
  /** When the instance wrote it (epoch ms); 0 when unknown. */
  t?: number;
}

/** A deployment and the live status of its app, for following its progress. */
export interface DeploymentView {
  deployment: Deployment;
  status: AppStatus;
}

/** A release as listed, with the deployment that rolled it out (null if none replaced any process). */
export type ReleaseView = ReleaseRecord & { deployment: Deployment | null };

/** What `POST /v1/deploy` and rollback return: the release, its deployment, and the build when there was one. */
export interface DeployResult extends ApplyResult {
  build: { digest: string; commands: string[]; output: string } | null;
}

/** A Kubernetes cluster Berth deploys to (`berth targets add`): a kubeconfig file, a context, a namespace. */
export interface KubeTarget {
  name: string;
  /** Absolute path of the kubeconfig file, read by the control plane at each use (never copied). */
  kubeconfig: string;
  /** The kubeconfig's context; its current context when absent. */
  context?: string;
  namespace: string;
  /** The server's version when the target was added, e.g. `1.20`. */
  serverVersion: string;
  createdAt: number;
}

/** A pod as `berth ps` lists it for an app on a Kubernetes target: an instance there. */
export interface PodView {
  name: string;
  service: string;
  /** The release that started it (`v3`): pods of a service the release did not change stay. */
  release: string;
  phase: string;
  ready: boolean;
  restarts: number;
  startedAt: number | null;
}
