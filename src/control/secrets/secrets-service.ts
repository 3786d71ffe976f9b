// Secrets and config vars of apps: versioned, envelope-encrypted at rest, resolved into instances' environments.

import { randomBytes } from 'node:crypto';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { BerthError, type Issue } from '../../domain/errors.js';
import { ENV_NAME_PATTERN, NAME_PATTERN } from '../../domain/spec-schema.js';
import { type Logger, silentLogger } from '../../lib/logger.js';
import { every, type Ticker } from '../../lib/ticker.js';
import type { Database } from '../store/database.js';
import type { EventStore } from '../store/event-store.js';
import type { Store } from '../store/store.js';
import { type BundleContents, openBundle, type SecretsBundle, sealBundle } from './bundle.js';
import {
  KEY_BYTES,
  keyMatchesCheck,
  makeKeyCheck,
  openValue,
  resealDataKey,
  type SecretAddress,
  sealValue,
} from './envelope.js';
import { loadMasterKey, type MasterKey, readKeyFile, writeKeyFile } from './master-key.js';
import type { TextScrubber } from './scrubber.js';
import { type SecretRow, SecretStore } from './secret-store.js';

/** How long an unset secret can be restored before it is purged (AWS Secrets Manager: 7 to 30 days). */
export const DEFAULT_RECOVERY_WINDOW_MS = 7 * 24 * 60 * 60 * 1000;
/** Secret Manager's limit on a value (64 KiB) is ours too: env vars are not for files. */
export const MAX_VALUE_BYTES = 64 * 1024;
const PURGE_EVERY_MS = 60 * 60 * 1000;

/** What `list` shows: never a value. */
export interface SecretInfo {
  name: string;
  /** The version labelled `current`. */
  version: number;
  /** The version labelled `previous`, if any. */
  previousVersion: number | null;
  updatedAt: number;
  /** Services of the app whose spec names this secret. */
  usedBy: string[];
  /** Set when unset: restorable until `purgeAt`. */
  deletedAt: number | null;
  purgeAt: number | null;
}

export interface ConfigVar {
  key: string;
  value: string;
  updatedAt: number;
}

/** A change that new instances would see: a secret's current version, or a config var. */
export interface SecretsChange {
  app: string;
  kind: 'secret' | 'config';
  names: string[];
  /**
   * False when the caller makes the release itself (a deploy that provisions an add-on first): no release is made
   * for this change alone.
   */
  release?: boolean;
}

/** How a change is made: `platform` allows Berth's own `BERTH_ADDON_*` names; `release: false` see `SecretsChange`. */
export interface SecretChangeOptions {
  platform?: boolean;
  release?: boolean;
}

/** Secrets Berth keeps for itself (add-on passwords): never in a listing, an export or an instance's env. */
export const PLATFORM_SECRET_PREFIX = 'BERTH_ADDON_';

export function isPlatformSecret(name: string): boolean {
  return name.startsWith(PLATFORM_SECRET_PREFIX);
}

export interface SecretsServiceOptions {
  /** The database the secrets tables live in (the secrets module's repository owns them). */
  db: Database;
  /** The services of each app, to show which use a secret. */
  store: Pick<Store, 'listServices'>;
  events: EventStore;
  dataDir: string;
  /** `BERTH_MASTER_KEY`, if set. */
  envKey?: string | undefined;
  /** Kept up to date with every value (current and previous) so events and logs can be scrubbed. */
  scrubber?: TextScrubber;
  now?: () => number;
  /** Where the hourly purge of expired secrets reports a failure. */
  log?: Logger;
}

interface Cached {
  app: string;
  name: string;
  version: number;
  value: string;
  previous: string | undefined;
}

/** Names an instance's environment uses for the platform: a secret or config var may not take them. */
function reservedName(name: string): boolean {
  return name === 'PORT' || name.startsWith('BERTH_');
}

