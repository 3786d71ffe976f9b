// A small client of the Docker Engine API over its unix socket: only the calls Berth makes, typed, no dependency.
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { BerthError } from '../../domain/errors.js';

/** Where the engine listens unless `DOCKER_HOST` says otherwise. */
export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

/**
 * The Engine API version Berth speaks: 1.41 is Docker 20.10 (Debian bookworm's docker.io), and every later engine
 * still serves it, so one set of request and response shapes holds everywhere.
 */
export const DOCKER_API_VERSION = '1.41';

/** What to install when no engine answers: said by every refusal, so the fix is in the message. */
export const DOCKER_INSTALL_HINT =
  "install Debian's docker.io (`apt-get install docker.io`) and start it (`systemctl start docker`, or run `dockerd`)";

/**
 * The engine's socket from `DOCKER_HOST` (`unix:///path`), else the default. Other schemes (tcp://, ssh://) are
 * refused: the control plane drives a local engine, and containers share this machine's loopback.
 */
export function dockerSocketFrom(env: NodeJS.ProcessEnv = process.env): string {
  const host = env.DOCKER_HOST;
  if (host === undefined || host === '') return DEFAULT_DOCKER_SOCKET;
  if (host.startsWith('unix://')) return host.slice('unix://'.length);
  throw new BerthError(
    'invalid_request',
    `DOCKER_HOST=${host}: only a local engine (unix:///path/to/docker.sock) is supported`,
  );
}

/** A failed Engine API call: the engine's own message, its HTTP status, and what was asked. */
export class DockerError extends BerthError {
  readonly status: number;

  constructor(status: number, what: string, message: string) {
    super('runtime_failure', `docker: ${what}: ${message}`);
    this.status = status;
  }
}

/** One line of a build, pull or push progress stream. */
export interface ProgressMessage {
  stream?: string;
  status?: string;
  progress?: string;
  id?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: { ID?: string; Tag?: string; Digest?: string; Size?: number };
}

export interface ContainerState {
  Status: 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';
  Running: boolean;
  OOMKilled: boolean;
  Pid: number;
  ExitCode: number;
  StartedAt: string;
  FinishedAt: string;
}

export interface ContainerInfo {
  Id: string;
  Name: string;
  State: ContainerState;
  Config: {
    Image: string;
    Env: string[] | null;
    Labels: Record<string, string> | null;
    Cmd: string[] | null;
  };
  HostConfig: { Memory: number; NanoCpus: number };
  Image: string;
}

export interface ContainerSummary {
  Id: string;
  Names: string[];
  State: string;
  Labels: Record<string, string>;
}

export interface ImageInfo {
  Id: string;
  RepoTags: string[] | null;
  RepoDigests: string[] | null;
  Size: number;
}

export interface ContainerStats {
  memory_stats: { usage?: number; stats?: Record<string, number>; limit?: number };
  cpu_stats: { cpu_usage: { total_usage: number }; system_cpu_usage?: number; online_cpus?: number };
  read: string;
}

/** What `createContainer` sends: the subset of the Engine API's container config Berth sets. */
export interface ContainerSpec {
  Image: string;
  Cmd?: string[];
  Env: string[];
  Labels: Record<string, string>;
  WorkingDir?: string;
  StopSignal?: string;
  HostConfig: {
    NetworkMode: 'host';
    Init: boolean;
    Memory?: number;
    MemorySwap?: number;
    NanoCpus?: number;
    LogConfig?: { Type: string; Config: Record<string, string> };
    RestartPolicy?: { Name: 'no' };
    SecurityOpt?: string[];
  };
}

/** A registry login for a push or pull, sent as the engine's `X-Registry-Auth` header. */
export interface RegistryAuth {
  username: string;
  password: string;
  serveraddress: string;
}

interface CallOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** A request body streamed as it is (a build context). */
  upload?: Readable;
  headers?: Record<string, string>;
  /** Statuses that are not errors besides 2xx (e.g. 304 "already started"). */
  accept?: number[];
  signal?: AbortSignal;
}

