// Backups of a data directory as one .tar.gz: a consistent SQLite snapshot (releases, services, sealed secrets,
// config, events, metrics), the artifacts its releases use, the local CA and the apps' git remotes; the master key
// only when asked. And the restore of such a file into an empty data directory.
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { controlPaths } from '../../domain/data-dir.js';
import { BerthError } from '../../domain/errors.js';
import { proxyPaths } from '../../domain/proxy-paths.js';
import { VERSION } from '../../domain/version.js';
import { ensurePrivateDir, ensurePrivateFile } from '../../lib/private-files.js';
import { type AddonSnapshot, reviveAddons } from '../addons/addon-service.js';
import { AddonStore } from '../addons/addon-store.js';
import { masterKeyPath } from '../secrets/master-key.js';
import { Database } from '../store/database.js';
import { EventStore } from '../store/event-store.js';
import { Store } from '../store/store.js';

export const BACKUP_FORMAT = 'berth-backup';

/** `manifest.json` at the top of every backup. */
export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  version: 1;
  createdAt: number;
  berth: string;
  /** The data directory it was taken from: paths recorded under it are moved on restore. */
  dataDir: string;
  /** The schema version of each module's tables (`schema_versions`): what a restoring Berth must know. */
  schemaVersions: Record<string, number>;
  /** Each app and its current release. */
  apps: { name: string; release: number }[];
  /** `sha256:<hex>` of every artifact included (those of the releases the snapshot holds, still on disk). */
  artifacts: string[];
  masterKey: boolean;
  /**
   * A consistent dump of each add-on that was available (absent in backups from before add-ons, and in offline
   * backups: a stopped Berth does not talk to its servers). A restore rebuilds each add-on from its dump, else
   * from its newest backup (`addons/backups/`, always included).
   */
  addons?: AddonSnapshot[];
  /** What a backup never holds, in words, for whoever restores it. */
  notIncluded: string[];
}

/** A backup laid out in a private scratch directory, ready to be archived; `cleanup` removes it. */
export interface PreparedBackup {
  dir: string;
  manifest: BackupManifest;
  cleanup(): void;
}

const NOT_INCLUDED = [
  'instance logs (logs/)',
  'the admin token (a restored Berth makes a new one)',
  'builds in progress and pipeline work directories',
];

/**
 * Lays out a consistent backup of `dataDir` while Berth runs. Artifacts are immutable and named by digest: they
 * are hard-linked first (so pruning cannot take one away mid-backup), then the database is snapshotted, then
 * exactly the artifacts its releases name are kept, adding any built between the two steps.
 */
