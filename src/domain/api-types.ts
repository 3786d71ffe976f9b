// The shapes the control plane's API returns, shared by the control plane and its clients (CLI, dashboard).
import type { Instance, InstanceUsage } from './instance.js';
import type { AppSpec } from './spec.js';

export interface ApplyResult {
  app: string;
  /** The release now current: a new one when anything changed, else the one already running. */
  release: number;
  created: boolean;
  /** One line per change, e.g. `~ web: instances 2 → 3`. Empty when the spec is the one already running. */
  changes: string[];
  /** Id of the last event before this apply, so a client can show what followed it. */
  eventsAfter: number;
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
