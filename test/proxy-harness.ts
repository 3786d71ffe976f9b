// Shared fixtures of the proxy integration tests: the real proxy process, real backends, and a small client.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProxyAdminClient } from '../src/domain/proxy-admin-client.js';
import { proxyPaths } from '../src/domain/proxy-paths.js';
import { requireTool } from './require-tool.js';

const PROXY_MAIN = join(import.meta.dirname, '..', 'src', 'main', 'proxy.js');

/** Why a suite that starts a proxy (a control plane starts one) is skipped, or false: its local CA needs openssl. */
export const proxyUnavailable = requireTool('openssl', 'openssl');

/** A running proxy process. */
export interface ProxyProcess {
  child: ChildProcess;
  pid: number;
  http: number;
  https: number;
  dataDir: string;
  caCert: string;
  admin: ProxyAdminClient;
  /** SIGTERM and wait for exit (deadline); resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `dist/src/main/proxy.js` on loopback with free ports; resolves once it printed its `listening` line. */
export async function startProxy(
  options: { dataDir?: string; redirect?: boolean; args?: string[] } = {},
): Promise<ProxyProcess> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'berth-proxy-test-'));
  const paths = proxyPaths(dataDir);
  const args = [
    PROXY_MAIN,
    '--data-dir',
    dataDir,
    '--http-port',
    '0',
    '--https-port',
    '0',
    '--host',
    '127.0.0.1',
    '--drain-ms',
    '3000',
    ...(options.redirect === true ? [] : ['--no-redirect']),
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const ready = await new Promise<{ http: number; https: number }>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`proxy did not start within 15 s: ${stderr}`));
    }, 15_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const line = out.split('\n').find((l) => l.includes('"listening"'));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as { http: number; https: number });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`proxy exited with ${code}: ${stderr}`));
    });
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    pid: child.pid!,
    http: ready.http,
    https: ready.https,
    dataDir,
    caCert: paths.caCert,
    admin: new ProxyAdminClient(paths.adminSocket),
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Removes a proxy's temporary data directory. */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A real node:http backend on 127.0.0.1 with a free port. */
export interface Backend {
  port: number;
  server: http.Server;
  requests: number;
  close(): Promise<void>;
}

export async function startBackend(handler: http.RequestListener): Promise<Backend> {
  const server = http.createServer();
  const backend: Backend = {
    port: 0,
    server,
    requests: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on('request', (req, res) => {
    backend.requests++;
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.port = (server.address() as net.AddressInfo).port;
  return backend;
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request to 127.0.0.1:port with a deadline. */
export function request(
  port: number,
  options: {
    host?: string;
    path?: string;
    method?: string;
    headers?: http.OutgoingHttpHeaders;
    body?: string | Buffer;
    agent?: http.Agent | false;
    timeoutMs?: number;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: options.path ?? '/',
        method: options.method ?? 'GET',
        headers: { host: options.host ?? 'app.localhost', ...options.headers },
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          });
        });
        res.on('error', reject);
      },
    );
    const timer = setTimeout(() => req.destroy(new Error('request timed out')), options.timeoutMs ?? 10_000);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(options.body);
  });
}

/** Polls `check` until it returns a value other than undefined, or fails at the deadline. */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  deadlineMs = 10_000,
): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error('condition not met before the deadline');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * A health-check block for tests: a new target joins at its first passing check (checked every 100 ms while
 * initial); a 200 ms timeout and 3 failures to leave keep a machine busy with other work from flapping a healthy
 * target out of rotation (with 80 ms and 2, round robin saw one target of two under stress-ng).
 */
export const FAST_HEALTH = {
  path: '/health',
  intervalMs: 250,
  timeoutMs: 200,
  healthyThreshold: 2,
  unhealthyThreshold: 3,
  successCodes: '200-399',
};

/** Waits until every target of `group` reports health `healthy`. */
export async function waitHealthy(admin: ProxyAdminClient, group: string, count: number): Promise<void> {
  await eventually(async () => {
    const targets = await admin.targets(group);
    return targets.filter((t) => t.health === 'healthy').length >= count ? true : undefined;
  });
}
