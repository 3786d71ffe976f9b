// Tests of Heroku compatibility: specs from a Procfile alone, the release phase, and sorting a Heroku config.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BerthError } from './errors.js';
import {
  appNameFrom,
  looksSecret,
  parseEnvFile,
  releaseCommandsOf,
  specFromProcfile,
  splitHerokuConfig,
} from './heroku.js';
import { DEFAULT_HEALTH_CHECK } from './spec.js';

describe('specFromProcfile', () => {
  it('makes every process type but release a service, and routes web at <app>.localhost with the default check', () => {
    const spec = specFromProcfile(
      'shop',
      'web: node server.js\nworker: node worker.js\nrelease: npm run migrate\n',
    );
    assert.deepEqual(Object.keys(spec.services), ['web', 'worker']);
    assert.deepEqual(spec.routes, [{ host: 'shop.localhost', service: 'web' }]);
    assert.equal(spec.services['web']?.run, 'node server.js');
    assert.deepEqual(spec.services['web']?.health, DEFAULT_HEALTH_CHECK);
    assert.equal(spec.services['worker']?.health, null, 'an unrouted worker is not health-checked');
  });

  it("gives every service the app's secrets, as Heroku gives every process every config var", () => {
    const spec = specFromProcfile('shop', 'web: node server.js\nworker: node worker.js\n', ['DATABASE_URL']);
    assert.deepEqual(spec.services['web']?.secrets, ['DATABASE_URL']);
    assert.deepEqual(spec.services['worker']?.secrets, ['DATABASE_URL']);
  });

  it('refuses a Procfile with nothing to run, and a malformed one with its line', () => {
    assert.throws(() => specFromProcfile('shop', 'release: npm run migrate\n'), /no process to run/);
    assert.throws(
      () => specFromProcfile('shop', 'web node server.js\n'),
      (error: BerthError) => error.issues.some((i) => i.location === 'Procfile:1:1'),
    );
  });
});

describe('appNameFrom', () => {
  it('turns a repository or directory name into an app name', () => {
    assert.equal(appNameFrom('Shop_API.git'), 'shop-api');
    assert.equal(appNameFrom('2048'), 'app-2048');
    assert.throws(() => appNameFrom('.git'), BerthError);
  });
});

describe('releaseCommandsOf', () => {
  it('runs the Procfile release command, then app.json postdeploy (string or object)', () => {
    assert.deepEqual(
      releaseCommandsOf('web: x\nrelease: npm run migrate\n', '{"scripts":{"postdeploy":"node seed.js"}}'),
      ['npm run migrate', 'node seed.js'],
    );
    assert.deepEqual(releaseCommandsOf(undefined, '{"scripts":{"postdeploy":{"command":"node seed.js"}}}'), [
      'node seed.js',
    ]);
    assert.deepEqual(releaseCommandsOf('web: x\n', '{"name":"a"}'), []);
  });

  it('refuses an app.json that is not JSON', () => {
    assert.throws(() => releaseCommandsOf(undefined, '{nope'), /app.json/);
  });
});

describe('Heroku config', () => {
  it('reads KEY=value lines with export, comments and quotes', () => {
    assert.deepEqual(
      parseEnvFile('# from heroku config --shell\nexport A=1\nB=\'two words\'\nC="x\\ny"\nD=\n'),
      { A: '1', B: 'two words', C: 'x\ny', D: '' },
    );
    assert.throws(() => parseEnvFile('A=1\nnot a line\n', 'config.env'), /config.env:2/);
  });

  it('sends names that look secret and URLs with credentials to secrets, the rest to config', () => {
    const { config, secrets } = splitHerokuConfig({
      STRIPE_KEY: 'sk_live_1',
      SESSION_SECRET: 's',
      GITHUB_TOKEN: 't',
      SMTP_PASSWORD: 'p',
      DATABASE_URL: 'postgres://db.internal/shop',
      REDIS_URL: 'redis://:hunter2@redis.internal:6379',
      CACHE_ADDRESS: 'memcached://user:pw@cache:11211',
      API_URL: 'https://api.example.com/v1',
      NODE_ENV: 'production',
      KEYBOARD_LAYOUT: 'us',
    });
    assert.deepEqual(Object.keys(secrets).sort(), [
      'CACHE_ADDRESS',
      'DATABASE_URL',
      'GITHUB_TOKEN',
      'REDIS_URL',
      'SESSION_SECRET',
      'SMTP_PASSWORD',
      'STRIPE_KEY',
    ]);
    assert.deepEqual(Object.keys(config).sort(), ['API_URL', 'KEYBOARD_LAYOUT', 'NODE_ENV']);
    assert.equal(looksSecret('PUBLIC_URL', 'https://example.com'), false);
  });
});
