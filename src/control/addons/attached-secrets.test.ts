// The add-ons' URLs join the secrets every service names: in the environment and in the config hash.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AttachedSecrets } from './attached-secrets.js';

const values: Record<string, string> = { API_KEY: 'k', REDIS_URL: 'redis://x', DATABASE_URL: 'postgres://y' };
const secrets = {
  resolve: (_app: string, names: readonly string[]) =>
    Object.fromEntries(
      names.map((n) => {
        if (!(n in values)) throw new Error(`no secret ${n}`);
        return [n, values[n]!];
      }),
    ),
  versions: (_app: string, names: readonly string[]) => Object.fromEntries(names.map((n) => [n, 1])),
  configVars: () => ({ LOG_LEVEL: 'info' }),
};

describe('AttachedSecrets', () => {
  it("adds the app's add-on URLs to what a service names, once", () => {
    const attached = new AttachedSecrets(secrets, (app) =>
      app === 'shop' ? ['REDIS_URL', 'DATABASE_URL'] : [],
    );
    assert.deepEqual(attached.resolve('shop', ['API_KEY', 'REDIS_URL']), {
      API_KEY: 'k',
      DATABASE_URL: 'postgres://y',
      REDIS_URL: 'redis://x',
    });
    assert.deepEqual(Object.keys(attached.versions('shop', [])), ['DATABASE_URL', 'REDIS_URL']);
    assert.deepEqual(attached.configVars('shop'), { LOG_LEVEL: 'info' });
  });

  it('changes nothing for an app without add-ons (its config hashes stay what they were)', () => {
    const attached = new AttachedSecrets(secrets, () => []);
    assert.deepEqual(Object.keys(attached.versions('other', ['API_KEY'])), ['API_KEY']);
    assert.deepEqual(attached.resolve('other', []), {});
  });
});
