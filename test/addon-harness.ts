// Shared by the add-on integration tests: the skip reason, clients of the real servers, a control plane's add-ons.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { PostgresEngine } from '../src/control/addons/postgres-engine.js';
import { RedisConnection } from '../src/control/addons/redis-connection.js';
import type { AddonView } from '../src/domain/addon.js';
import { type ControlPlaneProcess, proxyUnavailable, runCli, shutDown, stopApps } from './control-harness.js';
import { requireTool } from './require-tool.js';

export const run = promisify(execFile);
const postgres = new PostgresEngine();
const PSQL = `/usr/lib/postgresql/${postgres.versions()[0] ?? '15'}/bin/psql`;

/** Why the add-on tests cannot run here, naming the Debian package; false when they can. */
export const skip =
  proxyUnavailable ||
  requireTool('redis-server', 'redis-server') ||
  (postgres.versions().includes('15') ? false : 'PostgreSQL 15 not installed (Debian package postgresql)');

/** The server process under an add-on's shim: redis-server, or the postmaster. */
export function serverPid(shimPid: number, comm: string): number {
  const parents = new Map<number, number>();
  const names = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      names.set(Number(entry), stat.slice(stat.indexOf('(') + 1, close));
      parents.set(Number(entry), Number(stat.slice(close + 2).split(' ')[1]));
    } catch {
      // Gone meanwhile.
    }
  }
  const descends = (pid: number): boolean => {
    for (let p = parents.get(pid); p !== undefined && p > 1; p = parents.get(p))
      if (p === shimPid) return true;
    return false;
  };
  const found = [...names].find(
    ([pid, name]) => name === comm && descends(pid) && names.get(parents.get(pid)!) !== comm,
  );
  assert.ok(found, `no ${comm} under pid ${shimPid}`);
  return found[0];
}

/** Ports listening on 127.0.0.1 only (from /proc/net/tcp): `0100007F:PORT` in state 0A. */
export function loopbackListeners(): Set<number> {
  const ports = new Set<number>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const [, local, , state] = line.trim().split(/\s+/);
    if (state === '0A' && local?.startsWith('0100007F:')) ports.add(Number.parseInt(local.slice(9), 16));
  }
  return ports;
}

export async function psql(url: string, sql: string): Promise<string> {
  const { stdout } = await run(PSQL, ['--no-psqlrc', '-tAX', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', sql], {
    timeout: 30_000,
  });
  return stdout.trim();
}

export async function redis(url: string, ...command: string[]): Promise<unknown> {
  const parsed = new URL(url);
  const connection = await RedisConnection.open(Number(parsed.port), {
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
  });
  try {
    return await connection.command(command);
  } finally {
    connection.close();
  }
}

/** The CLI and API of the add-ons of the control plane `plane()` on `dataDir()` (both change over a test file). */
export function addonClient(dataDir: () => string, plane: () => ControlPlaneProcess) {
  const cli = async (...args: string[]): Promise<string> => {
    const result = await runCli(dataDir(), args);
    assert.equal(result.code, 0, `berth ${args.join(' ')}: ${result.stderr}${result.stdout}`);
    return result.stdout;
  };
  return {
    cli,
    /** Runs a command that must fail; its stderr. */
    refused: async (...args: string[]): Promise<string> => {
      const result = await runCli(dataDir(), args);
      assert.notEqual(result.code, 0, `berth ${args.join(' ')} should fail: ${result.stdout}`);
      return result.stderr;
    },
    addons: (of: string): Promise<AddonView[]> =>
      plane().client.request<AddonView[]>('GET', `/v1/apps/${of}/addons`),
    addon: (of: string, name: string): Promise<AddonView> =>
      plane().client.request<AddonView>('GET', `/v1/apps/${of}/addons/${name}`),
    /** Creates an add-on through the API, where that is set-up (`berth addons create` is tested in addons). */
    create: (of: string, kind: string, name?: string): Promise<AddonView> =>
      plane().client.request<AddonView>('POST', `/v1/apps/${of}/addons`, {
        kind,
        ...(name === undefined ? {} : { name }),
      }),
    /** Stops an add-on's server through the API, where that is set-up. */
    stop: (of: string, name: string): Promise<AddonView> =>
      plane().client.request<AddonView>('POST', `/v1/apps/${of}/addons/${name}/stop`, {}),
    /** A secret's value through the API: reading a URL back is set-up here; `secrets get` is tested in secrets. */
    reveal: async (of: string, name: string): Promise<string> =>
      (
        await plane().client.request<{ value: string }>(
          'POST',
          `/v1/apps/${of}/secrets/${encodeURIComponent(name)}/reveal`,
          {},
        )
      ).value,
  };
}

/**
 * The end of an add-on suite: add-on servers outlive control planes by design, so each one still running is stopped
 * through the plane, then the plane goes (`shutDown`). The apps go first, so that no server is stopped under an app's
 * load.
 */
export async function shutDownWithAddons(
  plane: ControlPlaneProcess | undefined,
  dataDir: string,
): Promise<void> {
  if (plane) {
    await stopApps(plane);
    for (const a of await plane.client.request<AddonView[]>('GET', '/v1/addons').catch(() => [])) {
      if (a.state !== 'stopped')
        await plane.client
          .request('POST', `/v1/apps/${a.app}/addons/${a.name}/stop`, {})
          .catch(() => undefined);
    }
  }
  await shutDown(plane, dataDir);
}