export async function prepareBackup(options: {
  store: Store;
  dataDir: string;
  includeMasterKey: boolean;
  /** The running add-ons, dumped into the backup; without it (offline) only their backups are included. */
  addons?: { snapshot(dir: string): Promise<AddonSnapshot[]> };
}): Promise<PreparedBackup> {
  const { store, dataDir } = options;
  const scratch = join(dataDir, 'backups');
  ensurePrivateDir(scratch);
  const dir = mkdtempSync(join(scratch, 'tmp-'));
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    const artifactsDir = join(dataDir, 'artifacts');
    const staged = join(dir, 'artifacts');
    mkdirSync(staged);
    for (const name of existsSync(artifactsDir) ? readdirSync(artifactsDir) : []) {
      linkTree(join(artifactsDir, name), join(staged, name));
    }
    await store.backup(join(dir, 'state.db'));

    const snapshotDb = Database.open(join(dir, 'state.db'));
    const snapshot = new Store(snapshotDb, new EventStore(snapshotDb));
    let apps: BackupManifest['apps'];
    const wanted = new Set<string>();
    let schemaVersions: Record<string, number>;
    try {
      schemaVersions = snapshotDb.schemaVersions();
      apps = snapshot.listApps().map((app) => ({ name: app.name, release: app.currentRelease }));
      for (const app of apps) {
        for (const release of snapshot.listReleases(app.name)) {
          if (release.artifactDigest) wanted.add(release.artifactDigest.replace(/^sha256:/, ''));
        }
      }
    } finally {
      snapshotDb.close();
    }
    for (const name of readdirSync(staged))
      if (!wanted.has(name)) rmSync(join(staged, name), { recursive: true });
    for (const hex of wanted) {
      if (!existsSync(join(staged, hex)) && existsSync(join(artifactsDir, hex)))
        linkTree(join(artifactsDir, hex), join(staged, hex));
    }
    // Pruned before the backup began: those releases cannot be rolled back to here either.
    const artifacts = [...wanted]
      .filter((hex) => existsSync(join(staged, hex)))
      .map((hex) => `sha256:${hex}`);

    // After the snapshot, so that each backup it lists has its file; backups are immutable, like artifacts.
    const addonBackups = join(dataDir, 'addons', 'backups');
    if (existsSync(addonBackups)) linkTree(addonBackups, join(dir, 'addons', 'backups'));
    const addons = options.addons === undefined ? undefined : await options.addons.snapshot(dir);

    const proxy = proxyPaths(dataDir);
    for (const [from, to] of [
      [join(proxy.dir, 'ca'), join(dir, 'proxy', 'ca')],
      [proxy.certsDir, join(dir, 'proxy', 'certs')],
      [join(dataDir, 'git'), join(dir, 'git')],
    ] as const) {
      if (existsSync(from)) cpSync(from, to, { recursive: true, verbatimSymlinks: true });
    }
    const keyFile = masterKeyPath(dataDir);
    if (options.includeMasterKey) {
      if (!existsSync(keyFile)) {
        throw new BerthError(
          'invalid_request',
          `there is no master key file ${keyFile} to include (the key comes from BERTH_MASTER_KEY, which a backup never holds)`,
        );
      }
      copyFileSync(keyFile, join(dir, 'master.key'));
    }
    const manifest: BackupManifest = {
      format: BACKUP_FORMAT,
      version: 1,
      createdAt: Date.now(),
      berth: VERSION,
      dataDir,
      schemaVersions,
      apps,
      artifacts,
      masterKey: options.includeMasterKey,
      ...(addons === undefined ? {} : { addons }),
      notIncluded: options.includeMasterKey ? NOT_INCLUDED : ['the master key (kept apart)', ...NOT_INCLUDED],
    };
    writeFileSync(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
    return { dir, manifest, cleanup };
  } catch (error) {
    cleanup();
    throw error;
  }
}

/** The prepared backup as a gzipped tar stream (GNU tar); the scratch directory is removed once it has been read. */
export function archive(prepared: PreparedBackup): Readable {
  const tar = spawn('tar', ['-czf', '-', '-C', prepared.dir, '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  tar.stderr.on('data', (chunk: Buffer) => {
    stderr += String(chunk);
  });
  tar.on('close', (code) => {
    prepared.cleanup();
    if (code !== 0) tar.stdout.destroy(new Error(`tar exited with code ${code}: ${stderr.trim()}`));
  });
  return tar.stdout;
}

export interface RestoreResult {
  manifest: BackupManifest;
  /** Instances the snapshot recorded as running: ended here, a restored Berth starts its own. */
  endedInstances: number;
  /** Whether the master key came from the backup or `masterKeyFile`. */
  masterKey: 'from-backup' | 'from-file' | 'missing';
}

/**
 * Restores the backup `file` (a .tar.gz made by `berth backup`) into `dataDir`, which must be empty (or not exist)
 * and is the caller's (locked) to write. Instances recorded as running are ended (they belong to the Berth the
 * backup was taken from), and paths are moved from the old data directory to this one.
 */
