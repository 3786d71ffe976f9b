// The embedded image registry: Debian's docker-registry (Distribution 2.8) on 127.0.0.1, its storage in the data dir.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BerthError } from '../../domain/errors.js';
import { allocatePort } from '../../lib/free-port.js';
import type { Logger } from '../../lib/logger.js';
import {
  identify,
  isRunning,
  readPidFile,
  signalRecorded,
  writePidFile,
} from '../../lib/process-identity.js';

export interface LocalRegistryOptions {
  /** Berth's data directory: the registry keeps its config, pid file, log and storage in `<dataDir>/registry`. */
  dataDir: string;
  log: Logger;
  /** The registry binary (Debian's docker-registry package). */
  binary?: string;
  startTimeoutMs?: number;
}

/** Accept header for a manifest's digest: what `docker push` stores (schema 2), or a list of them. */
const MANIFEST_TYPES = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');

const execFileAsync = promisify(execFile);

/**
 * Runs the registry the control plane pushes release images to and pulls them back from. It listens on 127.0.0.1
 * only, on a port chosen once and kept in its config (image references carry it), and lives as long as the
 * control plane (a registry left by one that crashed is found by its pid file and used). Pushes and pulls share
 * it; garbage collection, which Distribution runs offline, takes it alone: stop, collect, start.
 */
export class LocalRegistry {
  readonly #options: LocalRegistryOptions;
  readonly #dir: string;
  #starting: Promise<string> | undefined;
  /** Calls using the registry now; garbage collection waits for them, and they wait for it. */
  #users = 0;
  #collecting: Promise<void> | undefined;
  #idle: (() => void)[] = [];
  /** Set by `close()`: the control plane is stopping, and nothing may start the registry again. */
  #closed = false;

  constructor(options: LocalRegistryOptions) {
    this.#options = options;
    this.#dir = join(options.dataDir, 'registry');
  }