export class DockerEngine {
  readonly socketPath: string;
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 16 });

  constructor(options: { socketPath?: string } = {}) {
    this.socketPath = options.socketPath ?? dockerSocketFrom();
  }

  /** An engine at `DOCKER_HOST` or the default socket; one `DOCKER_HOST` that is not a local socket is ignored. */
  static local(log?: { warn(fields: object, message: string): void }): DockerEngine {
    try {
      return new DockerEngine();
    } catch (error) {
      log?.warn({ err: error }, 'DOCKER_HOST ignored: Berth drives the local engine');
      return new DockerEngine({ socketPath: DEFAULT_DOCKER_SOCKET });
    }
  }

  /** The engine's version when it answers; the reason it does not otherwise (never throws). */
  async probe(): Promise<{ ok: true; version: string } | { ok: false; reason: string }> {
    try {
      const version = await this.json<{ Version: string }>('GET', '/version', {
        signal: AbortSignal.timeout(5000),
      });
      return { ok: true, version: version.Version };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const reason =
        code === 'ENOENT'
          ? `no Docker engine at ${this.socketPath}`
          : code === 'ECONNREFUSED'
            ? `the Docker engine at ${this.socketPath} is not running`
            : code === 'EACCES'
              ? `no permission to use ${this.socketPath} (the Docker socket is root-equivalent: run Berth as root or in the docker group)`
              : `the Docker engine at ${this.socketPath} did not answer: ${(error as Error).message}`;
      return { ok: false, reason };
    }
  }

  close(): void {
    this.#agent.destroy();
  }

  // Images

  async inspectImage(ref: string): Promise<ImageInfo | null> {
    return this.#orNull(() => this.json<ImageInfo>('GET', `/images/${encodeURIComponent(ref)}/json`));
  }

  /** Pulls `ref` (by tag or digest); progress lines go to `onProgress`. */
  async pullImage(
    ref: string,
    auth?: RegistryAuth,
    onProgress?: (m: ProgressMessage) => void,
  ): Promise<void> {
    const { repository, tag, digest } = splitReference(ref);
    const response = await this.#call('POST', '/images/create', {
      query: { fromImage: repository, tag: digest ?? tag ?? 'latest' },
      headers: auth ? { 'X-Registry-Auth': encodeAuth(auth) } : {},
    });
    await readProgress(response, `pull ${ref}`, onProgress);
  }

  /** `docker import`: an image of one layer from a root filesystem tar, with Dockerfile `changes` (ENV, CMD). */
  async importImage(
    rootfs: Readable,
    repository: string,
    tag: string,
    changes: string[] = [],
  ): Promise<void> {
    const query = new URLSearchParams({ fromSrc: '-', repo: repository, tag });
    for (const change of changes) query.append('changes', change);
    const response = await this.#call('POST', `/images/create?${query}`, {
      headers: { 'Content-Type': 'application/x-tar' },
      upload: rootfs,
    });
    await readProgress(response, `import ${repository}:${tag}`);
  }

  async tagImage(source: string, repository: string, tag: string): Promise<void> {
    await this.#drain('POST', `/images/${encodeURIComponent(source)}/tag`, {
      query: { repo: repository, tag },
    });
  }

  /** Pushes `repository:tag`; resolves to the manifest digest the registry gave it (`sha256:…`). */
  async pushImage(
    repository: string,
    tag: string,
    auth: RegistryAuth | undefined,
    onProgress?: (m: ProgressMessage) => void,
  ): Promise<string> {
    const response = await this.#call('POST', `/images/${encodeURIComponent(repository)}/push`, {
      query: { tag },
      // The engine wants the header even for a registry without a login.
      headers: { 'X-Registry-Auth': encodeAuth(auth ?? { username: '', password: '', serveraddress: '' }) },
    });
    let digest: string | undefined;
    await readProgress(response, `push ${repository}:${tag}`, (message) => {
      if (message.aux?.Digest) digest = message.aux.Digest;
      onProgress?.(message);
    });
    if (digest === undefined)
      throw new DockerError(0, `push ${repository}:${tag}`, 'the engine reported no digest');
    return digest;
  }

  /**
   * Builds an image from a tar stream of its context; build output goes to `onProgress`. Steps run with host
   * networking (no bridge network exists for them). Resolves to the image id.
   */
  async buildImage(
    context: Readable,
    options: { dockerfile: string; tag: string; labels?: Record<string, string> },
    onProgress?: (m: ProgressMessage) => void,
  ): Promise<string> {
    const response = await this.#call('POST', '/build', {
      query: {
        dockerfile: options.dockerfile,
        t: options.tag,
        labels: JSON.stringify(options.labels ?? {}),
        networkmode: 'host',
        rm: true,
        forcerm: true,
      },
      headers: { 'Content-Type': 'application/x-tar' },
      upload: context,
    });
    let id: string | undefined;
    await readProgress(response, `build ${options.tag}`, (message) => {
      if (message.aux?.ID) id = message.aux.ID;
      onProgress?.(message);
    });
    if (id === undefined) {
      const image = await this.inspectImage(options.tag);
      if (!image) throw new DockerError(0, `build ${options.tag}`, 'the engine reported no image');
      id = image.Id;
    }
    return id;
  }

  /** Removes a tag or an image; false when it was not there. Images in use by a container are refused (409). */
  async removeImage(ref: string, options: { force?: boolean } = {}): Promise<boolean> {
    const done = await this.#orNull(() =>
      this.#drain('DELETE', `/images/${encodeURIComponent(ref)}`, { query: { force: options.force } }),
    );
    return done !== null;
  }

  // Containers

  async createContainer(name: string, spec: ContainerSpec): Promise<string> {
    const created = await this.json<{ Id: string }>('POST', '/containers/create', {
      query: { name },
      body: spec,
    });
    return created.Id;
  }

  async startContainer(id: string): Promise<void> {
    await this.#drain('POST', `/containers/${encodeURIComponent(id)}/start`, { accept: [304] });
  }

  async inspectContainer(id: string): Promise<ContainerInfo | null> {
    return this.#orNull(() => this.json<ContainerInfo>('GET', `/containers/${encodeURIComponent(id)}/json`));
  }

  /** Sends `signal` to the container's main process; false when it is not running (or not there). */
  async killContainer(id: string, signal: NodeJS.Signals): Promise<boolean> {
    try {
      await this.#drain('POST', `/containers/${encodeURIComponent(id)}/kill`, { query: { signal } });
      return true;
    } catch (error) {
      if (error instanceof DockerError && (error.status === 404 || error.status === 409)) return false;
      throw error;
    }
  }

  /** Removes a container, running or not; one that is gone, or already being removed, is fine. */
  async removeContainer(id: string): Promise<void> {
    await this.#drain('DELETE', `/containers/${encodeURIComponent(id)}`, {
      query: { force: true, v: true },
      accept: [404, 409],
    });
  }

  /** Containers (running or not) carrying every label of `labels` (`key=value` or `key`). */
  async listContainers(labels: string[]): Promise<ContainerSummary[]> {
    return this.json<ContainerSummary[]>('GET', '/containers/json', {
      query: { all: true, filters: JSON.stringify({ label: labels }) },
    });
  }

  /** One stats sample (no streaming, no wait for a second reading). */
  async containerStats(id: string): Promise<ContainerStats | null> {
    return this.#orNull(() =>
      this.json<ContainerStats>('GET', `/containers/${encodeURIComponent(id)}/stats`, {
        query: { stream: false, 'one-shot': true },
      }),
    );
  }

  /**
   * The container's output as the engine's multiplexed stream (stdout and stderr frames, each line prefixed by its
   * RFC 3339 timestamp); with `follow`, it ends when the container stops.
   */
  async logs(
    id: string,
    options: { since?: string; follow: boolean; signal?: AbortSignal },
  ): Promise<IncomingMessage> {
    return this.#call('GET', `/containers/${encodeURIComponent(id)}/logs`, {
      query: { stdout: true, stderr: true, timestamps: true, follow: options.follow, since: options.since },
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  // Plumbing

  /** A call answered at once (not a stream): an engine that does not answer within 30 s fails it. */
  async json<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
    const response = await this.#call(method, path, withDeadline(options));
    const text = await readAll(response);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  async #drain(method: string, path: string, options: CallOptions = {}): Promise<void> {
    await readAll(await this.#call(method, path, withDeadline(options)));
  }

  async #orNull<T>(call: () => Promise<T>): Promise<T | null> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof DockerError && error.status === 404) return null;
      throw error;
    }
  }

  #call(method: string, path: string, options: CallOptions): Promise<IncomingMessage> {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(options.query ?? {}))
      if (value !== undefined) query.set(key, String(value));
    const search = query.size > 0 ? `?${query}` : '';
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers: Record<string, string> = { ...options.headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(body));
    }
    const what = `${method} ${path}`;
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          socketPath: this.socketPath,
          path: `/v${DOCKER_API_VERSION}${path}${search}`,
          method,
          headers,
          agent: this.#agent,
          ...(options.signal ? { signal: options.signal } : {}),
        },
        (response) => {
          const status = response.statusCode ?? 0;
          if ((status >= 200 && status < 300) || options.accept?.includes(status)) return resolve(response);
          readAll(response)
            .then((text) => reject(new DockerError(status, what, engineMessage(text) || `HTTP ${status}`)))
            .catch(reject);
        },
      );
      req.on('error', reject);
      if (options.upload) {
        options.upload.on('error', (error) => req.destroy(error));
        options.upload.pipe(req);
      } else req.end(body);
    });
  }
}