export async function restoreBackup(options: {
  file: string;
  dataDir: string;
  masterKeyFile?: string;
}): Promise<RestoreResult> {
  const { dataDir } = options;
  const entries = existsSync(dataDir)
    ? readdirSync(dataDir).filter((name) => !name.startsWith('control.lock'))
    : [];
  if (entries.length > 0) {
    throw new BerthError(
      'conflict',
      `refusing to restore into ${dataDir}: it is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}); restore into a new data directory`,
    );
  }
  ensurePrivateDir(dataDir);
  const staging = mkdtempSync(join(dataDir, '.restore-'));
  try {
    await extract(options.file, staging);
    const manifest = readManifest(staging, options.file);
    for (const name of ['state.db', 'artifacts', 'git', 'master.key']) {
      if (existsSync(join(staging, name))) renameSync(join(staging, name), join(dataDir, name));
    }
    if (existsSync(join(staging, 'proxy'))) renameSync(join(staging, 'proxy'), proxyPaths(dataDir).dir);
    if (existsSync(join(staging, 'addons', 'backups'))) {
      ensurePrivateDir(join(dataDir, 'addons'));
      renameSync(join(staging, 'addons', 'backups'), join(dataDir, 'addons', 'backups'));
    }
    for (const dir of ['artifacts', 'git', 'logs', 'proxy']) ensurePrivateDir(join(dataDir, dir));

    let masterKey: RestoreResult['masterKey'] = manifest.masterKey ? 'from-backup' : 'missing';
    if (options.masterKeyFile !== undefined) {
      copyFileSync(options.masterKeyFile, masterKeyPath(dataDir));
      masterKey = 'from-file';
    }
    ensurePrivateFile(masterKeyPath(dataDir), { onlyIfExists: true });
    const db = Database.open(controlPaths(dataDir).database);
    const store = new Store(db, new EventStore(db));
    let endedInstances = 0;
    try {
      store.transaction(() => {
        store.relocatePaths(manifest.dataDir, dataDir);
        const now = Date.now();
        const live = store.listInstances({ live: true });
        const reason = 'restored from a backup: it ran under the Berth the backup was taken from';
        // Through the instance state machine: out of service (draining), then stopped, each an event.
        for (const instance of live) {
          const subject = { app: instance.app, service: instance.service, instance: instance.id };
          if (instance.state !== 'draining') {
            store.transitionInstance(instance.id, 'draining', reason, {
              event: () => ({
                ...subject,
                actor: 'system',
                kind: 'instance.stopping',
                message: `${instance.id} stopping: ${reason}`,
              }),
            });
          }
          store.transitionInstance(instance.id, 'stopped', reason, {
            facts: { endedAt: now },
            event: () => ({
              ...subject,
              actor: 'system',
              kind: 'instance.stopped',
              message: `${instance.id} stopped: ${reason}`,
            }),
          });
        }
        endedInstances = live.length;
        // Add-on servers belong to the Berth the backup was taken from too: each is rebuilt here at the next start.
        reviveAddons(new AddonStore(db, store.events), {
          snapshots: manifest.addons ?? [],
          from: staging,
          dataDir,
          takenAt: manifest.createdAt,
        });
        store.events.record({
          actor: 'system',
          kind: 'backup.restored',
          message: `restored from a backup of ${manifest.dataDir} taken ${new Date(manifest.createdAt).toISOString()} (${manifest.apps.length} apps)`,
          data: { from: manifest.dataDir, createdAt: manifest.createdAt, apps: manifest.apps },
        });
      });
    } finally {
      db.close();
    }
    return { manifest, endedInstances, masterKey };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Unpacks `file` into `dir`; GNU tar refuses members that would land outside it (`..`, absolute paths). */
function extract(file: string, dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const tar = spawn('tar', ['-xzf', file, '-C', dir, '--no-same-owner'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    tar.stderr.on('data', (chunk: Buffer) => {
      stderr += String(chunk);
    });
    tar.once('error', reject);
    tar.once('close', (code) => {
      if (code === 0) resolve();
      else
        reject(
          new BerthError(
            'invalid_request',
            `${file} is not a readable Berth backup: ${stderr.trim() || `tar exited with code ${code}`}`,
          ),
        );
    });
  });
}

function readManifest(dir: string, file: string): BackupManifest {
  let manifest: Partial<BackupManifest>;
  try {
    manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Partial<BackupManifest>;
  } catch {
    throw new BerthError('invalid_request', `${file} is not a Berth backup (it has no manifest.json)`);
  }
  if (manifest.format !== BACKUP_FORMAT || manifest.version !== 1 || typeof manifest.dataDir !== 'string') {
    throw new BerthError('invalid_request', `${file} is not a Berth backup this version can restore`);
  }
  if (!existsSync(join(dir, 'state.db'))) throw new BerthError('invalid_request', `${file} has no state.db`);
  return manifest as BackupManifest;
}

/** Hard links of every file of `from` under `to` (copies across file systems); symbolic links are recreated. */
function linkTree(from: string, to: string): void {
  mkdirSync(to, { recursive: true, mode: 0o700 });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory()) linkTree(source, target);
    else if (entry.isSymbolicLink()) symlinkSync(readlinkSync(source), target);
    else {
      try {
        linkSync(source, target);
      } catch {
        copyFileSync(source, target);
      }
    }
  }
}
