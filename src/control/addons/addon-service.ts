// Add-ons of apps: provision a server per add-on, supervise it through the runtime, rotate, back up and restore.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  type AddonBackupPolicy,
  type AddonBackupView,
  type AddonKind,
  type AddonView,
  addonProcessId,
  type BackupTrigger,
  DEFAULT_ADDON_BACKUPS,
  DEFAULT_ADDON_ENV,
  isAddonKind,
  passwordSecretName,
} from '../../domain/addon.js';
import { BerthError, type Issue } from '../../domain/errors.js';
import type { InstanceUsage } from '../../domain/instance.js';
import type { AppSpec } from '../../domain/spec.js';
import { ENV_NAME_PATTERN, NAME_PATTERN } from '../../domain/spec-schema.js';
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF, nextFailureCount } from '../../lib/backoff.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import { formatDuration } from '../../lib/duration.js';
import { allocatePort, portIsFree } from '../../lib/free-port.js';
import { type Logger, silentLogger } from '../../lib/logger.js';
import { ensurePrivateDir } from '../../lib/private-files.js';
import { formatBytes } from '../../lib/size.js';
import { every, type Ticker } from '../../lib/ticker.js';
import { describeExit, type ExitStatus, type InstanceRef, type Runtime } from '../runtime/runtime.js';
import type { EventInput, EventStore } from '../store/event-store.js';
import type { Store } from '../store/store.js';
import { type AddonEngine, generatePassword, pause, type ServerContext } from './addon-engine.js';
import type { AddonRecord, AddonStore, BackupRecord } from './addon-store.js';
import { backupDue, backupId, backupsToPrune, DESTROYED_BACKUPS_KEPT_MS } from './backup-retention.js';
import { PostgresEngine } from './postgres-engine.js';
import { RedisEngine } from './redis-engine.js';
import { lastLines } from './run-tool.js';
import { ensurePassage, resolveServerUser, type ServerUser } from './server-user.js';

/** What the add-ons need of the secrets module (`SecretsService`). */
export interface AddonSecrets {
  resolve(app: string, names: readonly string[]): Record<string, string>;
  versions(app: string, names: readonly string[]): Record<string, number>;
  set(
    app: string,
    values: Record<string, string>,
    actor: string,
    options?: { platform?: boolean; release?: boolean },
  ): unknown;
  unset(
    app: string,
    names: readonly string[],
    actor: string,
    options?: { force?: boolean; platform?: boolean; release?: boolean },
  ): unknown;
}

export interface AddonServiceOptions {
  store: AddonStore;
  /** Apps, releases, instances and deployments, read through their owner. */
  core: Pick<Store, 'getApp' | 'getRelease' | 'listInstances' | 'activeDeployment'>;
  events: EventStore;
  /** The runtime instances run on: an add-on's server is started, adopted, sampled and stopped like one. */
  runtime: Runtime;
  secrets: AddonSecrets;
  dataDir: string;
  engines?: AddonEngine[];
  /** Who servers run as; default `resolveServerUser()` (Berth's user, or `berth-addons` for a root Berth). */
  serverUser?: () => ServerUser;
  /** CPU and memory of a server, by its process id (the usage monitor's latest sample). */
  usage?: (processId: string) => InstanceUsage | null;
  clock?: Clock;
  log?: Logger;
  backoff?: BackoffOptions;
  allocatePort?: () => Promise<number>;
  /** How long a starting server has to answer; default 60 s. */
  readyTimeoutMs?: number;
  /** How often scheduled backups are looked for; default 60 s. */
  backupCheckMs?: number;
}

export interface CreateRequest {
  app: string;
  kind: string;
  name?: string;
  version?: string;
  as?: string;
  backups?: AddonBackupPolicy;
  actor: string;
  /** False when the caller makes the release (a deploy): the URL is attached without a release of its own. */
  release?: boolean;
  /** A backup file whose data the new add-on starts with. */
  seed?: string;
}

export interface AddonInfo extends AddonView {
  /** The server's last output lines (its log), newest last. */
  logTail: string[];
  /** Live instances of the app still started with the credentials a rotation retires. */
  waitingInstances: number;
}

/** What a backup of the data directory took of each add-on: a consistent dump, restored on `berth restore`. */
export interface AddonSnapshot {
  app: string;
  name: string;
  kind: AddonKind;
  version: string;
  /** Path inside the backup, e.g. `addons/snapshots/shop/cache.rdb`. */
  file: string;
}

const ACTOR = 'addons';

/** Paths of an add-on inside the data directory. */
function pathsOf(dataDir: string, app: string, name: string) {
  const root = join(dataDir, 'addons');
  const dir = join(root, app, name);
  return { root, appDir: join(root, app), dir, server: join(dir, 'server'), logs: join(dir, 'logs') };
}

/** Where an app's add-on backups are: kept apart from the add-ons, so that they outlive a destroy. */
export function backupsDirOf(dataDir: string, app: string): string {
  return join(dataDir, 'addons', 'backups', app);
}

/**
 * The add-ons of every app. Each is its own server process (redis-server, postgres), started through the runtime
 * like an instance (detached through the shim, so it outlives the control plane, and adopted again after a
 * restart); its exits come on the runtime's one exit stream and restart it with the instances' crash-loop backoff.
 * Its states are the add-on state machine's, changed only through `AddonStore.transition`. One operation at a time
 * per add-on (provision, restart, backup, restore, rotate, destroy).
 */
export class AddonService {
  readonly #store: AddonStore;
  readonly #core: AddonServiceOptions['core'];
  readonly #events: EventStore;
  readonly #runtime: Runtime;
  readonly #secrets: AddonSecrets;
  readonly #dataDir: string;
  readonly #engines: Map<AddonKind, AddonEngine>;
  readonly #serverUser: () => ServerUser;
  #user: ServerUser | undefined;
  readonly #usage: (processId: string) => InstanceUsage | null;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #backoff: BackoffOptions;
  readonly #allocatePort: () => Promise<number>;
  readonly #readyTimeoutMs: number;
  readonly #backupCheckMs: number;
  /** Exits reported by the runtime, by process id, not yet applied. */
  readonly #ended = new Map<string, ExitStatus>();
  /** The operation under way on each add-on (by id): operations on one add-on queue behind each other. */
  readonly #busy = new Map<string, Promise<unknown>>();
  readonly #stopping = new AbortController();
  #unsubscribe: (() => void) | undefined;
  #loop: Ticker | undefined;
  #backupLoop: Ticker | undefined;

