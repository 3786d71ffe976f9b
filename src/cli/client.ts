// The CLI's typed client of the control plane's REST API: finds it through the data directory, sends the token.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type {
  AppStatus,
  DeploymentView,
  DeployResult,
  InstanceView,
  LogLine,
  ReleaseView,
  ServiceStatus,
} from '../domain/api-types.js';
import { type ControlEndpoint, controlPaths } from '../domain/data-dir.js';
import type { Deployment } from '../domain/deployment.js';
import { BerthError, type ErrorCode, type Issue } from '../domain/errors.js';
import type { BerthEvent } from '../domain/event.js';
import type { ProxyRestartResult, ProxyView } from '../domain/proxy-keeper.js';
import { isRunning, readPidFile } from '../lib/process-identity.js';

export class ApiClient {
  readonly url: string;
  readonly #token: string;

  constructor(url: string, token: string) {
    this.url = url;
    this.#token = token;
  }

  /** The client of the control plane running on `dataDir`, or a clear error saying why there is none. */
  static fromDataDir(dataDir: string): ApiClient {
    const paths = controlPaths(dataDir);
    const endpoint = readPidFile<ControlEndpoint>(paths.endpoint);
    if (endpoint === undefined) {
      throw new BerthError(
        'runtime_failure',
        `Berth is not running on the data directory ${dataDir}; start it with \`berth up\` (or \`berth up --detach\`)`,
      );
    }
    if (!isRunning(endpoint)) {
      throw new BerthError(
        'runtime_failure',
        `Berth is not running on the data directory ${dataDir}: its control plane (pid ${endpoint.pid}) has exited; start it again with \`berth up\``,
      );
    }
    if (!endpoint.url) {
      throw new BerthError(
        'runtime_failure',
        `Berth is starting on the data directory ${dataDir} (pid ${endpoint.pid}); try again in a moment`,
      );
    }
    let token: string;
    try {
      token = readFileSync(paths.token, 'utf8').trim();
    } catch (cause) {
      throw new BerthError(
        'runtime_failure',
        `cannot read the admin token ${paths.token}: ${(cause as Error).message}`,
        {
          cause,
        },
      );
    }
    return new ApiClient(endpoint.url, token);
  }

  /** The response itself, for bodies that are not JSON (a backup archive). */
  raw(method: string, path: string, body?: unknown): Promise<Response> {
    return this.#fetch(method, path, body);
  }