function checkNames(kind: string, names: readonly string[], platform = false): void {
  const issues: Issue[] = [];
  for (const name of names) {
    if (!ENV_NAME_PATTERN.test(name))
      issues.push({ path: name, message: 'must be letters, digits and _, not starting with a digit' });
    else if (platform ? !isPlatformSecret(name) : reservedName(name))
      issues.push({
        path: name,
        message: platform
          ? `Berth's own secrets are named ${PLATFORM_SECRET_PREFIX}*`
          : 'PORT and BERTH_* are set by Berth',
      });
  }
  if (issues.length > 0) {
    throw new BerthError(
      'invalid_request',
      `bad ${kind} name${issues.length > 1 ? 's' : ''}: ${issues.map((i) => i.path).join(', ')}`,
      { issues },
    );
  }
}

/**
 * The secrets of every app. Values are decrypted once at start (which also proves the master key opens them)
 * and kept in memory for resolving instances' environments and for scrubbing; they leave this process only
 * into instances' environments and through an explicit `reveal` or an encrypted export.
 */
export class SecretsService {
  readonly #store: SecretStore;
  readonly #apps: Pick<Store, 'listServices'>;
  readonly #events: EventStore;
  readonly #scrubber: TextScrubber | undefined;
  readonly #now: () => number;
  #master: MasterKey;
  readonly #cache = new Map<string, Cached>();
  readonly #listeners: ((change: SecretsChange) => void)[] = [];
  #attachedNames: (app: string) => readonly string[] = () => [];
  #purge: Ticker | undefined;

  private constructor(options: SecretsServiceOptions, master: MasterKey, store: SecretStore) {
    this.#store = store;
    this.#apps = options.store;
    this.#events = options.events;
    this.#scrubber = options.scrubber;
    this.#now = options.now ?? Date.now;
    this.#master = master;
  }