  constructor(options: AddonServiceOptions) {
    this.#store = options.store;
    this.#core = options.core;
    this.#events = options.events;
    this.#runtime = options.runtime;
    this.#secrets = options.secrets;
    this.#dataDir = options.dataDir;
    this.#engines = new Map(
      (options.engines ?? [new RedisEngine(), new PostgresEngine()]).map((e) => [e.kind, e]),
    );
    this.#serverUser = options.serverUser ?? (() => resolveServerUser());
    this.#usage = options.usage ?? (() => null);
    this.#clock = options.clock ?? systemClock;
    this.#log = options.log ?? silentLogger;
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.#allocatePort = options.allocatePort ?? allocatePort;
    this.#readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
    this.#backupCheckMs = options.backupCheckMs ?? 60_000;
    // The one way an add-on learns its server ended: the runtime's exit stream (ids `app:name.hex` are ours).
    this.#unsubscribe = this.#runtime.onExit((exit) => {
      if (!exit.instanceId.includes(':')) return;
      this.#ended.set(exit.instanceId, exit.status);
      this.#loop?.kick();
    });
  }

  // Start and stop.

  /**
   * Takes over the servers an earlier control plane left running (adopted through the runtime, as instances
   * are), finishes what it left half done, then supervises until `stop`. Resolves once every server was adopted
   * (one found gone is already on the exit stream, so it is restarted, not reported as adopted).
   */
  async start(): Promise<void> {
    if (this.#loop) return;
    for (const addon of this.#store.list()) {
      if (addon.state === 'provisioning') {
        this.#run(addon.id, () =>
          this.#abandon(addon, new Error('provisioning was interrupted by a restart of the control plane')),
        );
        continue;
      }
      if (addon.state === 'destroying') {
        this.#run(addon.id, () => this.#finishDestroy(addon, 'system'));
        continue;
      }
      if (addon.process !== null) {
        try {
          await this.#runtime.adopt(this.#refOf(addon.process));
        } catch (error) {
          this.#log.warn({ addon: addon.id, err: error }, 'add-on server adoption failed');
        }
        if (!this.#ended.has(addon.process.id)) {
          this.#events.record({
            ...this.#subject(addon),
            actor: 'system',
            kind: 'addon.adopted',
            message: `${addon.app}/${addon.name} (${addon.kind}) adopted after a restart of the control plane (pid ${addon.process.pid}, ${addon.state})`,
            data: { pid: addon.process.pid, state: addon.state },
          });
        }
      }
      if (addon.state === 'restoring') {
        this.#run(addon.id, () => this.#restoreInto(addon, addon.restoreFrom, 'system', true));
      }
    }
    this.#loop = every(1000, () => this.#supervise(), {
      name: 'add-on supervision',
      log: this.#log,
      clock: this.#clock,
      immediate: true,
    });
    this.#backupLoop = every(this.#backupCheckMs, () => this.#scheduledBackups(), {
      name: 'add-on backups',
      log: this.#log,
      clock: this.#clock,
    });
  }

  /** Stops supervising (servers keep running, as instances do); operations under way are aborted and awaited. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    await this.#loop?.stop();
    await this.#backupLoop?.stop();
    this.#unsubscribe?.();
    await Promise.allSettled([...this.#busy.values()]);
  }

  /** The servers that run, as the runtime knows them: for reclaim (they are owned) and for sampling. */
  ownedRefs(): InstanceRef[] {
    return this.#store
      .list()
      .flatMap((addon) => (addon.process === null ? [] : [this.#refOf(addon.process)]));
  }

  /** The running servers, for metrics: each a series `addon:<name>` of its app. */
  servers(): { app: string; name: string; processId: string; healthy: boolean }[] {
    return this.#store.list().flatMap((addon) =>
      addon.process === null
        ? []
        : [
            {
              app: addon.app,
              name: addon.name,
              processId: addon.process.id,
              healthy: addon.state === 'available',
            },
          ],
    );
  }

  /** The variables of `app`'s add-on URLs that exist as secrets: given to every service of the app. */
  attachedNames(app: string): string[] {
    const names = this.#store
      .list({ app })
      .filter((addon) => addon.state !== 'destroying')
      .map((addon) => addon.envName);
    const versions = this.#secrets.versions(app, names);
    return names.filter((name) => (versions[name] ?? 0) > 0);
  }

  // Reading.

  list(app?: string): AddonView[] {
    return this.#store.list(app === undefined ? {} : { app }).map((addon) => this.#view(addon));
  }

  info(app: string, name: string): AddonInfo {
    const addon = this.#require(app, name);
    const logPath = addon.process?.logPath ?? this.#newestLog(addon);
    return {
      ...this.#view(addon),
      logTail: logPath === undefined ? [] : lastLogLines(logPath, 20),
      waitingInstances: addon.rotation === null ? 0 : this.#startedBefore(app, addon.rotation.since),
    };
  }

  /** Backups of an app (or of one of its add-ons, live or destroyed), oldest first. */
  listBackups(app: string, name?: string): AddonBackupView[] {
    return this.#store
      .listBackups({ app })
      .filter((backup) => name === undefined || backup.addon === name)
      .map(toBackupView);
  }

  // Creating.

  /**
   * Provisions an add-on: a fresh data directory, its server started through the runtime and answering, its
   * passwords sealed as (platform) secrets and its URL attached to the app's services as a secret. Either it ends
   * `available` or nothing of it is left (`failed`, with the server's last log lines in the error).
   */
  async create(request: CreateRequest): Promise<AddonView> {
    const plan = this.#planCreate(request);
    const { app, name, engine, version, envName } = plan;
    const user = this.#serverUserOnce();
    const started = this.#clock.now();
    const port = await this.#allocatePort();
    let addon: AddonRecord;
    try {
      addon = this.#store.insert(
        {
          id: `ad${randomBytes(5).toString('hex')}`,
          app,
          name,
          kind: engine.kind,
          version,
          port,
          envName,
          login: engine.initialLogin,
          backups: request.backups ?? DEFAULT_ADDON_BACKUPS,
        },
        {
          actor: request.actor,
          kind: 'addon.provisioning',
          app,
          message: `${app}/${name}: provisioning ${engine.kind} ${version} on 127.0.0.1:${port}${request.seed === undefined ? '' : ' from a backup'}`,
          data: { name, kind: engine.kind, version, port },
        },
      );
    } catch (error) {
      if (String((error as Error).message).includes('UNIQUE'))
        throw new BerthError('conflict', `${app} already has an add-on named ${name}`);
      throw error;
    }
    const password = generatePassword();
    const admin = generatePassword();
    this.#secrets.set(
      app,
      { [passwordSecretName(name, 'app')]: password, [passwordSecretName(name, 'admin')]: admin },
      request.actor,
      { platform: true, release: false },
    );
    await this.#exclusive(addon.id, async () => {
      try {
        const ctx = this.#context(addon, user);
        const paths = pathsOf(this.#dataDir, app, name);
        ensurePassage(user, this.#dataDir, [paths.root, paths.appDir, paths.dir]);
        await engine.initialise(ctx, request.seed, this.#stopping.signal);
        await this.#launch(addon, ctx);
        await engine.setUp(ctx, request.seed, this.#stopping.signal);
      } catch (error) {
        await this.#abandon(this.#store.get(addon.id)!, error);
        throw new BerthError(
          'runtime_failure',
          `${app}/${name}: provisioning ${engine.kind} failed: ${(error as Error).message}`,
          {
            cause: error,
          },
        );
      }
    });
    this.#secrets.set(app, { [envName]: engine.url(port, engine.initialLogin, password) }, request.actor, {
      release: request.release ?? true,
    });
    const tookMs = this.#clock.now() - started;
    const done = this.#store.transition(addon.id, 'available', null, {
      event: () => ({
        ...this.#subject(addon),
        actor: request.actor,
        kind: 'addon.available',
        message: `${app}/${name}: ${engine.kind} ${version} available on 127.0.0.1:${port} in ${formatDuration(tookMs)}; its URL is the secret ${envName}, given to every service of ${app}`,
        data: { tookMs, port, envName },
      }),
    });
    return this.#view(done);
  }

  /** Checks a create before anything happens: kind, version, names. Throws naming what is wrong. */
  #planCreate(request: CreateRequest): {
    app: string;
    name: string;
    engine: AddonEngine;
    version: string;
    envName: string;
  } {
    const { app } = request;
    if (!NAME_PATTERN.test(app))
      throw new BerthError(
        'invalid_request',
        `bad app name ${JSON.stringify(app)}: lower-case letters, digits and -, starting with a letter`,
      );
    if (!isAddonKind(request.kind)) {
      throw new BerthError(
        'invalid_request',
        `unknown add-on kind ${JSON.stringify(request.kind)}: Berth provides ${[...this.#engines.keys()].join(' and ')}`,
        { issues: [{ path: 'kind', message: `expected ${[...this.#engines.keys()].join(' or ')}` }] },
      );
    }
    const engine = this.#engines.get(request.kind)!;
    const installed = engine.versions();
    if (installed.length === 0) {
      throw new BerthError(
        'runtime_failure',
        `${engine.kind} is not installed on this machine (Debian package ${engine.debianPackage})`,
      );
    }
    const wanted = request.version?.split('.')[0];
    if (wanted !== undefined && !installed.includes(wanted)) {
      throw new BerthError(
        'invalid_request',
        `unknown ${engine.kind} version ${request.version}: this machine has ${installed.join(', ')}`,
        { issues: [{ path: 'version', message: `expected one of ${installed.join(', ')}` }] },
      );
    }
    const name = request.name ?? engine.kind;
    if (!NAME_PATTERN.test(name)) {
      throw new BerthError(
        'invalid_request',
        `bad add-on name ${JSON.stringify(name)}: lower-case letters, digits and -, starting with a letter`,
        {
          issues: [{ path: 'name', message: 'lower-case letters, digits and -, starting with a letter' }],
        },
      );
    }
    if (this.#store.find(app, name)) {
      throw new BerthError(
        'conflict',
        `${app} already has an add-on named ${name}; choose another with --name`,
        {
          issues: [{ path: 'name', message: 'taken' }],
        },
      );
    }
    const envName = request.as ?? DEFAULT_ADDON_ENV[engine.kind];
    this.#checkEnvName(app, name, envName);
    return { app, name, engine, version: wanted ?? installed[0]!, envName };
  }

  /** The URL's variable: an environment name, not the platform's, not another add-on's or a secret set by hand. */
  #checkEnvName(app: string, name: string, envName: string): void {
    if (!ENV_NAME_PATTERN.test(envName) || envName === 'PORT' || envName.startsWith('BERTH_')) {
      throw new BerthError(
        'invalid_request',
        `bad variable name ${envName}: letters, digits and _ (PORT and BERTH_* are Berth's)`,
        {
          issues: [{ path: 'as', message: 'an environment variable name, not PORT or BERTH_*' }],
        },
      );
    }
    const other = this.#store.list({ app }).find((addon) => addon.envName === envName && addon.name !== name);
    if (other) {
      throw new BerthError(
        'conflict',
        `${app}'s add-on ${other.name} is already given as ${envName}; name another variable with --as (e.g. ${name.toUpperCase().replaceAll('-', '_')}_URL)`,
        { issues: [{ path: 'as', message: `taken by add-on ${other.name}` }] },
      );
    }
    if ((this.#secrets.versions(app, [envName])[envName] ?? 0) > 0) {
      throw new BerthError(
        'conflict',
        `${app} already has a secret ${envName} (set by hand); name another variable with --as, or unset it first`,
        { issues: [{ path: 'as', message: `${envName} is a secret of ${app}` }] },
      );
    }
  }

  /**
   * The add-ons `spec` declares: each either exists as declared (its backup policy and variable brought up to
   * date) or is provisioned now, its URL attached without a release of its own (the deploy's release follows).
   * Everything is checked first: a spec that cannot be met changes nothing.
   */
  async ensureDeclared(spec: AppSpec, actor: string): Promise<void> {
    const declared = Object.entries(spec.addons ?? {});
    const issues: Issue[] = [];
    for (const [name, want] of declared) {
      const path = `addons.${name}`;
      const existing = this.#store.find(spec.app, name);
      try {
        if (existing) {
          if (existing.kind !== want.kind)
            throw new Error(
              `${spec.app} has a ${existing.kind} add-on ${name}; destroy it before declaring a ${want.kind} one`,
            );
          if (want.version !== undefined && want.version.split('.')[0] !== existing.version)
            throw new Error(
              `${name} runs ${existing.kind} ${existing.version}; a new version needs a new add-on (back up, create, restore)`,
            );
          if (want.as !== existing.envName) this.#checkEnvName(spec.app, name, want.as);
        } else {
          this.#planCreate({
            app: spec.app,
            kind: want.kind,
            name,
            version: want.version,
            as: want.as,
            actor,
          });
        }
      } catch (error) {
        issues.push({ path, message: (error as Error).message });
      }
    }
    if (issues.length > 0) {
      throw new BerthError(
        'invalid_spec',
        `${spec.app}'s add-ons cannot be provisioned as declared: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
        { issues },
      );
    }
    for (const [name, want] of declared) {
      const existing = this.#store.find(spec.app, name);
      if (!existing) {
        await this.create({
          app: spec.app,
          kind: want.kind,
          name,
          version: want.version,
          as: want.as,
          backups: want.backups,
          actor,
          release: false,
        });
        continue;
      }
      if (JSON.stringify(existing.backups) !== JSON.stringify(want.backups))
        this.#store.setBackupPolicy(existing.id, want.backups);
      if (want.as !== existing.envName) this.#renameVariable(existing, want.as, actor);
      // Declared means wanted running: a deploy starts an add-on that was stopped.
      if (existing.state === 'stopped') await this.startAddon(spec.app, name, actor);
    }
  }

  /** The URL under another variable: the new secret set, the old one removed; the deploy's release follows. */
  #renameVariable(addon: AddonRecord, envName: string, actor: string): void {
    const url = this.#secrets.resolve(addon.app, [addon.envName])[addon.envName];
    if (url !== undefined) this.#secrets.set(addon.app, { [envName]: url }, actor, { release: false });
    this.#store.setEnvName(addon.id, envName);
    this.#secrets.unset(addon.app, [addon.envName], actor, { force: true, release: false });
    this.#events.record({
      ...this.#subject(addon),
      actor,
      kind: 'addon.renamed',
      message: `${addon.app}/${addon.name}: its URL is now ${envName} (was ${addon.envName})`,
      data: { from: addon.envName, to: envName },
    });
  }

  // Stopping and starting.

  /** Stops the server (its clean shutdown, SIGKILL after 30 s); its data stays and nothing restarts it until `start`. */
  async stopAddon(app: string, name: string, actor: string): Promise<AddonView> {
    const addon = this.#require(app, name);
    if (addon.state === 'stopped') return this.#view(addon);
    if (addon.state !== 'available' && addon.state !== 'unavailable')
      throw new BerthError('conflict', `${app}/${name} is ${addon.state}; stop it once that is done`);
    await this.#exclusive(addon.id, async () => {
      const current = this.#store.get(addon.id)!;
      await this.#stopServer(current);
      this.#store.setBackoff(addon.id, 0, 0);
      this.#store.transition(addon.id, 'stopped', null, {
        event: (before) => ({
          ...this.#subject(addon),
          actor,
          kind: 'addon.stopped',
          message: `${app}/${name} (${addon.kind}) stopped (was ${before.state}); its data is kept, \`berth addons start\` starts it again`,
          data: { was: before.state },
        }),
      });
    });
    return this.#view(this.#store.get(addon.id)!);
  }

  /** Starts a stopped add-on's server; a start that fails leaves it `unavailable`, retried with the backoff. */
  async startAddon(app: string, name: string, actor: string): Promise<AddonView> {
    const addon = this.#require(app, name);
    if (addon.state !== 'stopped') return this.#view(addon);
    await this.#exclusive(addon.id, async () => {
      try {
        await this.#ensurePort(addon);
        const current = this.#store.get(addon.id)!;
        await this.#launch(current, this.#context(current));
      } catch (error) {
        await this.#stopServer(this.#store.get(addon.id)!);
        const reason = `failed to start: ${describeFailure(error)}`;
        this.#store.setBackoff(addon.id, 1, this.#clock.now() + this.#backoff.initialMs);
        this.#store.transition(addon.id, 'unavailable', reason, {
          event: () => ({
            ...this.#subject(addon),
            actor,
            kind: 'addon.failed_to_start',
            message: `${app}/${name} (${addon.kind}) ${reason}; retried with the crash-loop backoff`,
            data: { reason },
          }),
        });
        throw new BerthError('runtime_failure', `${app}/${name}: ${reason}`, { cause: error });
      }
      const started = this.#store.get(addon.id)!;
      this.#store.transition(addon.id, 'available', null, {
        event: () => ({
          ...this.#subject(addon),
          actor,
          kind: 'addon.started',
          message: `${app}/${name} (${addon.kind}) started (pid ${started.process?.pid}, port ${started.port})`,
          data: { pid: started.process?.pid, port: started.port },
        }),
      });
    });
    return this.#view(this.#store.get(addon.id)!);
  }

  // Destroying.

  /**
   * Stops the server, deletes its data and its secrets (the app's services roll without the URL). Refused unless
   * `confirm` is the app's name, and while the app's berth.yaml still declares the add-on or a service names its
   * variable. Its backups are kept for 7 days.
   */
  async destroy(
    app: string,
    name: string,
    confirm: string | undefined,
    actor: string,
  ): Promise<{ backupsKept: number }> {
    const addon = this.#require(app, name);
    if (confirm !== app) {
      throw new BerthError(
        'invalid_request',
        `destroying ${app}/${name} deletes its data; confirm with the app's name: --confirm ${app}`,
      );
    }
    const release = this.#currentRelease(app);
    if (release?.spec.addons?.[name] !== undefined) {
      throw new BerthError(
        'conflict',
        `${app}'s berth.yaml (release v${release.version}) declares add-on ${name}; remove it from addons: and deploy before destroying it`,
      );
    }
    const users = Object.values(release?.spec.services ?? {})
      .filter((service) => service.secrets.includes(addon.envName))
      .map((service) => service.name);
    if (users.length > 0) {
      throw new BerthError(
        'conflict',
        `${app}'s services ${users.join(', ')} name ${addon.envName} in secrets: (release v${release!.version}); remove it and deploy before destroying ${name}`,
      );
    }
    await this.#exclusive(addon.id, async () => {
      const current = this.#store.get(addon.id)!;
      this.#store.transition(addon.id, 'destroying', null, {
        event: (before) => ({
          ...this.#subject(addon),
          actor,
          kind: 'addon.destroying',
          message: `${app}/${name}: destroying (was ${before.state})`,
          data: { was: before.state },
        }),
      });
      await this.#finishDestroy(current, actor);
    });
    return { backupsKept: this.#store.listBackups({ addonId: addon.id }).length };
  }

  /** Deletes a stopped server's files: its directory, and what its engine kept elsewhere. */
  #removeServerFiles(addon: AddonRecord): void {
    const { dir } = pathsOf(this.#dataDir, addon.app, addon.name);
    rmSync(dir, { recursive: true, force: true });
    this.#engineOf(addon).forget?.(join(dir, 'server'));
  }

  async #finishDestroy(addon: AddonRecord, actor: string): Promise<void> {
    await this.#stopServer(addon);
    this.#removeServerFiles(addon);
    this.#forgetSecrets(addon, actor, true);
    const kept = this.#store.listBackups({ addonId: addon.id }).length;
    this.#store.transition(addon.id, 'destroyed', null, {
      event: () => ({
        ...this.#subject(addon),
        actor,
        kind: 'addon.destroyed',
        message: `${addon.app}/${addon.name} destroyed: server stopped, data and ${addon.envName} deleted${kept > 0 ? `; its ${kept} backups are kept for ${formatDuration(DESTROYED_BACKUPS_KEPT_MS)}` : ''}`,
        data: { backupsKept: kept },
      }),
    });
  }

  /** Deletes the add-on's secrets; with `url`, its URL too (the app's services roll without it). */
  #forgetSecrets(addon: AddonRecord, actor: string, url: boolean): void {
    const platform = [passwordSecretName(addon.name, 'app'), passwordSecretName(addon.name, 'admin')];
    const existing = (names: string[]): string[] => {
      const versions = this.#secrets.versions(addon.app, names);
      return names.filter((n) => (versions[n] ?? 0) > 0);
    };
    const owned = existing(platform);
    if (owned.length > 0)
      this.#secrets.unset(addon.app, owned, actor, { force: true, platform: true, release: false });
    if (url && existing([addon.envName]).length > 0)
      this.#secrets.unset(addon.app, [addon.envName], actor, { force: true });
  }

  // Rotating.

  /**
   * New credentials: the server accepts the new password beside the old one, the URL secret changes (a new release:
   * the app's services roll health-gated), and once no instance started with the old URL runs, it is revoked.
   */
  async rotate(app: string, name: string, actor: string): Promise<AddonView> {
    const addon = this.#require(app, name);
    if (addon.state !== 'available')
      throw new BerthError('conflict', `${app}/${name} is ${addon.state}; rotate it once it is available`);
    if (addon.rotation !== null) {
      throw new BerthError(
        'conflict',
        `${app}/${name} is being rotated: ${this.#startedBefore(app, addon.rotation.since)} instances still run with the previous credentials`,
      );
    }
    const deployment = this.#core.activeDeployment(app);
    if (deployment) {
      throw new BerthError(
        'conflict',
        `${app} is being deployed (v${deployment.toRelease}); rotate once the deployment ends, so that it rolls the new URL out`,
      );
    }
    return this.#exclusive(addon.id, async () => {
      const current = this.#store.get(addon.id)!;
      const engine = this.#engineOf(current);
      const password = generatePassword();
      const { login, retiring } = await engine.beginRotation(this.#context(current), password);
      const since = this.#clock.now();
      // The server already takes the new password beside the old: what Berth records of it lands at once, so a
      // control plane killed here leaves either the old credentials (still working) or the whole rotation.
      this.#store.transaction(() => {
        this.#secrets.set(app, { [passwordSecretName(name, 'app')]: password }, actor, {
          platform: true,
          release: false,
        });
        this.#store.setLogin(current.id, login);
        this.#store.setRotation(current.id, { since, ...retiring });
        this.#events.record({
          ...this.#subject(current),
          actor,
          kind: 'addon.rotating',
          message: `${app}/${name}: new credentials (login ${login}); the previous ones work until every instance of ${app} runs with the new ${current.envName}`,
          data: { login, retiring: retiring.login },
        });
        // The new URL is a new secret version: a new release, rolled health-gated.
        this.#secrets.set(app, { [current.envName]: engine.url(current.port, login, password) }, actor);
      });
      this.#loop?.kick();
      return this.#view(this.#store.get(current.id)!);
    });
  }

  /** Revokes the credentials a rotation retired, once no live instance of the app was started before it. */
  async #finishRotation(addon: AddonRecord): Promise<void> {
    const rotation = addon.rotation;
    if (rotation === null) return;
    await this.#engineOf(addon).endRotation(this.#context(addon), rotation);
    this.#store.setRotation(addon.id, null);
    this.#events.record({
      ...this.#subject(addon),
      actor: ACTOR,
      kind: 'addon.rotated',
      message: `${addon.app}/${addon.name}: previous credentials (${rotation.login}) revoked; every instance runs with the new ${addon.envName}`,
      data: { revoked: rotation.login },
    });
  }

  #startedBefore(app: string, since: number): number {
    return this.#core.listInstances({ app, live: true }).filter((instance) => instance.createdAt < since)
      .length;
  }

  // Backups.

  /** A backup into the data directory (Redis: BGSAVE and a copy of the RDB; PostgreSQL: pg_dump -Fc). */
  async backup(
    app: string,
    name: string,
    actor: string,
    trigger: BackupTrigger = 'manual',
  ): Promise<AddonBackupView> {
    const addon = this.#require(app, name);
    return this.#exclusive(addon.id, async () => {
      const record = await this.#backupNow(this.#store.get(addon.id)!, trigger, actor);
      return toBackupView(record);
    });
  }

  async #backupNow(addon: AddonRecord, trigger: BackupTrigger, actor: string): Promise<BackupRecord> {
    if (addon.state !== 'available') {
      throw new BerthError(
        'conflict',
        `${addon.app}/${addon.name} is ${addon.state}: only a running server can be backed up`,
      );
    }
    const engine = this.#engineOf(addon);
    const dir = backupsDirOf(this.#dataDir, addon.app);
    ensurePrivateDir(join(this.#dataDir, 'addons', 'backups'));
    ensurePrivateDir(dir);
    const started = this.#clock.now();
    const id = backupId(
      addon.name,
      started,
      (candidate) => this.#store.getBackup(addon.app, candidate) !== undefined,
    );
    const file = `${id}.${engine.backupExtension}`;
    const path = join(dir, file);
    try {
      await writeWhole(path, (partial) =>
        engine.backup(this.#context(addon), partial, this.#stopping.signal),
      );
    } catch (error) {
      const reason = describeFailure(error);
      this.#events.record({
        ...this.#subject(addon),
        actor,
        kind: 'addon.backup_failed',
        message: `${addon.app}/${addon.name}: ${trigger} backup failed: ${reason}; the server keeps running and no backup file was kept`,
        data: { trigger, reason },
      });
      throw new BerthError(
        'runtime_failure',
        `backup of ${addon.app}/${addon.name} failed: ${reason}; the server keeps running and no backup file was kept`,
        { cause: error },
      );
    }
    const record: BackupRecord = {
      id,
      app: addon.app,
      addon: addon.name,
      addonId: addon.id,
      kind: addon.kind,
      version: addon.version,
      trigger,
      createdAt: started,
      sizeBytes: statSync(path).size,
      tookMs: this.#clock.now() - started,
      file,
    };
    this.#store.transaction(() => {
      this.#store.insertBackup(record);
      this.#events.record({
        ...this.#subject(addon),
        actor,
        kind: 'addon.backup_created',
        message: `${addon.app}/${addon.name}: ${trigger} backup ${id} (${formatBytes(record.sizeBytes)} in ${formatDuration(record.tookMs)})`,
        data: { id, trigger, sizeBytes: record.sizeBytes, tookMs: record.tookMs },
      });
    });
    this.#prune(addon);
    return record;
  }

  /** Deletes the backups beyond the add-on's `keep`, oldest first. */
  #prune(addon: AddonRecord): void {
    const policy = this.#store.get(addon.id)?.backups ?? addon.backups;
    const pruned = backupsToPrune(this.#store.listBackups({ addonId: addon.id }), policy.keep);
    for (const backup of pruned) this.#deleteBackup(backup);
    if (pruned.length > 0) {
      this.#events.record({
        ...this.#subject(addon),
        actor: ACTOR,
        kind: 'addon.backups_pruned',
        message: `${addon.app}/${addon.name}: ${pruned.length} backups beyond the newest ${policy.keep} deleted (${pruned.map((b) => b.id).join(', ')})`,
        data: { deleted: pruned.map((b) => b.id), keep: policy.keep },
      });
    }
  }

  #deleteBackup(backup: BackupRecord): void {
    rmSync(join(backupsDirOf(this.#dataDir, backup.app), backup.file), { force: true });
    this.#store.deleteBackup(backup.app, backup.id);
  }

  /** Takes the backups that are due (each add-on's `backups.every`), and forgets those of long-destroyed add-ons. */
  async #scheduledBackups(): Promise<void> {
    const now = this.#clock.now();
    for (const addon of this.#store.list({ all: true })) {
      if (addon.state === 'destroyed' && now - addon.updatedAt >= DESTROYED_BACKUPS_KEPT_MS) {
        for (const backup of this.#store.listBackups({ addonId: addon.id })) this.#deleteBackup(backup);
        continue;
      }
      if (addon.state !== 'available' || this.#busy.has(addon.id)) continue;
      const backups = this.#store.listBackups({ addonId: addon.id });
      if (!backupDue(backups, addon.createdAt, addon.backups.everyMs, now)) continue;
      // Failures are events (and the next check tries again); the loop goes on with the other add-ons.
      await this.#exclusive(addon.id, () =>
        this.#backupNow(this.#store.get(addon.id)!, 'scheduled', 'schedule'),
      ).catch((error: unknown) =>
        this.#log.warn({ err: error, addon: `${addon.app}/${addon.name}` }, 'scheduled backup failed'),
      );
    }
  }

  /**
   * A consistent dump of every available add-on into `dir` (a backup of the whole data directory): returned so
   * the backup's manifest lists them and `berth restore` loads them.
   */
  async snapshot(dir: string): Promise<AddonSnapshot[]> {
    const taken: AddonSnapshot[] = [];
    for (const addon of this.#store.list()) {
      if (addon.state !== 'available') continue;
      const engine = this.#engineOf(addon);
      const file = join('addons', 'snapshots', addon.app, `${addon.name}.${engine.backupExtension}`);
      ensurePrivateDir(join(dir, 'addons', 'snapshots', addon.app));
      await this.#exclusive(addon.id, () =>
        writeWhole(join(dir, file), (partial) =>
          engine.backup(this.#context(this.#store.get(addon.id)!), partial, this.#stopping.signal),
        ),
      );
      taken.push({ app: addon.app, name: addon.name, kind: addon.kind, version: addon.version, file });
    }
    return taken;
  }

  // Restoring.

  /**
   * Loads backup `backupId` into add-on `name` of `app`: an existing one of the same kind (its data replaced; the
   * data it had is put back if the backup does not load), or a new one provisioned from it.
   */
  async restore(app: string, name: string, backupId: string, actor: string): Promise<AddonView> {
    const backup = this.#store.getBackup(app, backupId);
    if (!backup) {
      const known = this.#store.listBackups({ app }).map((b) => b.id);
      throw new BerthError(
        'not_found',
        `${app} has no add-on backup ${backupId}${known.length > 0 ? `; its backups: ${known.slice(-5).join(', ')}` : ''}`,
      );
    }
    const file = join(backupsDirOf(this.#dataDir, app), backup.file);
    if (!existsSync(file))
      throw new BerthError('not_found', `the file of backup ${backupId} is gone (${file})`);
    const existing = this.#store.find(app, name);
    if (!existing) {
      return this.create({ app, kind: backup.kind, name, version: backup.version, actor, seed: file });
    }
    if (existing.kind !== backup.kind) {
      throw new BerthError(
        'conflict',
        `${backupId} is a ${backup.kind} backup; ${app}/${name} is ${existing.kind}`,
      );
    }
    if (existing.state !== 'available' && existing.state !== 'unavailable')
      throw new BerthError('conflict', `${app}/${name} is ${existing.state}; restore once it is available`);
    if (existing.rotation !== null)
      throw new BerthError('conflict', `${app}/${name} is being rotated; restore once the rotation is done`);
    await this.#exclusive(existing.id, () =>
      this.#restoreInto(this.#store.get(existing.id)!, backupId, actor, false),
    );
    return this.#view(this.#store.get(existing.id)!);
  }

  /**
   * Replaces the add-on's data by a backup's (`null`: fresh, empty data): the server stopped, its data set aside,
   * fresh data laid out from the backup and the server started on it; the old data is deleted only once the new
   * answers, and put back otherwise. `resumed`: a restore an earlier control plane (or `berth restore`) began.
   */
  async #restoreInto(
    addon: AddonRecord,
    backupId: string | null,
    actor: string,
    resumed: boolean,
  ): Promise<void> {
    const backup = backupId === null ? undefined : this.#store.getBackup(addon.app, backupId);
    const seed = backup === undefined ? undefined : join(backupsDirOf(this.#dataDir, addon.app), backup.file);
    if (!resumed) {
      this.#store.transition(addon.id, 'restoring', null, {
        facts: { restoreFrom: backupId },
        event: (before) => ({
          ...this.#subject(addon),
          actor,
          kind: 'addon.restoring',
          message: `${addon.app}/${addon.name}: restoring ${backupId} (was ${before.state}); the server is stopped meanwhile`,
          data: { backup: backupId, was: before.state },
        }),
      });
    }
    const started = this.#clock.now();
    await this.#stopServer(addon);
    const paths = pathsOf(this.#dataDir, addon.app, addon.name);
    const aside = `${paths.server}.before-restore`;
    if (existsSync(paths.server)) {
      rmSync(aside, { recursive: true, force: true });
      renameSync(paths.server, aside);
    }
    const engine = this.#engineOf(addon);
    const user = this.#serverUserOnce();
    try {
      if (seed !== undefined && !existsSync(seed)) throw new Error(`the file of backup ${backupId} is gone`);
      ensurePassage(user, this.#dataDir, [paths.root, paths.appDir, paths.dir]);
      await this.#ensurePort(addon);
      const ctx = this.#context(this.#store.get(addon.id)!, user);
      await engine.initialise(ctx, seed, this.#stopping.signal);
      await this.#launch(this.#store.get(addon.id)!, ctx);
      await engine.setUp(ctx, seed, this.#stopping.signal);
    } catch (error) {
      const reason = describeFailure(error);
      await this.#stopServer(this.#store.get(addon.id)!);
      if (existsSync(aside)) {
        rmSync(paths.server, { recursive: true, force: true });
        renameSync(aside, paths.server);
      }
      this.#store.transition(addon.id, 'unavailable', `restore of ${backupId} failed: ${reason}`, {
        facts: { restoreFrom: null },
        event: () => ({
          ...this.#subject(addon),
          actor,
          kind: 'addon.restore_failed',
          message: `${addon.app}/${addon.name}: restore of ${backupId} failed: ${reason}${existsSync(paths.server) ? '; its previous data is back and its server starts again' : ''}`,
          data: { backup: backupId, reason },
        }),
      });
      this.#store.setBackoff(addon.id, 0, 0);
      this.#loop?.kick();
      throw new BerthError(
        'runtime_failure',
        `restore of ${backupId} into ${addon.app}/${addon.name} failed: ${reason}`,
        {
          cause: error,
        },
      );
    }
    rmSync(aside, { recursive: true, force: true });
    this.#store.setBackoff(addon.id, 0, 0);
    this.#store.transition(addon.id, 'available', null, {
      facts: { restoreFrom: null },
      event: () => ({
        ...this.#subject(addon),
        actor,
        kind: 'addon.restored',
        message: `${addon.app}/${addon.name}: ${backupId === null ? 'started with empty data (there was no backup to restore)' : `restored from ${backupId}`} in ${formatDuration(this.#clock.now() - started)}`,
        data: { backup: backupId },
      }),
    });
  }

  // Supervision: the exit stream, restarts with backoff, rotations to finish.

  /** One pass: apply exits, start what is due, finish rotations. Returns when to look again. */
  async #supervise(): Promise<number | undefined> {
    const now = this.#clock.now();
    let wakeAt = Number.POSITIVE_INFINITY;
    const current = new Set<string>();
    for (const addon of this.#store.list()) {
      if (addon.process !== null) current.add(addon.process.id);
      if (this.#busy.has(addon.id)) continue;
      if (addon.process !== null && this.#ended.has(addon.process.id)) {
        this.#exited(addon, this.#ended.get(addon.process.id)!);
        continue;
      }
      if (addon.state === 'available' && addon.process === null) {
        // Recorded available with no process (a restore of the data directory): it starts like a crashed one.
        this.#store.transition(addon.id, 'unavailable', 'no server process', {
          event: () => ({
            ...this.#subject(addon),
            actor: ACTOR,
            kind: 'addon.unavailable',
            message: `${addon.app}/${addon.name}: no server runs; starting it`,
          }),
        });
        this.#loop?.kick();
        continue;
      }
      if (addon.state === 'unavailable' && addon.process === null) {
        if (now >= addon.nextStartAt) this.#run(addon.id, () => this.#restart(addon));
        else wakeAt = Math.min(wakeAt, addon.nextStartAt);
        continue;
      }
      if (addon.state === 'available' && addon.rotation !== null) {
        const waiting = this.#startedBefore(addon.app, addon.rotation.since);
        if (waiting === 0 && !this.#core.activeDeployment(addon.app)) {
          this.#run(addon.id, () => this.#finishRotation(addon));
        }
      }
    }
    // Reports of processes no add-on runs any more (stopped by an operation, reported late) are done with.
    for (const id of [...this.#ended.keys()]) if (!current.has(id)) this.#ended.delete(id);
    return Number.isFinite(wakeAt) ? Math.max(0, wakeAt - now) : undefined;
  }

  /** The server ended without being asked: `unavailable`, counted toward the backoff, started again when due. */
  #exited(addon: AddonRecord, status: ExitStatus): void {
    const process = addon.process!;
    this.#ended.delete(process.id);
    const now = this.#clock.now();
    const upMs = now - process.startedAt;
    const failures = nextFailureCount(addon.failures, upMs, this.#backoff);
    const delay = backoffDelay(failures, this.#backoff);
    const tail = lastLines(lastLogLines(process.logPath, 5).join('\n'), 5);
    const reason = `${describeExit(status)} after ${formatDuration(upMs)}${tail === '' ? '' : `; last output: ${tail}`}`;
    this.#store.transaction(() => {
      this.#store.setProcess(addon.id, null);
      this.#store.setBackoff(addon.id, failures, now + delay);
      if (addon.state === 'available') {
        this.#store.transition(addon.id, 'unavailable', reason, {
          event: () => ({
            ...this.#subject(addon),
            actor: ACTOR,
            kind: 'addon.crashed',
            message:
              `${addon.app}/${addon.name} (${addon.kind}) ${reason}; ` +
              (delay === 0
                ? 'restarting it now'
                : `${failures} failures in a row, next start in ${formatDuration(delay)} (crash-loop backoff)`),
            data: { exitCode: status.code, signal: status.signal, upMs, failures, backoffMs: delay },
          }),
        });
      } else {
        this.#store.setReason(addon.id, reason);
      }
    });
    this.#loop?.kick();
  }

  /** Starts an unavailable add-on's server again; a start that fails counts toward the backoff. */
  async #restart(addon: AddonRecord): Promise<void> {
    const paths = pathsOf(this.#dataDir, addon.app, addon.name);
    const now = this.#clock.now();
    try {
      if (!existsSync(paths.server))
        throw new Error(
          `its data directory ${paths.server} is missing; restore a backup: berth addons restore ${addon.app} ${addon.name} BACKUP`,
        );
      await this.#ensurePort(addon);
      await this.#launch(this.#store.get(addon.id)!, this.#context(this.#store.get(addon.id)!));
    } catch (error) {
      await this.#stopServer(this.#store.get(addon.id)!);
      const failures = addon.failures + 1;
      const delay = Math.max(backoffDelay(failures, this.#backoff), this.#backoff.initialMs);
      const reason = `failed to start: ${describeFailure(error)}`;
      this.#store.setBackoff(addon.id, failures, now + delay);
      this.#store.setReason(addon.id, reason);
      this.#events.record({
        ...this.#subject(addon),
        actor: ACTOR,
        kind: 'addon.failed_to_start',
        message: `${addon.app}/${addon.name} (${addon.kind}) ${reason}; ${failures} failures in a row, next start in ${formatDuration(delay)} (crash-loop backoff)`,
        data: { reason, failures, backoffMs: delay },
      });
      return;
    }
    const record = this.#store.get(addon.id)!;
    this.#store.transition(addon.id, 'available', null, {
      event: () => ({
        ...this.#subject(addon),
        actor: ACTOR,
        kind: 'addon.restarted',
        message: `${addon.app}/${addon.name} (${addon.kind}) restarted (pid ${record.process?.pid}, port ${record.port})`,
        data: { pid: record.process?.pid, port: record.port },
      }),
    });
  }

  /**
   * Starts the server through the runtime and waits until it answers. Rejects (the process left running, for the
   * caller to stop) when it exits first, with its last output lines, or does not answer in time.
   */
  async #launch(addon: AddonRecord, ctx: ServerContext): Promise<void> {
    const engine = this.#engineOf(addon);
    const paths = pathsOf(this.#dataDir, addon.app, addon.name);
    ensurePrivateDir(paths.logs);
    const processId = addonProcessId(addon.app, addon.name, randomBytes(3).toString('hex'));
    const logPath = join(paths.logs, `${processId}.log`);
    const command = engine.prepareStart(ctx);
    const handle = await this.#runtime.start({
      instanceId: processId,
      cwd: ctx.dir,
      command,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8' },
      logPath,
      scrub: {
        [passwordSecretName(addon.name, 'app')]: ctx.password,
        [passwordSecretName(addon.name, 'admin')]: ctx.admin,
      },
    });
    this.#store.setProcess(addon.id, { id: processId, ...handle, logPath, startedAt: this.#clock.now() });
    this.#pruneLogs(paths.logs, logPath);
    const deadline = this.#clock.now() + this.#readyTimeoutMs;
    for (;;) {
      const ended = this.#ended.get(processId);
      if (ended !== undefined) {
        this.#ended.delete(processId);
        this.#store.setProcess(addon.id, null);
        throw new Error(
          `the server ${describeExit(ended)} at start; last output: ${lastLines(lastLogLines(logPath, 8).join('\n'), 8)}`,
        );
      }
      if (await engine.probe(ctx)) return;
      if (this.#clock.now() > deadline) {
        throw new Error(
          `the server did not answer within ${formatDuration(this.#readyTimeoutMs)}; last output: ${lastLines(lastLogLines(logPath, 8).join('\n'), 8)}`,
        );
      }
      await pause(50, this.#stopping.signal);
    }
  }

  /**
   * Stops the add-on's server if one runs (its engine's clean-shutdown signal to its group, SIGKILL after 30 s) and
   * forgets it.
   */
  async #stopServer(addon: AddonRecord): Promise<void> {
    if (addon.process === null) return;
    await this.#runtime.stop(this.#refOf(addon.process), 30_000, this.#engineOf(addon).stopSignal);
    this.#ended.delete(addon.process.id);
    this.#store.setProcess(addon.id, null);
  }

  /**
   * The recorded port, if nothing else took it meanwhile; else a new one, and the URL secret follows (the app's
   * services roll onto it).
   */
  async #ensurePort(addon: AddonRecord): Promise<void> {
    if (await portIsFree(addon.port)) return;
    const port = await this.#allocatePort();
    this.#store.setPort(addon.id, port);
    const moved = this.#store.get(addon.id)!;
    this.#events.record({
      ...this.#subject(addon),
      actor: ACTOR,
      kind: 'addon.port_moved',
      message: `${addon.app}/${addon.name}: port ${addon.port} is taken by another process; the server moves to ${port} and ${addon.envName} follows (the app's services roll)`,
      data: { from: addon.port, to: port },
    });
    const ctx = this.#context(moved);
    if ((this.#secrets.versions(addon.app, [addon.envName])[addon.envName] ?? 0) > 0) {
      this.#secrets.set(
        addon.app,
        { [addon.envName]: this.#engineOf(addon).url(port, ctx.login, ctx.password) },
        ACTOR,
      );
    }
  }

  /** Provisioning did not succeed: the server stopped, its data and secrets deleted, `failed` with the reason. */
  async #abandon(addon: AddonRecord, error: unknown): Promise<void> {
    const reason = describeFailure(error);
    await this.#stopServer(addon).catch(() => undefined);
    this.#removeServerFiles(addon);
    this.#forgetSecrets(addon, ACTOR, false);
    this.#store.transition(addon.id, 'failed', reason, {
      event: () => ({
        ...this.#subject(addon),
        actor: ACTOR,
        kind: 'addon.failed',
        message: `${addon.app}/${addon.name}: provisioning ${addon.kind} failed: ${reason}; nothing of it was kept`,
        data: { reason },
      }),
    });
  }

  // Helpers.

  #context(addon: AddonRecord, user = this.#serverUserOnce()): ServerContext {
    const names = [passwordSecretName(addon.name, 'app'), passwordSecretName(addon.name, 'admin')];
    const values = this.#secrets.resolve(addon.app, names);
    return {
      dir: pathsOf(this.#dataDir, addon.app, addon.name).server,
      port: addon.port,
      version: addon.version,
      user,
      login: addon.login,
      password: values[names[0]!]!,
      admin: values[names[1]!]!,
    };
  }

  /** The server user's name for a view, without creating it (a root Berth creates it on first provision). */
  #serverUserName(): string {
    try {
      return this.#serverUserOnce().name;
    } catch {
      return '';
    }
  }

  #serverUserOnce(): ServerUser {
    this.#user ??= this.#serverUser();
    return this.#user;
  }

  #engineOf(addon: AddonRecord): AddonEngine {
    const engine = this.#engines.get(addon.kind);
    if (!engine) throw new BerthError('internal', `no engine for ${addon.kind}`);
    return engine;
  }

  #refOf(process: NonNullable<AddonRecord['process']>): InstanceRef {
    return {
      instanceId: process.id,
      pid: process.pid,
      processStart: process.processStart,
      logPath: process.logPath,
    };
  }

  #require(app: string, name: string): AddonRecord {
    const addon = this.#store.find(app, name);
    if (!addon) {
      const names = this.#store.list({ app }).map((a) => a.name);
      throw new BerthError(
        'not_found',
        `${app} has no add-on ${name}${names.length > 0 ? `; its add-ons: ${names.join(', ')}` : ''}`,
      );
    }
    return addon;
  }

  #currentRelease(app: string) {
    const record = this.#core.getApp(app);
    return record && this.#core.getRelease(app, record.currentRelease);
  }

  #subject(addon: AddonRecord): Pick<EventInput, 'app' | 'service' | 'instance'> {
    return { app: addon.app, service: `addon:${addon.name}`, instance: addon.process?.id ?? null };
  }

  /** The log of the add-on's latest server start (none runs now): where its last words are. */
  #newestLog(addon: AddonRecord): string | undefined {
    return serverLogs(pathsOf(this.#dataDir, addon.app, addon.name).logs).at(-1)?.path;
  }

  /** Keeps the server logs (one per start) of the newest five starts, `current` always among them. */
  #pruneLogs(dir: string, current: string): void {
    const logs = serverLogs(dir).filter((log) => log.path !== current);
    for (const log of logs.slice(0, Math.max(0, logs.length - (SERVER_LOGS_KEPT - 1)))) {
      rmSync(log.path, { force: true });
      // And what the runtime recorded beside it (the process runtime's `<id>.exit`).
      rmSync(log.path.replace(/\.log$/, '.exit'), { force: true });
    }
  }

  #view(addon: AddonRecord): AddonView {
    const engine = this.#engineOf(addon);
    const backups = this.#store.listBackups({ addonId: addon.id });
    const release = this.#currentRelease(addon.app);
    return {
      id: addon.id,
      app: addon.app,
      name: addon.name,
      kind: addon.kind,
      version: addon.version,
      state: addon.state,
      port: addon.port,
      as: addon.envName,
      maskedUrl: engine.url(addon.port, addon.login, '****'),
      createdAt: addon.createdAt,
      reason: addon.reason,
      pid: addon.process?.pid ?? null,
      startedAt: addon.process?.startedAt ?? null,
      failures: addon.failures,
      nextStartAt: addon.nextStartAt,
      declared: release?.spec.addons?.[addon.name] !== undefined,
      backups: { ...addon.backups, count: backups.length, lastAt: backups.at(-1)?.createdAt ?? null },
      rotating: addon.rotation !== null,
      usage: addon.process === null ? null : this.#usage(addon.process.id),
      dataDir: pathsOf(this.#dataDir, addon.app, addon.name).server,
      user: this.#user?.name ?? this.#serverUserName(),
    };
  }

  /** Runs `task` as the add-on's operation in the background (supervision); failures are logged. */
  #run(id: string, task: () => Promise<void>): void {
    void this.#exclusive(id, task).catch((error: unknown) =>
      this.#log.error({ err: error, addon: id }, 'add-on operation failed'),
    );
  }

  /** Runs `task` after the add-on's operation under way, if any: one at a time per add-on. */
  #exclusive<T>(id: string, task: () => Promise<T>): Promise<T> {
    const before = this.#busy.get(id) ?? Promise.resolve();
    const result = before.then(task);
    const tracked: Promise<unknown> = result
      .catch(() => undefined)
      .finally(() => {
        if (this.#busy.get(id) === tracked) {
          this.#busy.delete(id);
          this.#loop?.kick();
        }
      });
    this.#busy.set(id, tracked);
    return result;
  }
}