  /** Whether it was ever started on this data directory (it has a config, and maybe images). */
  get exists(): boolean {
    return existsSync(this.#configPath);
  }

  get binary(): string {
    return this.#options.binary ?? 'docker-registry';
  }

  /** `127.0.0.1:<port>`, once the registry answers (started if it was not running). */
  address(): Promise<string> {
    if (this.#closed) {
      return Promise.reject(
        new BerthError('runtime_failure', 'the image registry is closed: the control plane is stopping'),
      );
    }
    this.#starting ??= this.#start().catch((error: unknown) => {
      this.#starting = undefined;
      throw error;
    });
    return this.#starting;
  }

  /** Runs `fn` while the registry serves (never during a garbage collection). */
  async use<T>(fn: (address: string) => Promise<T>): Promise<T> {
    while (this.#collecting) await this.#collecting;
    this.#users++;
    try {
      return await fn(await this.address());
    } finally {
      this.#users--;
      if (this.#users === 0) for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  /** Deletes the manifest `digest` of `repository` (its blobs go at the next garbage collection). */
  async deleteManifest(repository: string, digest: string): Promise<void> {
    await this.use(async (address) => {
      const response = await fetch(`http://${address}/v2/${repository}/manifests/${digest}`, {
        method: 'DELETE',
      });
      if (!response.ok && response.status !== 404)
        throw new BerthError(
          'runtime_failure',
          `registry: delete ${repository}@${digest}: HTTP ${response.status}`,
        );
    });
  }

  /** Every tag of every repository under `prefix`, with the digest it points at. */
  async list(prefix: string): Promise<{ repository: string; tag: string; digest: string }[]> {
    return this.use(async (address) => {
      const found: { repository: string; tag: string; digest: string }[] = [];
      for (const repository of (await this.#catalog(address)).filter((r) => r.startsWith(prefix))) {
        const tags = await getJson<{ tags?: string[] | null }>(
          `http://${address}/v2/${repository}/tags/list`,
        );
        for (const tag of tags.tags ?? []) {
          const head = await fetch(`http://${address}/v2/${repository}/manifests/${tag}`, {
            method: 'HEAD',
            headers: { Accept: MANIFEST_TYPES },
          });
          const digest = head.headers.get('docker-content-digest');
          if (head.ok && digest) found.push({ repository, tag, digest });
        }
      }
      return found;
    });
  }

  /** Every repository, page by page (Distribution serves at most 1000 a page, and links the next). */
  async #catalog(address: string): Promise<string[]> {
    const repositories: string[] = [];
    let last = '';
    for (;;) {
      const page = await getJson<{ repositories?: string[] }>(
        `http://${address}/v2/_catalog?n=1000${last === '' ? '' : `&last=${encodeURIComponent(last)}`}`,
      );
      const names = page.repositories ?? [];
      repositories.push(...names);
      if (names.length < 1000) return repositories;
      last = names.at(-1)!;
    }
  }

  /**
   * Frees the blobs no manifest references any more (Distribution's `garbage-collect`, which must not run beside
   * pushes): waits for the calls in progress, stops the registry, collects, starts it again.
   */
  async collectGarbage(): Promise<string> {
    while (this.#collecting) await this.#collecting;
    let output = '';
    const collecting = (async () => {
      if (this.#users > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
      await this.stop();
      // Not spawnSync: the control plane keeps serving (API, health, reconcile) while the collector runs.
      try {
        const result = await execFileAsync(
          this.binary,
          ['garbage-collect', '--delete-untagged', this.#configPath],
          { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024 },
        );
        output = `${result.stdout}${result.stderr}`;
      } catch (error) {
        const failed = error as { code?: unknown; signal?: unknown; stdout?: string; stderr?: string };
        output = `${failed.stdout ?? ''}${failed.stderr ?? ''}` || String(error);
        this.#options.log.warn(
          { status: failed.code ?? null, signal: failed.signal ?? null, output },
          'registry garbage collection failed',
        );
      }
      // Serving again at once: pulls (a rollback's) should not wait for a start. Not once closed.
      if (!this.#closed) await this.address();
    })();
    this.#collecting = collecting;
    try {
      await collecting;
    } finally {
      this.#collecting = undefined;
    }
    return output;
  }

  /**
   * Stops the registry for good, as the control plane stops: a start in progress is let finish and then stopped
   * (stopped before its pid file was written, it would have outlived the control plane), and none follows.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#starting?.catch(() => undefined);
    await this.stop();
  }

  /** Stops the registry this data directory's control plane runs (never another process). */
  async stop(): Promise<void> {
    this.#starting = undefined;
    const recorded = readPidFile(this.#pidPath);
    if (recorded === undefined || signalRecorded(this.#pidPath, 'SIGTERM').outcome !== 'signalled') return;
    const deadline = Date.now() + 10_000;
    while (isRunning(recorded)) {
      if (Date.now() > deadline) {
        signalRecorded(this.#pidPath, 'SIGKILL');
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  get #configPath(): string {
    return join(this.#dir, 'config.yml');
  }

  get #pidPath(): string {
    return join(this.#dir, 'registry.pid');
  }

  async #start(): Promise<string> {
    mkdirSync(join(this.#dir, 'data'), { recursive: true, mode: 0o700 });
    const address = await this.#configuredAddress();
    const recorded = readPidFile(this.#pidPath);
    if (recorded !== undefined && isRunning(recorded) && (await answers(address))) return address;
    const logFd = openSync(join(this.#dir, 'registry.log'), 'a', 0o600);
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(this.binary, ['serve', this.#configPath], {
        detached: true,
        stdio: ['ignore', logFd, logFd],
      });
      child.unref();
      await once(child, 'spawn');
    } catch (error) {
      throw new BerthError(
        'runtime_failure',
        `could not start the image registry (${this.binary}): ${(error as Error).message}; install Debian's docker-registry (\`apt-get install docker-registry\`)`,
        { cause: error },
      );
    } finally {
      closeSync(logFd);
    }
    const identity = identify(child.pid!);
    if (identity) writePidFile(this.#pidPath, identity, { address });
    const deadline = Date.now() + (this.#options.startTimeoutMs ?? 15_000);
    while (!(await answers(address))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        const log = readFileSync(join(this.#dir, 'registry.log'), 'utf8')
          .trim()
          .split('\n')
          .slice(-3)
          .join('\n');
        throw new BerthError(
          'runtime_failure',
          `the image registry did not start on ${address} (its port may be taken by another program): ${log}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    this.#options.log.info({ address, pid: child.pid }, 'image registry started');
    return address;
  }

  /** The address in the registry's config, chosen (a free loopback port) and written on first use. */
  async #configuredAddress(): Promise<string> {
    if (existsSync(this.#configPath)) {
      const match = /^\s*addr:\s*(\S+)\s*$/m.exec(readFileSync(this.#configPath, 'utf8'));
      if (match) return match[1]!;
    }
    const address = `127.0.0.1:${await allocatePort()}`;
    writeFileSync(
      this.#configPath,
      [
        'version: 0.1',
        'log:',
        '  level: warn',
        '  accesslog:',
        '    disabled: true',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${join(this.#dir, 'data')}`,
        '  delete:',
        '    enabled: true',
        'http:',
        `  addr: ${address}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    return address;
  }
}

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  if (!response.ok) throw new BerthError('runtime_failure', `registry: GET ${url}: HTTP ${response.status}`);
  return (await response.json()) as T;
}

async function answers(address: string): Promise<boolean> {
  try {
    const response = await fetch(`http://${address}/v2/`, { signal: AbortSignal.timeout(1000) });
    return response.ok;
  } catch {
    return false;
  }
}