  /**
   * Loads the master key and proves it opens the existing secrets; refuses (throws, having changed nothing)
   * when the key file is readable by others, missing beside existing secrets, or the wrong key.
   */
  static open(options: SecretsServiceOptions): SecretsService {
    const store = new SecretStore(options.db);
    const check = store.keyCheck();
    const hasSecrets = store.hasVersions();
    let master = loadMasterKey({
      dataDir: options.dataDir,
      env: options.envKey,
      mayCreate: check === undefined && !hasSecrets,
    });
    if (check !== undefined && !keyMatchesCheck(master.key, check)) {
      const finished = finishInterruptedRotation(master, check);
      if (!finished) {
        throw new BerthError(
          'runtime_failure',
          `refusing to start: the master key ${master.source === 'env' ? 'in BERTH_MASTER_KEY' : `in ${master.path}`} ` +
            'does not open the existing secrets (key check failed); use the key they were sealed with',
        );
      }
      master = finished;
    }
    const service = new SecretsService(options, master, store);
    // Decrypt everything before writing anything: a damaged row stops the start with nothing changed.
    service.#reload();
    if (check === undefined) store.setKeyCheck(makeKeyCheck(master.key), service.#now());
    service.purgeExpired();
    service.#purge = every(PURGE_EVERY_MS, () => void service.purgeExpired(), {
      name: 'secret purge',
      log: options.log ?? silentLogger,
    });
    return service;
  }

  close(): void {
    // The purge runs synchronously, so none is under way here; stopping only ends the wait.
    void this.#purge?.stop();
  }

  /** Called after every change that new instances would see (a new current version, a config var). */
  onChange(listener: (change: SecretsChange) => void): () => void {
    this.#listeners.push(listener);
    return () => {
      const index = this.#listeners.indexOf(listener);
      if (index >= 0) this.#listeners.splice(index, 1);
    };
  }

  /**
   * Secrets every service of an app gets without naming them (add-on URLs, `AttachedSecrets`): `list` shows them
   * used by every service.
   */
  useAttachments(names: (app: string) => readonly string[]): void {
    this.#attachedNames = names;
  }

  #attached(app: string): readonly string[] {
    return this.#attachedNames(app);
  }

  // Reading, for the reconciler and the release path.

  /** Current values of `names`; throws `not_found` naming every missing (or unset) one. */
  resolve(app: string, names: readonly string[]): Record<string, string> {
    const missing = names.filter((name) => !this.#live(app, name));
    if (missing.length > 0) {
      throw new BerthError(
        'not_found',
        `${app} has no secret ${missing.join(', ')}; set ${missing.length > 1 ? 'them' : 'it'} with \`berth secrets set ${app} ${missing[0]}=-\``,
        { issues: missing.map((name) => ({ path: `secrets.${name}`, message: 'no such secret' })) },
      );
    }
    return Object.fromEntries(names.map((name) => [name, this.#live(app, name)!.value]));
  }

  /** Current version numbers of `names` (0 for a missing one), for the config hash of a release. */
  versions(app: string, names: readonly string[]): Record<string, number> {
    return Object.fromEntries(names.map((name) => [name, this.#live(app, name)?.version ?? 0]));
  }

  list(app: string): SecretInfo[] {
    const services = this.#apps.listServices(app);
    const attached = this.#attached(app);
    return this.#store
      .listSecrets(app)
      .filter((row) => !isPlatformSecret(row.name))
      .map((row) => ({
        name: row.name,
        version: row.currentVersion,
        previousVersion: row.previousVersion,
        updatedAt: row.updatedAt,
        usedBy: services
          .filter((s) => attached.includes(row.name) || s.spec.secrets.includes(row.name))
          .map((s) => s.name),
        deletedAt: row.deletedAt,
        purgeAt: row.purgeAt,
      }));
  }

  /** The one way a value leaves through the API: explicit, and recorded as an event. */
  reveal(app: string, name: string, actor: string): { name: string; version: number; value: string } {
    refusePlatform(name);
    const cached = this.#live(app, name);
    if (!cached) throw new BerthError('not_found', `${app} has no secret ${name}`);
    this.#events.record({
      actor,
      kind: 'secret.revealed',
      app,
      message: `${app} secret ${name} v${cached.version} revealed to ${actor}`,
      data: { name, version: cached.version },
    });
    return { name, version: cached.version, value: cached.value };
  }

  // Changing secrets.

  /** Sets values (each a new version, labelled current) in one transaction; all or nothing. */
  set(
    app: string,
    values: Record<string, string>,
    actor: string,
    options: SecretChangeOptions = {},
  ): { name: string; version: number }[] {
    const names = Object.keys(values).sort();
    if (names.length === 0) throw new BerthError('invalid_request', 'no secrets given; expected NAME=VALUE');
    checkNames('secret', names, options.platform);
    checkAppName(app);
    const issues: Issue[] = [];
    for (const name of names) {
      const bytes = Buffer.byteLength(values[name]!, 'utf8');
      if (bytes === 0)
        issues.push({ path: name, message: 'empty value; use `berth secrets unset` to remove it' });
      if (bytes > MAX_VALUE_BYTES)
        issues.push({ path: name, message: `${bytes} bytes; the limit is 64 KiB` });
    }
    if (issues.length > 0) {
      throw new BerthError(
        'invalid_request',
        `bad secret values: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
        { issues },
      );
    }
    const now = this.#now();
    const written = this.#store.transaction(() =>
      names.map((name) => {
        const version = this.#store.nextVersion(app, name);
        const address: SecretAddress = { app, name, version };
        this.#store.addVersion({
          ...address,
          ...sealValue(this.#master.key, values[name]!, address),
          createdAt: now,
          createdBy: actor,
        });
        return { name, version };
      }),
    );
    this.#reload();
    this.#events.record({
      actor,
      kind: 'secret.set',
      app,
      message: `${app} secrets set: ${written.map((w) => `${w.name} v${w.version}`).join(', ')}`,
      data: { secrets: written },
    });
    this.#changed({ app, kind: 'secret', names, release: options.release ?? true });
    return written;
  }

  /** Moves `current` back to the `previous` version (and `previous` to what was current), as AWS does. */
  rollback(app: string, name: string, actor: string): { name: string; version: number; from: number } {
    refusePlatform(name);
    const row = this.#requireLive(app, name);
    if (row.previousVersion === null || !this.#store.getVersion(app, name, row.previousVersion)) {
      throw new BerthError('conflict', `${app} secret ${name} has no previous version to roll back to`);
    }
    this.#store.setLabels(app, name, row.previousVersion, row.currentVersion, this.#now());
    this.#reload();
    this.#events.record({
      actor,
      kind: 'secret.rolled_back',
      app,
      message: `${app} secret ${name} rolled back: current v${row.currentVersion} → v${row.previousVersion}`,
      data: { name, from: row.currentVersion, to: row.previousVersion },
    });
    this.#changed({ app, kind: 'secret', names: [name] });
    return { name, version: row.previousVersion, from: row.currentVersion };
  }

  /** Soft delete: gone for new instances, restorable until the recovery window ends; `force` purges now. */
  unset(
    app: string,
    names: readonly string[],
    actor: string,
    options: { force?: boolean; recoveryWindowMs?: number } & SecretChangeOptions = {},
  ): { name: string; purgeAt: number | null }[] {
    if (!options.platform) for (const name of names) refusePlatform(name);
    for (const name of names)
      if (!this.#store.getSecret(app, name))
        throw new BerthError('not_found', `${app} has no secret ${name}`);
    const now = this.#now();
    const purgeAt = now + (options.recoveryWindowMs ?? DEFAULT_RECOVERY_WINDOW_MS);
    const result = this.#store.transaction(() =>
      names.map((name) => {
        if (options.force) {
          this.#store.purge(app, name);
          return { name, purgeAt: null };
        }
        this.#store.setDeleted(app, name, now, purgeAt, now);
        return { name, purgeAt };
      }),
    );
    this.#reload();
    this.#events.record({
      actor,
      kind: options.force ? 'secret.purged' : 'secret.unset',
      app,
      message: options.force
        ? `${app} secrets purged: ${names.join(', ')}`
        : `${app} secrets unset: ${names.join(', ')} (restorable until ${new Date(purgeAt).toISOString()})`,
      data: { names, purgeAt: options.force ? null : purgeAt },
    });
    this.#changed({ app, kind: 'secret', names: [...names], release: options.release ?? true });
    return result;
  }

  /** Undoes an unset within the recovery window. */
  restore(app: string, name: string, actor: string): SecretInfo {
    refusePlatform(name);
    const row = this.#store.getSecret(app, name);
    if (!row)
      throw new BerthError('not_found', `${app} has no secret ${name} (purged secrets cannot be restored)`);
    if (row.deletedAt === null) throw new BerthError('conflict', `${app} secret ${name} is not unset`);
    this.#store.setDeleted(app, name, null, null, this.#now());
    this.#reload();
    this.#events.record({
      actor,
      kind: 'secret.restored',
      app,
      message: `${app} secret ${name} restored`,
      data: { name },
    });
    this.#changed({ app, kind: 'secret', names: [name] });
    return this.list(app).find((s) => s.name === name)!;
  }

  /** Deletes for good the secrets whose recovery window has passed. */
  purgeExpired(): number {
    const expired = this.#store.expired(this.#now());
    if (expired.length === 0) return 0;
    this.#store.transaction(() => {
      for (const row of expired) this.#store.purge(row.app, row.name);
    });
    this.#reload();
    for (const row of expired) {
      this.#events.record({
        actor: 'system',
        kind: 'secret.purged',
        app: row.app,
        message: `${row.app} secret ${row.name} purged: its recovery window ended`,
        data: { name: row.name },
      });
    }
    return expired.length;
  }

  /**
   * A platform secret (Berth's own, such as the ACME account key): opened from the store, or made by `create`,
   * sealed like an app secret (its own data key under the master key, bound to its name) and stored first.
   */
  platformSecret(name: string, create: () => string): string {
    const address = platformAddress(name);
    const stored = this.#store.platformSecret(name);
    if (stored !== undefined) return openValue(this.#master.key, stored, address);
    const value = create();
    this.#store.addPlatformSecret(name, sealValue(this.#master.key, value, address), this.#now());
    return value;
  }

  /**
   * A new master key: every data key is re-sealed with it (values are not touched), in one transaction. With a
   * key file, the new key is written beside it first and renamed over it after the commit; a start after a
   * crash in between finds it there (see `finishInterruptedRotation`).
   */
  rotateMasterKey(actor: string): { resealed: number } {
    if (this.#master.source === 'env') {
      throw new BerthError(
        'conflict',
        'the master key comes from BERTH_MASTER_KEY, which Berth cannot rewrite; unset it to use a key file, or re-seal offline',
      );
    }
    const next = randomBytes(KEY_BYTES);
    const nextPath = `${this.#master.path}.next`;
    rmSync(nextPath, { force: true });
    writeKeyFile(nextPath, next, false);
    let resealed = 0;
    try {
      this.#store.transaction(() => {
        for (const version of this.#store.listAllVersions()) {
          const address = { app: version.app, name: version.name, version: version.version };
          this.#store.replaceSealedKey(
            version.app,
            version.name,
            version.version,
            resealDataKey(this.#master.key, next, version.sealedKey, address),
          );
          resealed++;
        }
        for (const secret of this.#store.listPlatformSecrets()) {
          const address = platformAddress(secret.name);
          this.#store.replacePlatformSealedKey(
            secret.name,
            resealDataKey(this.#master.key, next, secret.sealedKey, address),
          );
          resealed++;
        }
        this.#store.setKeyCheck(makeKeyCheck(next), this.#now());
      });
    } catch (error) {
      rmSync(nextPath, { force: true });
      throw error;
    }
    renameSync(nextPath, this.#master.path);
    this.#master.key.fill(0);
    this.#master = { ...this.#master, key: next };
    this.#events.record({
      actor,
      kind: 'secrets.master_key_rotated',
      message: `master key rotated: ${resealed} data keys re-sealed`,
      data: { resealed },
    });
    return { resealed };
  }

  // Export and import.

  exportBundle(app: string, passphrase: string, actor: string): SecretsBundle {
    const secrets = Object.fromEntries(
      [...this.#cache.values()]
        .filter((c) => c.app === app && !isPlatformSecret(c.name) && this.#live(app, c.name))
        .map((c) => [c.name, c.value]),
    );
    const bundle = sealBundle(
      { app, exportedAt: this.#now(), secrets, config: this.#store.configVars(app) },
      passphrase,
    );
    this.#events.record({
      actor,
      kind: 'secrets.exported',
      app,
      message: `${app}: ${Object.keys(secrets).length} secrets exported to an encrypted bundle`,
      data: { names: Object.keys(secrets).sort() },
    });
    return bundle;
  }

  /** Opens a bundle (a wrong passphrase changes nothing) and sets its secrets and config on `app`. */
  importBundle(
    app: string,
    bundle: unknown,
    passphrase: string,
    actor: string,
  ): { secrets: string[]; config: string[] } {
    const contents: BundleContents = openBundle(bundle, passphrase);
    const secrets = Object.keys(contents.secrets).sort();
    const config = Object.keys(contents.config ?? {}).sort();
    checkNames('secret', secrets);
    checkNames('config', config);
    try {
      this.#store.transaction(() => {
        if (secrets.length > 0) this.set(app, contents.secrets, actor);
        if (config.length > 0) this.setConfig(app, contents.config, actor);
      });
    } catch (error) {
      // All or nothing: the values cached by a `set` that was rolled back are dropped again.
      this.#reload();
      throw error;
    }
    this.#events.record({
      actor,
      kind: 'secrets.imported',
      app,
      message: `${app}: imported ${secrets.length} secrets and ${config.length} config vars from a bundle of ${contents.app}`,
      data: { secrets, config, from: contents.app },
    });
    return { secrets, config };
  }

  // Plain config vars.

  configVars(app: string): Record<string, string> {
    return this.#store.configVars(app);
  }

  listConfig(app: string): ConfigVar[] {
    return this.#store.listConfig(app);
  }

  setConfig(app: string, values: Record<string, string>, actor: string): ConfigVar[] {
    const keys = Object.keys(values).sort();
    if (keys.length === 0)
      throw new BerthError('invalid_request', 'no config vars given; expected KEY=VALUE');
    checkNames('config', keys);
    checkAppName(app);
    const now = this.#now();
    this.#store.transaction(() => {
      for (const key of keys) this.#store.setConfigVar(app, key, values[key]!, now);
    });
    this.#events.record({
      actor,
      kind: 'config.set',
      app,
      message: `${app} config set: ${keys.map((k) => `${k}=${values[k]}`).join(' ')}`,
      data: { values: Object.fromEntries(keys.map((k) => [k, values[k]])) },
    });
    this.#changed({ app, kind: 'config', names: keys });
    return this.listConfig(app);
  }

  unsetConfig(app: string, keys: readonly string[], actor: string): ConfigVar[] {
    const missing = keys.filter((key) => !(key in this.#store.configVars(app)));
    if (missing.length > 0)
      throw new BerthError('not_found', `${app} has no config var ${missing.join(', ')}`);
    this.#store.transaction(() => {
      for (const key of keys) this.#store.unsetConfigVar(app, key);
    });
    this.#events.record({
      actor,
      kind: 'config.unset',
      app,
      message: `${app} config unset: ${keys.join(', ')}`,
      data: { keys },
    });
    this.#changed({ app, kind: 'config', names: [...keys] });
    return this.listConfig(app);
  }

  // Internals.

  #live(app: string, name: string): Cached | undefined {
    const row = this.#cache.get(`${app}\0${name}`);
    return row && this.#store.getSecret(app, name)?.deletedAt == null ? row : undefined;
  }

  #requireLive(app: string, name: string): SecretRow {
    const row = this.#store.getSecret(app, name);
    if (!row || row.deletedAt !== null) throw new BerthError('not_found', `${app} has no secret ${name}`);
    return row;
  }

  /** Decrypts every secret's current and previous version into the cache, and hands them to the scrubber. */
  #reload(): void {
    const fresh = new Map<string, Cached>();
    for (const row of this.#store.listSecrets()) {
      const open = (version: number | null): string | undefined => {
        if (version === null) return undefined;
        const sealed = this.#store.getVersion(row.app, row.name, version);
        return sealed && openValue(this.#master.key, sealed, { app: row.app, name: row.name, version });
      };
      const value = open(row.currentVersion);
      if (value === undefined) continue;
      fresh.set(`${row.app}\0${row.name}`, {
        app: row.app,
        name: row.name,
        version: row.currentVersion,
        value,
        previous: open(row.previousVersion),
      });
    }
    this.#cache.clear();
    for (const [key, value] of fresh) this.#cache.set(key, value);
    this.#scrubber?.setSecrets(
      [...fresh.values()].flatMap((c) =>
        c.previous === undefined
          ? [[c.name, c.value] as const]
          : [[c.name, c.value] as const, [c.name, c.previous] as const],
      ),
    );
  }

  #changed(change: SecretsChange): void {
    for (const listener of this.#listeners) listener(change);
  }
}

/** Where a platform secret is bound: `@` cannot start an app name, so no app secret has this address. */
function platformAddress(name: string): SecretAddress {
  return { app: '@berth', name, version: 1 };
}

/** Berth's own secrets are changed by Berth alone (`berth addons rotate` for add-on passwords). */
function refusePlatform(name: string): void {
  if (isPlatformSecret(name)) {
    throw new BerthError(
      'invalid_request',
      `${name} is an add-on password Berth manages; use \`berth addons rotate\` to change it`,
    );
  }
}

function checkAppName(app: string): void {
  if (!NAME_PATTERN.test(app)) {
    throw new BerthError(
      'invalid_request',
      `bad app name ${JSON.stringify(app)}: lower-case letters, digits and -, starting with a letter`,
    );
  }
}

/** A rotation that committed but crashed before renaming the new key file into place: finish it. */
function finishInterruptedRotation(master: MasterKey, check: Buffer): MasterKey | undefined {
  const nextPath = `${master.path}.next`;
  if (master.source !== 'file' || !existsSync(nextPath)) return undefined;
  const next = readKeyFile(nextPath);
  if (!keyMatchesCheck(next, check)) return undefined;
  renameSync(nextPath, master.path);
  return { ...master, key: next };
}