/** Server logs kept per add-on: one per start, the newest five. */
const SERVER_LOGS_KEPT = 5;

/** The server logs in `dir`, oldest first. */
function serverLogs(dir: string): { path: string; mtime: number }[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((name) => name.endsWith('.log'))
    .map((name) => ({ path: join(dir, name), mtime: statSync(join(dir, name)).mtimeMs }))
    .sort((a, b) => a.mtime - b.mtime);
}

function toBackupView(backup: BackupRecord): AddonBackupView {
  return {
    id: backup.id,
    app: backup.app,
    addon: backup.addon,
    kind: backup.kind,
    version: backup.version,
    trigger: backup.trigger,
    createdAt: backup.createdAt,
    sizeBytes: backup.sizeBytes,
    tookMs: backup.tookMs,
  };
}

/**
 * Writes `path` whole or not at all: `write` fills `<path>.partial`, which is flushed to disk and renamed into
 * place; on any failure (a full disk) the partial file is deleted, so no half file ever has a backup's name.
 */
async function writeWhole(path: string, write: (partial: string) => Promise<void>): Promise<void> {
  const partial = `${path}.partial`;
  try {
    await write(partial);
    const fd = openSync(partial, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(partial, path);
  } catch (error) {
    rmSync(partial, { force: true });
    throw error;
  }
}

/** The last `count` lines an add-on's server wrote (its JSON-lines log), newest last. */
export function lastLogLines(path: string, count: number): string[] {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return [];
  }
  try {
    const size = statSync(path).size;
    const length = Math.min(size, 64 * 1024);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    const lines: string[] = [];
    for (const raw of buffer.toString('utf8').split('\n')) {
      try {
        const parsed = JSON.parse(raw) as { l?: unknown };
        if (typeof parsed.l === 'string') lines.push(parsed.l);
      } catch {
        // A line cut by the 64 KiB window, or not JSON.
      }
    }
    return lines.slice(-count);
  } finally {
    closeSync(fd);
  }
}

