// Unit tests of the secrets service on a real SQLite store: versions, labels, soft delete, master key handling.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Database } from '../store/database.js';
import { EventStore } from '../store/event-store.js';
import { Store } from '../store/store.js';
import { masterKeyPath } from './master-key.js';
import { TextScrubber } from './scrubber.js';
import { SecretsService } from './secrets-service.js';

function open(dataDir: string, options: { envKey?: string; now?: () => number } = {}) {
  const db = Database.open(join(dataDir, 'state.db'));
  const scrubber = new TextScrubber();
  const events = new EventStore(db, { scrubber });
  const store = new Store(db, events);
  const secrets = SecretsService.open({ db, store, events, dataDir, scrubber, ...options });
  return {
    store,
    events,
    secrets,
    scrubber,
    close: () => {
      secrets.close();
      db.close();
    },
  };
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'berth-secrets-'));
}

describe('SecretsService', () => {
  it('creates an owner-only master key on first start and round-trips values', () => {
    const dir = tempDir();
    const { secrets, close } = open(dir);
    assert.equal(statSync(masterKeyPath(dir)).mode & 0o777, 0o600);
    secrets.set('shop', { API_KEY: 'k-123456', DATABASE_URL: 'postgres://db' }, 'test');
    assert.deepEqual(secrets.resolve('shop', ['API_KEY']), { API_KEY: 'k-123456' });
    close();
    const again = open(dir);
    assert.deepEqual(again.secrets.resolve('shop', ['API_KEY', 'DATABASE_URL']), {
      API_KEY: 'k-123456',
      DATABASE_URL: 'postgres://db',
    });
    again.close();
  });

  it('labels versions current and previous, and rolls current back', () => {
    const { secrets, close } = open(tempDir());
    secrets.set('shop', { TOKEN: 'first-value' }, 'test');
    secrets.set('shop', { TOKEN: 'second-value' }, 'test');
    assert.deepEqual(secrets.versions('shop', ['TOKEN', 'NOPE']), { TOKEN: 2, NOPE: 0 });
    const [info] = secrets.list('shop');
    assert.equal(info?.version, 2);
    assert.equal(info?.previousVersion, 1);
    assert.deepEqual(secrets.rollback('shop', 'TOKEN', 'test'), { name: 'TOKEN', version: 1, from: 2 });
    assert.equal(secrets.resolve('shop', ['TOKEN']).TOKEN, 'first-value');
    assert.equal(secrets.list('shop')[0]?.previousVersion, 2);
    close();
  });

  it('names missing secrets, and treats an unset one as missing until restored', () => {
    let now = 1_000_000;
    const { secrets, close } = open(tempDir(), { now: () => now });
    secrets.set('shop', { TOKEN: 'value-1234' }, 'test');
    assert.throws(() => secrets.resolve('shop', ['TOKEN', 'MISSING']), {
      code: 'not_found',
      message: /MISSING/,
    });
    secrets.unset('shop', ['TOKEN'], 'test');
    assert.throws(() => secrets.resolve('shop', ['TOKEN']), /no secret TOKEN/);
    secrets.restore('shop', 'TOKEN', 'test');
    assert.equal(secrets.resolve('shop', ['TOKEN']).TOKEN, 'value-1234');
    secrets.unset('shop', ['TOKEN'], 'test');
    now += 8 * 24 * 3600 * 1000;
    assert.equal(secrets.purgeExpired(), 1);
    assert.deepEqual(secrets.list('shop'), []);
    close();
  });

  it('never puts a value in an event, and reveals only with a recorded event', () => {
    const { secrets, store, events, close } = open(tempDir());
    secrets.set('shop', { TOKEN: 'hush-hush-value' }, 'test');
    events.record({
      actor: 'test',
      kind: 'x',
      message: 'oops hush-hush-value leaked',
      data: { v: 'hush-hush-value' },
    });
    assert.equal(secrets.reveal('shop', 'TOKEN', 'alice').value, 'hush-hush-value');
    const all = store.listEvents();
    assert.ok(!JSON.stringify(all).includes('hush-hush-value'));
    assert.ok(all.some((e) => e.message === 'oops [secret:TOKEN] leaked'));
    assert.ok(all.some((e) => e.kind === 'secret.revealed' && /alice/.test(e.message)));
    close();
  });

  it('refuses bad names and empty values, changing nothing', () => {
    const { secrets, close } = open(tempDir());
    assert.throws(() => secrets.set('shop', { GOOD: 'fine-value', '1BAD': 'x' }, 'test'), {
      code: 'invalid_request',
    });
    assert.throws(() => secrets.set('shop', { PORT: '1234' }, 'test'), /PORT/);
    assert.throws(() => secrets.set('shop', { EMPTY: '' }, 'test'), /empty/);
    assert.deepEqual(secrets.list('shop'), []);
    close();
  });

  it('refuses to start with a key file readable by others', () => {
    const dir = tempDir();
    open(dir).close();
    chmodSync(masterKeyPath(dir), 0o644);
    assert.throws(() => open(dir), {
      code: 'runtime_failure',
      message: /readable by group or others.*chmod 600/,
    });
  });

  it('refuses to start with a wrong master key, changing nothing', () => {
    const dir = tempDir();
    const first = open(dir);
    first.secrets.set('shop', { TOKEN: 'the-value' }, 'test');
    first.close();
    const key = readFileSync(masterKeyPath(dir), 'utf8');
    assert.throws(
      () => open(dir, { envKey: randomBytes(32).toString('base64') }),
      /does not open the existing secrets/,
    );
    writeFileSync(masterKeyPath(dir), `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
    assert.throws(() => open(dir), /does not open the existing secrets/);
    writeFileSync(masterKeyPath(dir), key);
    const again = open(dir);
    assert.equal(again.secrets.resolve('shop', ['TOKEN']).TOKEN, 'the-value');
    again.close();
  });

  it('refuses to create a new key file beside existing secrets', () => {
    const dir = tempDir();
    const first = open(dir);
    first.secrets.set('shop', { TOKEN: 'the-value' }, 'test');
    first.close();
    rmSync(masterKeyPath(dir));
    assert.throws(() => open(dir), /secrets exist but the master key file .* is missing/);
    assert.equal(existsSync(masterKeyPath(dir)), false);
  });

  it('rotates the master key: the old key no longer opens, values stay the same', () => {
    const dir = tempDir();
    const first = open(dir);
    first.secrets.set('shop', { A_KEY: 'value-a', B_KEY: 'value-b' }, 'test');
    const oldKey = readFileSync(masterKeyPath(dir), 'utf8').trim();
    assert.deepEqual(first.secrets.rotateMasterKey('test'), { resealed: 2 });
    assert.equal(first.secrets.resolve('shop', ['A_KEY']).A_KEY, 'value-a');
    first.close();
    assert.notEqual(readFileSync(masterKeyPath(dir), 'utf8').trim(), oldKey);
    assert.equal(statSync(masterKeyPath(dir)).mode & 0o777, 0o600);
    const again = open(dir);
    assert.deepEqual(again.secrets.resolve('shop', ['A_KEY', 'B_KEY']), {
      A_KEY: 'value-a',
      B_KEY: 'value-b',
    });
    again.close();
    assert.throws(() => open(dir, { envKey: oldKey }), /does not open/);
  });

  it('exports to a passphrase bundle and imports it into another data dir', () => {
    const source = open(tempDir());
    source.secrets.set('shop', { API_KEY: 'k-abcdef' }, 'test');
    source.secrets.setConfig('shop', { MODE: 'live' }, 'test');
    const bundle = source.secrets.exportBundle('shop', 'a long passphrase', 'test');
    source.close();
    const target = open(tempDir());
    assert.throws(
      () => target.secrets.importBundle('shop', bundle, 'wrong passphrase', 'test'),
      /wrong passphrase/,
    );
    assert.deepEqual(target.secrets.list('shop'), []);
    assert.deepEqual(target.secrets.importBundle('shop', bundle, 'a long passphrase', 'test'), {
      secrets: ['API_KEY'],
      config: ['MODE'],
    });
    assert.equal(target.secrets.resolve('shop', ['API_KEY']).API_KEY, 'k-abcdef');
    assert.deepEqual(target.secrets.configVars('shop'), { MODE: 'live' });
    target.close();
  });

  it('tells listeners about changes, with names and never values', () => {
    const { secrets, close } = open(tempDir());
    const seen: unknown[] = [];
    secrets.onChange((change) => seen.push(change));
    secrets.set('shop', { TOKEN: 'value-x1' }, 'test');
    secrets.setConfig('shop', { MODE: 'a' }, 'test');
    assert.deepEqual(seen, [
      { app: 'shop', kind: 'secret', names: ['TOKEN'], release: true },
      { app: 'shop', kind: 'config', names: ['MODE'] },
    ]);
    close();
  });
});
