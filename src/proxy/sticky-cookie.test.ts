import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cookieValues, StickyCookie } from './sticky-cookie.js';

describe('cookieValues', () => {
  it('finds every cookie of a name, and only whole names', () => {
    assert.deepEqual(cookieValues(undefined, 'berth-tg'), []);
    assert.deepEqual(cookieValues('berth-tg=a', 'berth-tg'), ['a']);
    assert.deepEqual(cookieValues('x=1; berth-tg=a;berth-tg=b ; y=2', 'berth-tg'), ['a', 'b']);
    assert.deepEqual(cookieValues('xberth-tg=a; berth-tgx=b; berth-tg', 'berth-tg'), []);
    assert.deepEqual(cookieValues('q=berth-tg=a', 'berth-tg'), []);
    assert.deepEqual(cookieValues('berth-tg=', 'berth-tg'), ['']);
  });
});

describe('StickyCookie', () => {
  it('makes one private key per state directory and gives the same tokens from it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-sticky-'));
    try {
      const path = join(dir, 'sticky-cookie.key');
      const a = StickyCookie.fromFile(path);
      const b = StickyCookie.fromFile(path);
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.equal(a.token('shop.web'), b.token('shop.web'));
      assert.notEqual(a.token('shop.web'), a.token('shop.web.v2'));
      assert.match(a.token('shop.web'), /^[A-Za-z0-9_-]{22}$/);
      assert.notEqual(new StickyCookie(Buffer.alloc(32, 1)).token('shop.web'), a.token('shop.web'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