function describeFailure(error: unknown): string {
  const errno = error as NodeJS.ErrnoException;
  if (errno.code === 'ENOSPC') return `no space left on the device (${errno.message})`;
  return error instanceof Error ? error.message : String(error);
}

/**
 * After `berth restore` into a new data directory: the add-ons the backup recorded ran under the Berth it was taken
 * from, so none of their processes is ours. Each live one is set `restoring` from its dump in the backup (moved
 * in as a backup of its own), else from its newest backup; the next control plane rebuilds it from that. One
 * that was being provisioned ends `failed`, one being destroyed `destroyed`.
 */
export function reviveAddons(
  store: AddonStore,
  options: { snapshots: readonly AddonSnapshot[]; from: string; dataDir: string; takenAt: number },
): void {
  for (const addon of store.list()) {
    store.setProcess(addon.id, null);
    const subject = { app: addon.app, service: `addon:${addon.name}` };
    if (addon.state === 'provisioning' || addon.state === 'destroying') {
      const to = addon.state === 'provisioning' ? 'failed' : 'destroyed';
      store.transition(addon.id, to, 'restored from a backup taken while it was being changed', {
        event: () => ({
          ...subject,
          actor: 'system',
          kind: `addon.${to}`,
          message: `${addon.app}/${addon.name}: ${to} (restored from a backup taken while it was being ${addon.state === 'provisioning' ? 'provisioned' : 'destroyed'})`,
        }),
      });
      continue;
    }
    let from: string | null = addon.restoreFrom;
    const snapshot = options.snapshots.find((s) => s.app === addon.app && s.name === addon.name);
    if (snapshot !== undefined && existsSync(join(options.from, snapshot.file))) {
      const id = backupId(
        `${addon.name}-snapshot`,
        options.takenAt,
        (c) => store.getBackup(addon.app, c) !== undefined,
      );
      const file = `${id}${snapshot.file.slice(snapshot.file.lastIndexOf('.'))}`;
      const dir = backupsDirOf(options.dataDir, addon.app);
      ensurePrivateDir(dir);
      renameSync(join(options.from, snapshot.file), join(dir, file));
      store.insertBackup({
        id,
        app: addon.app,
        addon: addon.name,
        addonId: addon.id,
        kind: addon.kind,
        version: addon.version,
        trigger: 'snapshot',
        createdAt: options.takenAt,
        sizeBytes: statSync(join(dir, file)).size,
        tookMs: 0,
        file,
      });
      from = id;
    } else if (addon.state !== 'restoring') {
      const newest = store
        .listBackups({ addonId: addon.id })
        .filter((b) => existsSync(join(backupsDirOf(options.dataDir, addon.app), b.file)))
        .at(-1);
      from = newest?.id ?? null;
    }
    if (addon.state === 'restoring') continue;
    store.transition(addon.id, 'restoring', null, {
      facts: { restoreFrom: from },
      event: () => ({
        ...subject,
        actor: 'system',
        kind: 'addon.restoring',
        message: `${addon.app}/${addon.name}: restored data directory; the server is rebuilt at the next start from ${from ?? 'nothing (no backup of it exists): it starts empty'}`,
        data: { backup: from },
      }),
    });
  }
}