  /**
   * One JSON call. Over `node:http`, not `fetch`: the first fetch of a process loads and initialises undici (its
   * WebAssembly parser included), about 40 ms of the 150 ms a read command like `berth ps` may take.
   */
  request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      const request = http.request(new URL(path, this.url), {
        method,
        headers: {
          authorization: `Bearer ${this.#token}`,
          ...(payload === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
        },
      });
      request.on('error', (error) => reject(this.#unreachable(error)));
      request.on('response', (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', (error) => reject(this.#unreachable(error)));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            try {
              resolve(JSON.parse(text) as T);
            } catch (error) {
              reject(
                new BerthError('internal', `the control plane answered ${path} with no JSON`, {
                  cause: error,
                }),
              );
            }
            return;
          }
          let parsed: unknown = {};
          try {
            parsed = JSON.parse(text);
          } catch {
            // Not JSON: the status says what there is to say.
          }
          reject(apiError(parsed, status));
        });
      });
      request.end(payload);
    });
  }

  /** A streaming response, for `logs -f`: yields each line as it comes. */
  async *stream(path: string, signal?: AbortSignal): AsyncGenerator<string> {
    const response = await this.#fetch('GET', path, undefined, signal);
    const decoder = new TextDecoder();
    let buffered = '';
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(chunk, { stream: true });
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      yield* lines;
    }
  }

  async #fetch(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(new URL(path, this.url), {
        method,
        headers: {
          authorization: `Bearer ${this.#token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (error) {
      throw this.#unreachable(error);
    }
    if (!response.ok) throw apiError(await response.json().catch(() => ({})), response.status);
    return response;
  }

  #unreachable(cause: unknown): BerthError {
    return new BerthError(
      'runtime_failure',
      `cannot reach the control plane at ${this.url}; is \`berth up\` running?`,
      {
        cause,
      },
    );
  }

  ping(): Promise<{ ok: boolean; version: string }> {
    return this.request('GET', '/v1/ping');
  }

  /** Builds `directory` into a release and deploys it (the server reads the directory: same machine). */
  deploy(directory: string, file?: string, target?: string): Promise<DeployResult> {
    return this.request('POST', '/v1/deploy', {
      directory,
      ...(file === undefined ? {} : { file }),
      ...(target === undefined ? {} : { target }),
    });
  }

  rollback(app: string, version?: number): Promise<DeployResult> {
    return this.request(
      'POST',
      `/v1/apps/${encodeURIComponent(app)}/rollback`,
      version === undefined ? {} : { version },
    );
  }

  deployment(id: number): Promise<DeploymentView> {
    return this.request('GET', `/v1/deployments/${id}`);
  }

  /** The app's deployment in progress, else its last one. */
  currentDeployment(app: string): Promise<DeploymentView> {
    return this.request('GET', `/v1/apps/${encodeURIComponent(app)}/deployment`);
  }

  /** Acts on the app's running canary: `promote` (next step now) or `abort` (all traffic back to the old release). */
  canary(app: string, action: 'promote' | 'abort'): Promise<Deployment> {
    return this.request('POST', `/v1/apps/${encodeURIComponent(app)}/deployment/${action}`, {});
  }

  apps(): Promise<AppStatus[]> {
    return this.request('GET', '/v1/apps');
  }

  app(name: string): Promise<AppStatus> {
    return this.request('GET', `/v1/apps/${encodeURIComponent(name)}`);
  }

  releases(app: string): Promise<ReleaseView[]> {
    return this.request('GET', `/v1/apps/${encodeURIComponent(app)}/releases`);
  }

  scale(app: string, counts: Record<string, number>): Promise<ServiceStatus[]> {
    return this.request('POST', `/v1/apps/${encodeURIComponent(app)}/scale`, { counts });
  }

  /** Replaces a service's instances with fresh ones of the same release, rolling. */
  restart(app: string, service: string): Promise<ServiceStatus> {
    return this.request(
      'POST',
      `/v1/apps/${encodeURIComponent(app)}/services/${encodeURIComponent(service)}/restart`,
      {},
    );
  }

  down(app: string): Promise<AppStatus> {
    return this.request('POST', `/v1/apps/${encodeURIComponent(app)}/down`, {});
  }

  downAll(): Promise<AppStatus[]> {
    return this.request('POST', '/v1/down', {});
  }

  proxy(): Promise<ProxyView> {
    return this.request('GET', '/v1/proxy');
  }

  /** Hands the proxy over to a new worker; resolves once it serves (the old one is still finishing). */
  restartProxy(): Promise<ProxyRestartResult> {
    return this.request('POST', '/v1/proxy/restart', {});
  }

  instances(filter: { app?: string; all?: boolean } = {}): Promise<InstanceView[]> {
    const query = new URLSearchParams();
    if (filter.app) query.set('app', filter.app);
    if (filter.all) query.set('all', '1');
    return this.request('GET', `/v1/instances?${query}`);
  }

  events(filter: { app?: string; after?: number; limit?: number } = {}): Promise<BerthEvent[]> {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(filter)) if (value !== undefined) query.set(key, String(value));
    return this.request('GET', `/v1/events?${query}`);
  }

  logs(app: string, options: { lines?: number; service?: string; instance?: string }): Promise<LogLine[]> {
    return this.request('GET', `/v1/apps/${encodeURIComponent(app)}/logs?${logQuery(options)}`);
  }

  followLogs(
    app: string,
    options: { lines?: number; service?: string; instance?: string },
    signal?: AbortSignal,
  ): AsyncGenerator<string> {
    return this.stream(
      `/v1/apps/${encodeURIComponent(app)}/logs?${logQuery({ ...options, follow: '1' })}`,
      signal,
    );
  }
}

function logQuery(options: Record<string, string | number | undefined>): URLSearchParams {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(options)) if (value !== undefined) query.set(key, String(value));
  return query;
}

/** The error an API response with status `status` carries (`{ error: { code, message, issues } }`). */
function apiError(payload: unknown, status: number): BerthError {
  const error = (payload as { error?: { code: ErrorCode; message: string; issues?: Issue[] } } | null)?.error;
  return new BerthError(error?.code ?? 'internal', error?.message ?? `HTTP ${status}`, {
    issues: error?.issues ?? [],
  });
}
