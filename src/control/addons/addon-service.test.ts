// The add-on service on the fake runtime and a scripted engine: provisioning, supervision (crash, backoff,
// adoption), rotation, backups and their failures, destroy and the declared add-ons of a spec, in milliseconds.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { FakeHost, FakeRuntime } from '../../../test/fakes/fake-runtime.js';
import { openTestState, seedInstance, type TestState } from '../../../test/fakes/state.js';
import { type AddonKind, passwordSecretName } from '../../domain/addon.js';
import { BerthError } from '../../domain/errors.js';
import { parseSpec } from '../../domain/spec.js';
import type { AddonEngine, ServerContext } from './addon-engine.js';
import { type AddonSecrets, AddonService, backupsDirOf } from './addon-service.js';
import { type AddonRotation, AddonStore } from './addon-store.js';

/** An engine whose server is whatever the fake runtime runs; it answers when `ready` says so. */
class ScriptedEngine implements AddonEngine {
  readonly debianPackage = 'fake-server';
  readonly backupExtension = 'bak';
  readonly initialLogin = 'user-a';
  readonly calls: string[] = [];
  ready = (): boolean => true;
  /** What a backup does: writes some bytes, then fails when set (a full disk). */
  backupFails: NodeJS.ErrnoException | undefined;

  constructor(readonly kind: AddonKind) {}

  versions(): string[] {
    return ['7', '6'];
  }

  async initialise(ctx: ServerContext, seed: string | undefined): Promise<void> {
    mkdirSync(ctx.dir, { recursive: true });
    this.calls.push(`initialise${seed === undefined ? '' : ' seeded'}`);
  }

  prepareStart(ctx: ServerContext): string {
    return `fake-server --port ${ctx.port}`;
  }

  async probe(): Promise<boolean> {
    return this.ready();
  }

  async setUp(ctx: ServerContext): Promise<void> {
    this.calls.push(`setUp ${ctx.login}`);
  }

  url(port: number, login: string, password: string): string {
    return `fake://${login}:${password}@127.0.0.1:${port}`;
  }

  async beginRotation(
    ctx: ServerContext,
  ): Promise<{ login: string; retiring: Omit<AddonRotation, 'since'> }> {
    this.calls.push(`begin ${ctx.login}`);
    return { login: ctx.login === 'user-a' ? 'user-b' : 'user-a', retiring: { login: ctx.login } };
  }

  async endRotation(_ctx: ServerContext, retiring: Omit<AddonRotation, 'since'>): Promise<void> {
    this.calls.push(`revoke ${retiring.login}`);
  }

  async backup(_ctx: ServerContext, file: string): Promise<void> {
    writeFileSync(file, 'half a backup');
    if (this.backupFails) throw this.backupFails;
    writeFileSync(file, 'a whole backup');
  }
}

/** Secrets in a map: set records whether a release was asked for. */
class MapSecrets implements AddonSecrets {
  readonly values = new Map<string, string>();
  readonly changes: { names: string[]; release: boolean }[] = [];

  resolve(app: string, names: readonly string[]): Record<string, string> {
    return Object.fromEntries(names.map((n) => [n, this.values.get(`${app}/${n}`)!]));
  }

  versions(app: string, names: readonly string[]): Record<string, number> {
    return Object.fromEntries(names.map((n) => [n, this.values.has(`${app}/${n}`) ? 1 : 0]));
  }

  set(
    app: string,
    values: Record<string, string>,
    _actor: string,
    options: { release?: boolean } = {},
  ): void {
    for (const [name, value] of Object.entries(values)) this.values.set(`${app}/${name}`, value);
    this.changes.push({ names: Object.keys(values), release: options.release ?? true });
  }

  unset(app: string, names: readonly string[]): void {
    for (const name of names) this.values.delete(`${app}/${name}`);
  }
}

interface World {
  state: TestState;
  runtime: FakeRuntime;
  host: FakeHost;
  engine: ScriptedEngine;
  secrets: MapSecrets;
  service: AddonService;
  dataDir: string;
  /** A new service (and runtime) on the same state and host: a restart of the control plane. */
  restart(): AddonService;
}

const worlds: AddonService[] = [];