/** Calls that are answered at once get a deadline unless they carry a signal of their own. */
const CALL_TIMEOUT_MS = 30_000;

function withDeadline(options: CallOptions): CallOptions {
  return options.signal ? options : { ...options, signal: AbortSignal.timeout(CALL_TIMEOUT_MS) };
}

/** `registry:5000/a/b:tag@sha256:…` → its repository, tag and digest. */
export function splitReference(ref: string): { repository: string; tag?: string; digest?: string } {
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  return {
    repository: rest,
    ...(tag === undefined ? {} : { tag }),
    ...(digest === undefined ? {} : { digest }),
  };
}

/** URL-safe base64 *with* padding: the engine decodes with Go's `base64.URLEncoding`, which requires it. */
function encodeAuth(auth: RegistryAuth): string {
  return Buffer.from(JSON.stringify(auth)).toString('base64').replaceAll('+', '-').replaceAll('/', '_');
}

function engineMessage(text: string): string {
  try {
    return (JSON.parse(text) as { message?: string }).message ?? text.trim();
  } catch {
    return text.trim();
  }
}

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads a progress stream (JSON lines) to its end; an `error` line rejects with the engine's message. */
async function readProgress(
  stream: Readable,
  what: string,
  onMessage?: (message: ProgressMessage) => void,
): Promise<void> {
  let pending = '';
  let failure: string | undefined;
  const handle = (line: string): void => {
    if (line.trim() === '') return;
    let message: ProgressMessage;
    try {
      message = JSON.parse(line) as ProgressMessage;
    } catch {
      message = { stream: `${line}\n` };
    }
    if (message.error !== undefined) failure ??= message.errorDetail?.message ?? message.error;
    onMessage?.(message);
  };
  for await (const chunk of stream) {
    pending += (chunk as Buffer).toString('utf8');
    let newline = pending.indexOf('\n');
    while (newline !== -1) {
      handle(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
      newline = pending.indexOf('\n');
    }
  }
  handle(pending);
  if (failure !== undefined) throw new DockerError(0, what, failure);
}

/** One record of a container's log stream: which stream, when (epoch ms and the engine's exact stamp), the text. */
export interface LogFrame {
  stream: 'out' | 'err';
  /** The engine's RFC 3339 timestamp, nanoseconds included: the resume point after a restart. */
  stamp: string;
  t: number;
  /** The text without its timestamp (a line keeps its newline; a partial line of over 16 KiB has none). */
  text: Buffer;
}

/**
 * Splits the engine's multiplexed log stream (8-byte headers: stream, 3 zero bytes, big-endian length) into frames,
 * each one log message prefixed by its timestamp.
 */
export class LogFrameReader {
  #buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): LogFrame[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const frames: LogFrame[] = [];
    while (this.#buffer.length >= 8) {
      const size = this.#buffer.readUInt32BE(4);
      if (this.#buffer.length < 8 + size) break;
      const kind = this.#buffer[0] === 2 ? 'err' : 'out';
      const payload = this.#buffer.subarray(8, 8 + size);
      this.#buffer = this.#buffer.subarray(8 + size);
      const space = payload.indexOf(0x20);
      const stamp = space === -1 ? '' : payload.toString('latin1', 0, space);
      const t = Date.parse(stamp);
      frames.push({
        stream: kind,
        stamp,
        t: Number.isNaN(t) ? Date.now() : t,
        text: Buffer.from(space === -1 ? payload : payload.subarray(space + 1)),
      });
    }
    return frames;
  }
}
