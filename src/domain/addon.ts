// Add-ons: a managed Redis or PostgreSQL server per app, the states it moves through, and how the API shows it.
import { stateMachine } from './state-machine.js';

/** The kinds of add-on Berth provisions, each a real server from Debian. */
export const ADDON_KINDS = ['redis', 'postgres'] as const;
export type AddonKind = (typeof ADDON_KINDS)[number];

export function isAddonKind(value: unknown): value is AddonKind {
  return typeof value === 'string' && (ADDON_KINDS as readonly string[]).includes(value);
}

/** The environment variable an add-on's URL is given to the app's services as, unless `as` says otherwise. */
export const DEFAULT_ADDON_ENV: Readonly<Record<AddonKind, string>> = Object.freeze({
  redis: 'REDIS_URL',
  postgres: 'DATABASE_URL',
});

/** Daily backups, the newest 7 kept (Heroku Postgres keeps 7 daily backups on its standard plans). */
export const DEFAULT_ADDON_BACKUPS: Readonly<AddonBackupPolicy> = Object.freeze({
  everyMs: 24 * 3_600_000,
  keep: 7,
});

/** Scheduled backups are at least this far apart (`backups.every`). */
export const MIN_BACKUP_INTERVAL_MS = 60_000;

export interface AddonBackupPolicy {
  /** A backup is taken when the newest one is this old (ms). */
  everyMs: number;
  /** The newest `keep` backups of the add-on are kept (scheduled and manual alike). */
  keep: number;
}

/** An add-on as berth.yaml's `addons:` declares it, defaults filled in. */
export interface AddonSpec {
  kind: AddonKind;
  /** Major version (`7`, `15`); absent: the newest installed. */
  version?: string;
  /** The environment variable (a sealed secret of the app) holding its URL. */
  as: string;
  backups: AddonBackupPolicy;
}

/**
 * `provisioning` until the server answers with its credentials set; `available` while it runs and answers;
 * `unavailable` when it exited (restarted with the crash-loop backoff, as an instance is); `stopped` when asked to
 * (`berth addons stop`: its data stays, nothing restarts it); `restoring` while a backup replaces its data;
 * `destroying` on the way out. `failed` (provisioning did not succeed: nothing of it is left) and `destroyed` are
 * final.
 */
export type AddonState =
  | 'provisioning'
  | 'available'
  | 'unavailable'
  | 'stopped'
  | 'restoring'
  | 'destroying'
  | 'destroyed'
  | 'failed';

export const ADDON_STATES = stateMachine<AddonState>('add-on', {
  provisioning: ['available', 'failed', 'destroying'],
  available: ['unavailable', 'stopped', 'restoring', 'destroying'],
  unavailable: ['available', 'stopped', 'restoring', 'destroying'],
  stopped: ['available', 'unavailable', 'restoring', 'destroying'],
  restoring: ['available', 'unavailable', 'destroying'],
  destroying: ['destroyed'],
  destroyed: [],
  failed: [],
});

/** States of an add-on whose name is taken (it exists, in whatever condition). */
export const LIVE_ADDON_STATES: readonly AddonState[] = [
  'provisioning',
  'available',
  'unavailable',
  'stopped',
  'restoring',
  'destroying',
];

export function isLiveAddon(state: AddonState): boolean {
  return LIVE_ADDON_STATES.includes(state);
}

/** What started a backup. `snapshot`: taken for a backup of the whole data directory. */
export type BackupTrigger = 'manual' | 'scheduled' | 'snapshot';

/** One backup of an add-on, as `berth addons backups` lists it. */
export interface AddonBackupView {
  id: string;
  app: string;
  /** The add-on it was taken of (it may have been destroyed since). */
  addon: string;
  kind: AddonKind;
  version: string;
  trigger: BackupTrigger;
  createdAt: number;
  sizeBytes: number;
  /** How long taking it took (ms). */
  tookMs: number;
}

/** An add-on as the API shows it: never a password. */
export interface AddonView {
  id: string;
  app: string;
  name: string;
  kind: AddonKind;
  version: string;
  state: AddonState;
  /** The loopback port the server listens on. */
  port: number;
  /** The environment variable (sealed secret) its URL is attached to the app's services as. */
  as: string;
  /** The URL with the password masked, e.g. `redis://default:****@127.0.0.1:41234`. */
  maskedUrl: string;
  createdAt: number;
  /** Why it is in its state (the last failure, with the server's last log lines). */
  reason: string | null;
  /** The server process (its supervising shim's pid) while it runs. */
  pid: number | null;
  /** When the running server was started (epoch ms). */
  startedAt: number | null;
  /** Consecutive failed runs (the crash-loop backoff counts them); 0 once it ran well. */
  failures: number;
  /** The next start of an unavailable server is not before this time (epoch ms), the backoff. */
  nextStartAt: number;
  /** Whether the app's berth.yaml (current release) declares it: such an add-on cannot be destroyed. */
  declared: boolean;
  backups: AddonBackupPolicy & { count: number; lastAt: number | null };
  /** Credentials being rotated: the previous ones still work until every instance runs with the new ones. */
  rotating: boolean;
  usage: { cpuPercent: number; memoryBytes: number } | null;
  /** The data directory of the server, inside Berth's data directory. */
  dataDir: string;
  /** The OS user the server runs as. */
  user: string;
}

/** The environment variable the add-on's password is kept under (a platform secret: `BERTH_*`, never in an env). */
export function passwordSecretName(name: string, role: 'app' | 'admin'): string {
  return `BERTH_ADDON_${name.toUpperCase().replaceAll('-', '_')}_${role === 'app' ? 'PASSWORD' : 'ADMIN_PASSWORD'}`;
}

/** The id of one run of an add-on's server: how the runtime knows it (its cgroup, log and exit file names). */
export function addonProcessId(app: string, name: string, suffix: string): string {
  // `:` is in no app or service name, so it never collides with an instance id (`app.service.hex`).
  return `${app}:${name}.${suffix}`;
}

/** The metrics series of an add-on's server: `addon:<name>` beside the app's services. */
export function addonMetricsService(name: string): string {
  return `addon:${name}`;
}