function world(): World {
  const state = openTestState();
  const host = new FakeHost();
  const engine = new ScriptedEngine('redis');
  const secrets = new MapSecrets();
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-addon-unit-'));
  let port = 40_000;
  const make = (runtime: FakeRuntime): AddonService => {
    const service = new AddonService({
      store: new AddonStore(state.db, state.events),
      core: state.store,
      events: state.events,
      runtime,
      secrets,
      dataDir,
      engines: [engine],
      serverUser: () => ({ name: 'me', uid: 1000, gid: 1000, dropsPrivileges: false, prefix: [] }),
      backoff: { initialMs: 40, maxMs: 200, factor: 2, resetAfterMs: 60_000 },
      allocatePort: async () => port++,
      readyTimeoutMs: 300,
    });
    worlds.push(service);
    return service;
  };
  const runtime = new FakeRuntime({ host });
  const service = make(runtime);
  service.start();
  return {
    state,
    runtime,
    host,
    engine,
    secrets,
    service,
    dataDir,
    restart() {
      const next = make(new FakeRuntime({ host }));
      next.start();
      return next;
    },
  };
}

// 10 s: on a loaded machine (load average 17 seen) the loop's timers can lag by seconds; passing runs take ms.
async function until<T>(what: string, check: () => T | undefined | false, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const kinds = (w: World): string[] => w.state.events.list({ limit: 1000 }).map((e) => e.kind);

describe('AddonService', () => {
  afterEach(async () => {
    for (const service of worlds.splice(0)) await service.stop();
  });

  it('provisions an add-on: its server runs through the runtime, its passwords and URL are secrets', async () => {
    const w = world();
    const view = await w.service.create({ app: 'shop', kind: 'redis', actor: 'admin' });
    assert.equal(view.state, 'available');
    assert.equal(view.name, 'redis');
    assert.equal(view.as, 'REDIS_URL');
    assert.equal(view.version, '7');
    assert.deepEqual(w.host.running(), [w.runtime.started[0]!.instanceId]);
    assert.match(w.runtime.started[0]!.instanceId, /^shop:redis\.[0-9a-f]{6}$/);
    const password = w.secrets.values.get(`shop/${passwordSecretName('redis', 'app')}`)!;
    assert.equal(w.secrets.values.get('shop/REDIS_URL'), `fake://user-a:${password}@127.0.0.1:${view.port}`);
    assert.deepEqual(w.secrets.changes, [
      { names: [passwordSecretName('redis', 'app'), passwordSecretName('redis', 'admin')], release: false },
      { names: ['REDIS_URL'], release: true },
    ]);
    assert.equal(view.maskedUrl.includes(password), false);
    assert.deepEqual(w.runtime.started[0]!.scrub, {
      [passwordSecretName('redis', 'app')]: password,
      [passwordSecretName('redis', 'admin')]: w.secrets.values.get(
        `shop/${passwordSecretName('redis', 'admin')}`,
      ),
    });
    assert.deepEqual(w.service.attachedNames('shop'), ['REDIS_URL']);
    assert.deepEqual(kinds(w).slice(-2), ['addon.provisioning', 'addon.available']);
  });

  it('refuses an unknown kind or version, a taken name and a taken variable before anything happens', async () => {
    const w = world();
    await w.service.create({ app: 'shop', kind: 'redis', name: 'cache', actor: 'admin' });
    const refusals: [Parameters<AddonService['create']>[0], RegExp][] = [
      [{ app: 'shop', kind: 'mysql', actor: 'a' }, /unknown add-on kind "mysql": Berth provides redis/],
      [
        { app: 'shop', kind: 'redis', version: '9', actor: 'a' },
        /unknown redis version 9: this machine has 7, 6/,
      ],
      [{ app: 'shop', kind: 'redis', name: 'cache', actor: 'a' }, /shop already has an add-on named cache/],
      [
        { app: 'shop', kind: 'redis', name: 'other', actor: 'a' },
        /add-on cache is already given as REDIS_URL/,
      ],
      [{ app: 'shop', kind: 'redis', name: 'x', as: 'BERTH_X', actor: 'a' }, /bad variable name BERTH_X/],
    ];
    for (const [request, message] of refusals) await assert.rejects(w.service.create(request), message);
    assert.equal(w.runtime.started.length, 1, 'no server started for a refused create');
    assert.equal(w.service.list('shop').length, 1);
  });

  it('leaves nothing of an add-on whose server exits at start, and says so', async () => {
    const w = world();
    w.host.program = () => ({ exitAfterMs: 0, exit: { code: 1, signal: null } });
    w.engine.ready = () => false;
    await assert.rejects(
      w.service.create({ app: 'shop', kind: 'redis', actor: 'admin' }),
      /shop\/redis: provisioning redis failed: the server exited with code 1 at start/,
    );
    assert.deepEqual(w.service.list('shop'), []);
    assert.equal(existsSync(join(w.dataDir, 'addons', 'shop', 'redis')), false);
    assert.deepEqual([...w.secrets.values.keys()], []);
    assert.equal(kinds(w).at(-1), 'addon.failed');
    // The name is free again.
    w.host.program = () => ({});
    w.engine.ready = () => true;
    assert.equal((await w.service.create({ app: 'shop', kind: 'redis', actor: 'admin' })).state, 'available');
  });

  it('restarts a crashed server at once, a second crash after the backoff, and reports each', async () => {
    const w = world();
    await w.service.create({ app: 'shop', kind: 'redis', actor: 'admin' });
    w.runtime.crash(w.runtime.started[0]!.instanceId, { code: null, signal: 'SIGKILL' });
    await until('a restart', () => w.runtime.started.length === 2);
    await until('available again', () => w.service.list('shop')[0]!.state === 'available');
    const crashedAt = Date.now();
    w.runtime.crash(w.runtime.started[1]!.instanceId);
    // The crash as recorded, not the `unavailable` state: that lasts only the 40 ms backoff, which a poll can miss.
    await until(
      'the second crash recorded',
      () => w.state.events.list({ limit: 100 }).filter((e) => e.kind === 'addon.crashed').length === 2,
    );
    await until('a second restart', () => w.runtime.started.length === 3);
    assert.ok(Date.now() - crashedAt >= 35, 'the second start waited for the backoff');
    await until('available', () => w.service.list('shop')[0]!.state === 'available');
    const crashes = w.state.events.list({ limit: 100 }).filter((e) => e.kind === 'addon.crashed');
    assert.match(crashes[0]!.message, /killed by SIGKILL after .*; restarting it now/);
    assert.match(crashes[1]!.message, /exited with code 1 after .*2 failures in a row, next start in 40ms/);
    assert.equal(kinds(w).filter((k) => k === 'addon.restarted').length, 2);
  });

  it('adopts the running server after a restart of the control plane, and restarts one that ended meanwhile', async () => {
    const w = world();
    await w.service.create({ app: 'shop', kind: 'redis', name: 'a', actor: 'admin' });
    await w.service.create({ app: 'shop', kind: 'redis', name: 'b', as: 'B_URL', actor: 'admin' });
    await w.service.stop();
    // While no control plane runs, b's server dies.
    w.host.end(w.runtime.started[1]!.instanceId, { code: 137, signal: null });
    const next = w.restart();
    assert.deepEqual(
      next.ownedRefs().map((r) => r.instanceId),
      w.runtime.started.map((r) => r.instanceId),
    );
    await until(
      'b restarted',
      () => next.list('shop').every((a) => a.state === 'available') && w.host.running().length === 2,
    );
    const adopted = w.state.events.list({ limit: 100 }).filter((e) => e.kind === 'addon.adopted');
    assert.deepEqual(
      adopted.map((e) => e.service),
      ['addon:a'],
    );
    assert.match(
      w.state.events.list({ limit: 100 }).find((e) => e.kind === 'addon.crashed')!.message,
      /exited with code 137/,
    );
  });

  it('rotates: new credentials beside the old, revoked once no instance started before the rotation runs', async () => {
    const w = world();
    await w.service.create({ app: 'shop', kind: 'redis', actor: 'admin' });
    const old = seedInstance(w.state.store, {
      id: 'shop.web.1',
      app: 'shop',
      service: 'web',
      release: 1,
      configHash: 'h',
      state: 'healthy',
      pid: 1,
      processStart: 1,
      port: 1,
      runtime: 'process',
      createdAt: Date.now() - 1000,
      healthyAt: null,
      endedAt: null,
      exitCode: null,
      exitSignal: null,
      reason: null,
      logPath: '',
    });
    const view = await w.service.rotate('shop', 'redis', 'admin');
    assert.equal(view.rotating, true);
    assert.match(w.secrets.values.get('shop/REDIS_URL')!, /^fake:\/\/user-b:/);
    await assert.rejects(
      w.service.rotate('shop', 'redis', 'admin'),
      /is being rotated: 1 instances still run/,
    );
    await new Promise((resolve) => setTimeout(resolve, 1200));
    assert.equal(w.engine.calls.includes('revoke user-a'), false, 'not while an old instance runs');
    w.state.store.transitionInstance(old.id, 'crashed', 'gone', {
      event: () => ({ actor: 't', kind: 't', message: 't' }),
    });
    await until('the revocation', () => w.engine.calls.includes('revoke user-a'));
    await until('rotation done', () => !w.service.list('shop')[0]!.rotating);
    assert.equal(kinds(w).at(-1), 'addon.rotated');
  });

  it('keeps no file of a backup that fails (a full disk), and the newest `keep` of those that succeed', async () => {
    const w = world();
    await w.service.create({ app: 'shop', kind: 'redis', actor: 'admin' });
    const dir = backupsDirOf(w.dataDir, 'shop');
    w.engine.backupFails = Object.assign(new Error('ENOSPC: no space left on device, write'), {
      code: 'ENOSPC',
    });
    await assert.rejects(
      w.service.backup('shop', 'redis', 'admin'),
      /backup of shop\/redis failed: no space left on the device .*; the server keeps running and no backup file was kept/,
    );
    assert.deepEqual(readdirSync(dir), []);
    assert.equal(w.service.list('shop')[0]!.state, 'available');
    w.engine.backupFails = undefined;
    const store = new AddonStore(w.state.db, w.state.events);
    store.setBackupPolicy(w.service.list('shop')[0]!.id, { everyMs: 86_400_000, keep: 2 });
    const taken = [];
    for (let i = 0; i < 3; i++) taken.push((await w.service.backup('shop', 'redis', 'admin')).id);
    assert.deepEqual(
      w.service.listBackups('shop').map((b) => b.id),
      taken.slice(1),
    );
    assert.deepEqual(
      readdirSync(dir).sort(),
      taken
        .slice(1)
        .map((id) => `${id}.bak`)
        .sort(),
    );
  });

  it('destroys only when confirmed and not declared; its backups stay; restore makes a new add-on from one', async () => {
    const w = world();
    await w.service.create({ app: 'shop', kind: 'redis', name: 'cache', actor: 'admin' });
    const backup = await w.service.backup('shop', 'cache', 'admin');
    w.state.store.createRelease(
      parseSpec('app: shop\nservices:\n  web: { run: x }\naddons:\n  cache: redis\n', { file: 'berth.yaml' }),
      '/src',
      'v1',
    );
    await assert.rejects(
      w.service.destroy('shop', 'cache', undefined, 'admin'),
      /confirm with the app's name: --confirm shop/,
    );
    await assert.rejects(
      w.service.destroy('shop', 'cache', 'shop', 'admin'),
      (error: unknown) =>
        error instanceof BerthError &&
        error.code === 'conflict' &&
        /declares add-on cache/.test(error.message),
    );
    w.state.store.createRelease(
      parseSpec('app: shop\nservices:\n  web: { run: x }\n', { file: 'berth.yaml' }),
      '/src',
      'v2',
    );
    assert.deepEqual(await w.service.destroy('shop', 'cache', 'shop', 'admin'), { backupsKept: 1 });
    assert.deepEqual(w.host.running(), []);
    assert.equal(w.secrets.values.has('shop/REDIS_URL'), false);
    const restored = await w.service.restore('shop', 'again', backup.id, 'admin');
    assert.equal(restored.state, 'available');
    assert.deepEqual(w.engine.calls.slice(-2), ['initialise seeded', 'setUp user-a']);
  });

  it('provisions the add-ons a spec declares, or none when one of them cannot be', async () => {
    const w = world();
    const spec = (addons: string): ReturnType<typeof parseSpec> =>
      parseSpec(`app: shop\nservices:\n  web: { run: x }\naddons:\n${addons}`, { file: 'berth.yaml' });
    await assert.rejects(
      w.service.ensureDeclared(
        spec('  cache: redis\n  db: { kind: redis, version: "9", as: DB_URL }\n'),
        'admin',
      ),
      /addons\.db: unknown redis version 9/,
    );
    assert.deepEqual(w.service.list('shop'), []);
    await w.service.ensureDeclared(spec('  cache: redis\n  db: { kind: redis, as: DB_URL }\n'), 'admin');
    assert.deepEqual(
      w.service.list('shop').map((a) => `${a.name} ${a.state} ${a.as}`),
      ['cache available REDIS_URL', 'db available DB_URL'],
    );
    assert.ok(
      w.secrets.changes.every((c) => !c.release),
      'the deploy makes the release',
    );
    // Again: nothing new; a stopped one is started, a renamed variable follows.
    await w.service.stopAddon('shop', 'db', 'admin');
    await w.service.ensureDeclared(
      spec('  cache: redis\n  db: { kind: redis, as: SESSIONS_URL }\n'),
      'admin',
    );
    assert.deepEqual(
      w.service.list('shop').map((a) => `${a.name} ${a.state} ${a.as}`),
      ['cache available REDIS_URL', 'db available SESSIONS_URL'],
    );
    assert.equal(w.secrets.values.has('shop/DB_URL'), false);
    assert.equal(w.runtime.started.length, 3);
  });
});
