// Tests of berth.yaml parsing: normalised results of valid files and the exact message and position of each error.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BerthError, formatIssues, type Issue } from './errors.js';
import {
  type AppSpec,
  DEFAULT_DEPLOY,
  DEFAULT_HEALTH_CHECK,
  DEFAULT_RESPONSE_TIMEOUT_MS,
  loadSpecFile,
  parseSpec,
  type ServiceSpec,
  validateAppSpec,
} from './spec.js';

const DESIGN_EXAMPLE = `app: shop
routes:
  - host: shop.localhost          # requests with this Host go to service web
    service: web
services:
  web:
    build: npm ci && npm run build   # optional; Node apps are detected from package.json
    run: node dist/server.js         # or taken from a Procfile
    instances: 2
    health: { path: /health, interval: 2s, timeout: 1s, healthy: 2, unhealthy: 3, grace: 5s }
    deploy: { maxSurge: 100%, minHealthy: 100%, drain: 15s, stopTimeout: 30s, autoRollback: true }
    autoscale: { min: 2, max: 8, requestsPerMinute: 1200, cpu: 70, memory: 80 }
    env: { NODE_ENV: production }
    secrets: [DATABASE_URL, API_KEY]
  worker:
    run: node dist/worker.js
pipeline:
  check: [npm run lint, npx tsc --noEmit]
  test: [npm test]
  deploy: manual                   # or auto
`;

/** The issues `parseSpec` refuses a text with, as `location path: message` lines. */
function errorsOf(text: string, options: { procfile?: string } = {}): string[] {
  try {
    parseSpec(text, { file: 'berth.yaml', ...options });
  } catch (error) {
    assert.ok(error instanceof BerthError);
    assert.equal(error.code, 'invalid_spec');
    assert.equal(
      error.message,
      `berth.yaml has ${error.issues.length === 1 ? '1 error' : `${error.issues.length} errors`}`,
    );
    return error.issues.map(line);
  }
  assert.fail('expected the spec to be refused');
}

function line(issue: Issue): string {
  return formatIssues([issue]);
}

const worker = (overrides: Partial<ServiceSpec> = {}): ServiceSpec => ({
  name: 'worker',
  run: 'node dist/worker.js',
  instances: 1,
  health: null,
  deploy: { ...DEFAULT_DEPLOY },
  env: {},
  secrets: [],
  responseTimeoutMs: DEFAULT_RESPONSE_TIMEOUT_MS,
  ...overrides,
});

describe('parseSpec: valid files', () => {
  it('fills every default for a minimal spec (app and one service with run)', () => {
    const spec = parseSpec('app: hello\nservices:\n  web:\n    run: node server.js\n', {
      file: 'berth.yaml',
    });
    assert.deepEqual(spec, {
      app: 'hello',
      runtime: 'process',
      routes: [],
      services: {
        web: {
          name: 'web',
          run: 'node server.js',
          instances: 1,
          health: null,
          deploy: {
            maxSurgePercent: 100,
            minHealthyPercent: 100,
            drainMs: 15_000,
            stopTimeoutMs: 30_000,
            autoRollback: true,
            strategy: 'rolling',
            steps: [5, 25, 50, 100],
            intervalMs: 120_000,
            analysis: {
              minRequests: 50,
              max5xxRatePercent: 5,
              max5xxIncreasePercent: 1,
              maxGatewayErrors: 0,
              maxP95Ms: null,
              maxP99Ms: null,
              maxLatencyRatio: 2,
              check: null,
            },
          },
          env: {},
          secrets: [],
          responseTimeoutMs: 30_000,
        },
      },
      pipeline: { check: [], test: [], deploy: 'auto', secrets: [], timeoutMs: 600_000 },
    });
  });

  it('normalises the full DESIGN.md example, durations in ms and percentages as numbers', () => {
    const expected: AppSpec = {
      app: 'shop',
      runtime: 'process',
      routes: [{ host: 'shop.localhost', service: 'web' }],
      services: {
        web: {
          name: 'web',
          run: 'node dist/server.js',
          build: 'npm ci && npm run build',
          instances: 2,
          health: {
            path: '/health',
            intervalMs: 2_000,
            timeoutMs: 1_000,
            healthyThreshold: 2,
            unhealthyThreshold: 3,
            graceMs: 5_000,
            successCodes: '200-399',
          },
          deploy: {
            maxSurgePercent: 100,
            minHealthyPercent: 100,
            drainMs: 15_000,
            stopTimeoutMs: 30_000,
            autoRollback: true,
            strategy: 'rolling',
            steps: [5, 25, 50, 100],
            intervalMs: 120_000,
            analysis: {
              minRequests: 50,
              max5xxRatePercent: 5,
              max5xxIncreasePercent: 1,
              maxGatewayErrors: 0,
              maxP95Ms: null,
              maxP99Ms: null,
              maxLatencyRatio: 2,
              check: null,
            },
          },
          autoscale: {
            min: 2,
            max: 8,
            requestsPerMinute: 1200,
            cpuPercent: 70,
            memoryPercent: 80,
            scaleOutCooldownMs: 60_000,
            scaleInCooldownMs: 300_000,
          },
          env: { NODE_ENV: 'production' },
          secrets: ['DATABASE_URL', 'API_KEY'],
          responseTimeoutMs: 30_000,
        },
        worker: worker(),
      },
      pipeline: {
        check: ['npm run lint', 'npx tsc --noEmit'],
        test: ['npm test'],
        deploy: 'manual',
        secrets: [],
        timeoutMs: 600_000,
      },
    };
    assert.deepEqual(parseSpec(DESIGN_EXAMPLE, { file: 'berth.yaml' }), expected);
  });

  it('survives a JSON round trip unchanged (it is stored as a release snapshot)', () => {
    const spec = parseSpec(DESIGN_EXAMPLE, { file: 'berth.yaml' });
    assert.deepEqual(JSON.parse(JSON.stringify(spec)), spec);
  });

  it('gives a routed service or one with a port the default health check, and none to the others', () => {
    const spec = parseSpec(
      'app: a\nroutes: [{ host: a.localhost, service: web }]\nservices:\n  web: { run: w }\n  api: { run: a, port: 4000 }\n  worker: { run: q }\n  admin: { run: b, health: false, port: 4001 }\n',
      { file: 'berth.yaml' },
    );
    assert.deepEqual(spec.services['web']?.health, DEFAULT_HEALTH_CHECK);
    assert.deepEqual(spec.services['api']?.health, DEFAULT_HEALTH_CHECK);
    assert.equal(spec.services['api']?.port, 4000);
    assert.equal(spec.services['worker']?.health, null);
    assert.equal(spec.services['admin']?.health, null);
  });

  it('reads sizes, CPUs, path prefixes, success codes, a single command and env numbers as written', () => {
    const spec = parseSpec(
      `app: a
routes:
  - { host: "*.example.com", pathPrefix: /api, service: web }
services:
  web:
    run: node s.js
    health: { path: /healthz, successCodes: 200 }
    resources: { memory: 512Mi, cpu: 0.5 }
    env: { VERSION: 1.10, DEBUG: true, EMPTY: "" }
    responseTimeout: 1m
    autoscale: { max: 4, cpu: 60% }
pipeline: { test: npm test }
`,
      { file: 'berth.yaml' },
    );
    const web = spec.services['web'];
    assert.deepEqual(spec.routes, [{ host: '*.example.com', pathPrefix: '/api', service: 'web' }]);
    assert.equal(web?.health?.path, '/healthz');
    assert.equal(web?.health?.successCodes, '200');
    assert.deepEqual(web?.resources, { memoryBytes: 536_870_912, cpu: 0.5 });
    assert.deepEqual(web?.env, { VERSION: '1.10', DEBUG: 'true', EMPTY: '' });
    assert.equal(web?.responseTimeoutMs, 60_000);
    assert.equal(web?.instances, 1, 'an autoscaled service starts at its min');
    assert.deepEqual(web?.autoscale, {
      min: 1,
      max: 4,
      cpuPercent: 60,
      scaleOutCooldownMs: 60_000,
      scaleInCooldownMs: 300_000,
    });
    assert.deepEqual(spec.pipeline, {
      check: [],
      test: ['npm test'],
      deploy: 'auto',
      secrets: [],
      timeoutMs: 600_000,
    });
  });

  it('takes the command of a service without run from the Procfile', () => {
    const spec = parseSpec('app: a\nservices:\n  web:\n  worker: { instances: 2 }\n', {
      file: 'berth.yaml',
      procfile: 'web: node server.js\nworker: node worker.js\nclock: node clock.js\n',
    });
    assert.equal(spec.services['web']?.run, 'node server.js');
    assert.deepEqual(spec.services['worker'], worker({ run: 'node worker.js', instances: 2 }));
    assert.deepEqual(
      Object.keys(spec.services),
      ['web', 'worker'],
      'Procfile types not in berth.yaml are not services',
    );
  });

  it('prefers run over the Procfile and ignores a broken Procfile it does not need', () => {
    const spec = parseSpec('app: a\nservices:\n  web: { run: node mine.js }\n', {
      file: 'berth.yaml',
      procfile: 'oops\n',
    });
    assert.equal(spec.services['web']?.run, 'node mine.js');
  });
});

describe('parseSpec: bad input', () => {
  it('refuses an unknown key at the top level, suggesting the field that was meant', () => {
    assert.deepEqual(errorsOf('app: a\nservice:\n  web: { run: x }\nservices:\n  web: { run: x }\n'), [
      'berth.yaml:2:1 service: unknown field; did you mean "services"? expected one of: app, runtime, target, routes, services, addons, origins, pipeline, registry',
    ]);
  });

  it('refuses an unknown nested key at its position', () => {
    assert.deepEqual(errorsOf('app: a\nservices:\n  web:\n    run: x\n    replicas: 3\n'), [
      'berth.yaml:5:5 services.web.replicas: unknown field; expected one of: run, build, image, port, instances, health, deploy, autoscale, resources, env, secrets, responseTimeout',
    ]);
    assert.deepEqual(errorsOf('app: a\nservices:\n  web:\n    run: x\n    health: { intervall: 3s }\n'), [
      'berth.yaml:5:15 services.web.health.intervall: unknown field; did you mean "interval"? expected one of: path, interval, timeout, healthy, unhealthy, grace, successCodes',
    ]);
  });

  it('refuses a wrong type, saying what was expected and what was found', () => {
    assert.deepEqual(errorsOf('app: a\nservices:\n  web:\n    run: x\n    instances: three\n'), [
      'berth.yaml:5:16 services.web.instances: expected a whole number from 0 to 100, got "three"',
    ]);
    assert.deepEqual(errorsOf('app: a\nservices:\n  web:\n    run: x\n    instances: 101\n    env: [A]\n'), [
      'berth.yaml:5:16 services.web.instances: expected a whole number from 0 to 100, got 101',
      'berth.yaml:6:10 services.web.env: expected a mapping (key: value pairs), got a list',
    ]);
    assert.deepEqual(errorsOf('app: a\nservices: [web]\n'), [
      'berth.yaml:2:11 services: expected a mapping of service names to their settings, e.g. "web: { run: node server.js }", got a list',
    ]);
  });

  it('refuses a missing required field, pointing at what lacks it', () => {
    assert.deepEqual(errorsOf('services:\n  web: { run: x }\n'), [
      'berth.yaml:1:1 app: missing; expected a name of lowercase letters, digits and dashes, starting with a letter (at most 63 characters)',
    ]);
    assert.deepEqual(errorsOf('app: a\nroutes:\n  - host: a.localhost\nservices:\n  web: { run: x }\n'), [
      'berth.yaml:3:5 routes[0].service: missing; expected the name of a service',
    ]);
  });

  it('refuses bad durations, and bare numbers with a hint to add a unit', () => {
    assert.deepEqual(
      errorsOf(
        'app: a\nservices:\n  web:\n    run: x\n    deploy: { drain: 15, stopTimeout: 30 secs, maxSurge: 50 }\n',
      ),
      [
        'berth.yaml:5:22 services.web.deploy.drain: expected a duration such as 500ms, 2s, 5m, 1h or 1m30s, got 15 (add a unit, e.g. "15s")',
        'berth.yaml:5:39 services.web.deploy.stopTimeout: expected a duration such as 500ms, 2s, 5m, 1h or 1m30s, got "30 secs"',
        'berth.yaml:5:58 services.web.deploy.maxSurge: expected a percentage from 0% to 100% such as "50%", got 50 (add a percent sign, e.g. "50%")',
      ],
    );
  });

  it("reads a route's WebSocket idle timeout, and refuses one outside 1s-24h", () => {
    const spec = parseSpec(
      'app: a\nroutes:\n  - { host: a.localhost, service: web, tunnelIdleTimeout: 10m }\nservices:\n  web: { run: x }\n',
      { file: 'berth.yaml' },
    );
    assert.deepEqual(spec.routes, [{ host: 'a.localhost', service: 'web', tunnelIdleTimeoutMs: 600_000 }]);
    assert.deepEqual(
      errorsOf(
        'app: a\nroutes:\n  - { host: a.localhost, service: web, tunnelIdleTimeout: 500ms }\nservices:\n  web: { run: x }\n',
      ),
      [
        'berth.yaml:3:59 routes[0].tunnelIdleTimeout: expected a duration from 1s to 24h such as 90s, 10m or 1h, got "500ms"',
      ],
    );
  });

  it('refuses bad sizes', () => {
    assert.deepEqual(
      errorsOf('app: a\nservices:\n  web:\n    run: x\n    resources: { memory: 512MB, cpu: 0 }\n'),
      [
        'berth.yaml:5:26 services.web.resources.memory: expected a size such as 512Mi, 1Gi, 100M, 64Ki or a number of bytes, got "512MB" (write "512Mi" for binary or "512M" for decimal)',
        'berth.yaml:5:38 services.web.resources.cpu: expected a number of CPUs greater than 0 such as 0.5 or 2, got 0',
      ],
    );
  });

  it('refuses a route to a service that does not exist, naming the ones that do', () => {
    assert.deepEqual(
      errorsOf(
        'app: a\nroutes:\n  - host: a.localhost\n    service: api\nservices:\n  web: { run: x }\n  worker: { run: y }\n',
      ),
      [
        'berth.yaml:4:14 routes[0].service: expected the name of a service in this file (web, worker), got "api"',
      ],
    );
  });

  it('refuses app and service names that are not DNS labels, saying which characters are allowed', () => {
    assert.deepEqual(errorsOf('app: My_Shop\nservices:\n  Web: { run: x }\n  9lives: { run: y }\n'), [
      'berth.yaml:1:6 app: expected a name of lowercase letters, digits and dashes, starting with a letter (at most 63 characters), got "My_Shop"',
      'berth.yaml:3:3 services.Web: expected a name of lowercase letters, digits and dashes, starting with a letter (at most 63 characters), got "Web"',
      'berth.yaml:4:3 services.9lives: expected a name of lowercase letters, digits and dashes, starting with a letter (at most 63 characters), got "9lives"',
    ]);
  });

  it('refuses bad env names, PORT in env, and a variable in both env and secrets', () => {
    assert.deepEqual(
      errorsOf(
        'app: a\nservices:\n  web:\n    run: x\n    env: { PORT: 3000, bad-key: x, TOKEN: t }\n    secrets: [TOKEN, 1KEY]\n',
      ),
      [
        'berth.yaml:5:12 services.web.env.PORT: PORT is assigned by the platform to each instance; remove it (set "port:" on the service to fix it)',
        'berth.yaml:5:24 services.web.env.bad-key: expected an environment variable name (letters, digits and underscores, not starting with a digit), got "bad-key"',
        'berth.yaml:6:15 services.web.secrets[0]: "TOKEN" is also set in env; a variable comes from env or from secrets, not both',
        'berth.yaml:6:22 services.web.secrets[1]: expected an environment variable name (letters, digits and underscores, not starting with a digit), got "1KEY"',
      ],
    );
  });

  it('refuses contradictory numbers: autoscale min above max, instances outside it, timeout not below interval', () => {
    assert.deepEqual(
      errorsOf(
        'app: a\nservices:\n  web:\n    run: x\n    port: 3000\n    health: { interval: 1s, timeout: 1s }\n    autoscale: { min: 5, max: 2, cpu: 50 }\n  api:\n    run: y\n    instances: 9\n    autoscale: { max: 4, cpu: 50 }\n    deploy: { maxSurge: 0% }\n',
      ),
      [
        'berth.yaml:6:38 services.web.health.timeout: expected timeout (1s) to be shorter than interval (1s)',
        'berth.yaml:7:23 services.web.autoscale.min: expected min (5) to be at most max (2)',
        'berth.yaml:10:16 services.api.instances: expected a whole number from autoscale.min (1) to autoscale.max (4), got 9',
        'berth.yaml:12:25 services.api.deploy.maxSurge: maxSurge 0% with minHealthy 100% can neither start nor stop an instance; raise maxSurge or lower minHealthy',
      ],
    );
  });

  it('reads autoscale step rules on alarms, and refuses a bad alarm name or step size with its position', () => {
    const spec = parseSpec(
      'app: a\nservices:\n  web:\n    run: x\n    autoscale: { max: 4, cpu: 50, steps: [{ alarm: slow-p95, add: 2 }] }\n',
      { file: 'berth.yaml' },
    );
    assert.deepEqual(spec.services.web?.autoscale?.steps, [{ alarm: 'slow-p95', add: 2 }]);
    assert.deepEqual(
      errorsOf(
        'app: a\nservices:\n  web:\n    run: x\n    autoscale: { max: 4, cpu: 50, steps: [{ alarm: "slow p95", add: 0 }] }\n',
      ),
      [
        'berth.yaml:5:52 services.web.autoscale.steps[0].alarm: expected an alarm name such as slow-p95 (letters, digits, dots, dashes, underscores), got "slow p95"',
        'berth.yaml:5:69 services.web.autoscale.steps[0].add: expected a whole number from 1 to 100, got 0',
      ],
    );
  });

  it('reports every problem at once, sorted by position', () => {
    assert.deepEqual(
      errorsOf(`app: Shop
replicas: 3
routes:
  - host: Shop.Localhost
    service: api
services:
  web:
    instances: three
    health: { interval: 2, path: health }
pipeline: { deploy: sometimes }
`),
      [
        'berth.yaml:1:6 app: expected a name of lowercase letters, digits and dashes, starting with a letter (at most 63 characters), got "Shop"',
        'berth.yaml:2:1 replicas: unknown field; expected one of: app, runtime, target, routes, services, addons, origins, pipeline, registry',
        'berth.yaml:4:11 routes[0].host: expected a host name such as shop.localhost or *.example.com (lowercase, no port), got "Shop.Localhost" (must be lower case)',
        'berth.yaml:5:14 routes[0].service: expected the name of a service in this file (web), got "api"',
        'berth.yaml:7:3 services.web: service "web" has no command: add "run:" or a "web: <command>" line to the Procfile (there is no Procfile)',
        'berth.yaml:8:16 services.web.instances: expected a whole number from 0 to 100, got "three"',
        'berth.yaml:9:25 services.web.health.interval: expected a duration such as 500ms, 2s, 5m, 1h or 1m30s, got 2 (add a unit, e.g. "2s")',
        'berth.yaml:9:34 services.web.health.path: expected a URL path starting with "/", got "health"',
        'berth.yaml:10:21 pipeline.deploy: expected "auto" or "manual", got "sometimes"',
      ],
    );
  });

  it('reports YAML syntax errors with their position', () => {
    assert.deepEqual(errorsOf('app: a\nservices:\n  web: { run: x\n'), [
      'berth.yaml:3:8: invalid YAML: this { is never closed with }',
    ]);
    assert.deepEqual(errorsOf('app: a\nservices:\n  web: { run: x }\n  web: { run: y }\n'), [
      'berth.yaml:4:3: invalid YAML: Map keys must be unique',
    ]);
  });

  it('points syntax errors at the mistake, not where the parser gave up', () => {
    assert.deepEqual(errorsOf("app: 'shop\nservices: {}\n"), [
      'berth.yaml:1:6: invalid YAML: this single-quoted string is never closed',
    ]);
    assert.deepEqual(errorsOf('app: a\nservices:\n  web:\n    env: { A: "1", B: [1 }\n    run: x\n'), [
      'berth.yaml:4:10: invalid YAML: this { is never closed with }',
      'berth.yaml:4:23: invalid YAML: this [ is never closed with ]',
    ]);
    assert.deepEqual(errorsOf('app: a\nservices:\n  web:\n    run: x\n   instances: 2\n'), [
      'berth.yaml:5:4: invalid YAML: All mapping items must start at the same column',
    ]);
  });

  it('counts columns in characters, as editors do, after characters beyond the BMP', () => {
    assert.deepEqual(
      errorsOf('app: a # 😀😀\nservices:\n  web: { env: { X: "😀" }, instances: x, run: y }\n'),
      ['berth.yaml:3:38 services.web.instances: expected a whole number from 0 to 100, got "x"'],
    );
  });

  it('never quotes a file that is not an app spec', () => {
    const key = 'c2VjcmV0LWtleS1ieXRlcy1ub3QtdG8tYmUtZWNob2Vk';
    assert.deepEqual(errorsOf(`${key}\n`), [
      'berth.yaml:1:1: expected a mapping (key: value pairs) with "app" and "services", got a single value (not shown)',
    ]);
    assert.deepEqual(errorsOf(`DB_PASSWORD: ${key}\nport: 5\n`), [
      'berth.yaml:1:1: this is not an app spec: it sets neither "app" nor "services" (nothing of its content is shown)',
    ]);
    assert.throws(
      () => validateAppSpec(key),
      (error: BerthError) => !JSON.stringify(error).includes(key),
    );
  });

  it('refuses an empty file, and one that is not a mapping', () => {
    const empty = ['berth.yaml:1:1: the file is empty; expected at least "app" and "services"'];
    assert.deepEqual(errorsOf(''), empty);
    assert.deepEqual(errorsOf('# nothing yet\n'), empty);
    assert.deepEqual(errorsOf('- app: a\n'), [
      'berth.yaml:1:1: expected a mapping (key: value pairs) with "app" and "services", got a list',
    ]);
    assert.deepEqual(errorsOf('app: a\nservices: {}\n'), [
      'berth.yaml:2:1 services: expected at least one service',
    ]);
  });

  it('refuses a service with neither run nor a Procfile line, naming the service', () => {
    assert.deepEqual(
      errorsOf('app: a\nservices:\n  web:\n  worker: { instances: 1 }\n', { procfile: 'web: node s.js\n' }),
      [
        'berth.yaml:4:3 services.worker: service "worker" has no command: add "run:" or a "worker: <command>" line to the Procfile (the Procfile has no such line)',
      ],
    );
  });

  it('reports malformed Procfile lines after the berth.yaml errors when the Procfile is used', () => {
    assert.deepEqual(errorsOf('app: a\nservices:\n  web:\n', { procfile: 'web node s.js\n' }), [
      'berth.yaml:3:3 services.web: service "web" has no command: add "run:" or a "web: <command>" line to the Procfile (the Procfile has no such line)',
      'Procfile:1:1 Procfile: expected "<process type>: <command>", got "web node s.js"',
    ]);
  });
});

describe('parseSpec: addons', () => {
  it('reads the short and the long form, filling in the variable and the backup policy', () => {
    const spec = parseSpec(
      [
        'app: shop',
        'services:',
        '  web: { run: node server.js }',
        'addons:',
        '  cache: redis',
        '  db: { kind: postgres, version: 15, as: SHOP_DB, backups: { every: 6h, keep: 3 } }',
        '',
      ].join('\n'),
      { file: 'berth.yaml' },
    );
    assert.deepEqual(spec.addons, {
      cache: { kind: 'redis', as: 'REDIS_URL', backups: { everyMs: 86_400_000, keep: 7 } },
      db: { kind: 'postgres', version: '15', as: 'SHOP_DB', backups: { everyMs: 21_600_000, keep: 3 } },
    });
    assert.deepEqual(JSON.parse(JSON.stringify(spec)), spec, 'survives the JSON round trip of a release');
  });

  it('leaves addons out of a spec that declares none (its releases compare as before)', () => {
    const spec = parseSpec('app: a\nservices:\n  web: { run: x }\n', { file: 'berth.yaml' });
    assert.equal('addons' in spec, false);
  });

  it('refuses an unknown kind, a bad version, name or backup interval, each at its position', () => {
    assert.deepEqual(
      errorsOf(
        [
          'app: a',
          'services:',
          '  web: { run: x }',
          'addons:',
          '  cache: memcached',
          '  Db: postgres',
          '  db2: { kind: postgres, as: DB2, version: latest }',
          '  db3: { kind: postgres, as: DB3, backups: { every: 10s, keep: 0 } }',
          '  db4: { kind: postgres, as: DB4, size: big }',
          '',
        ].join('\n'),
      ),
      [
        'berth.yaml:5:10 addons.cache.kind: expected "redis" or "postgres", got "memcached"',
        'berth.yaml:6:3 addons.Db: expected a name of lowercase letters, digits and dashes, starting with a letter (at most 63 characters), got "Db"',
        'berth.yaml:7:44 addons.db2.version: expected a version such as "15" or "7", got "latest"',
        'berth.yaml:8:53 addons.db3.backups.every: expected a duration of at least 1m such as 24h, 6h or 30m, got "10s"',
        'berth.yaml:8:64 addons.db3.backups.keep: expected a whole number from 1 to 1000, got 0',
        'berth.yaml:9:35 addons.db4.size: unknown field; expected one of: kind, version, as, backups',
      ],
    );
  });

  it('refuses two add-ons on one variable, a platform variable, and a variable also set in env', () => {
    assert.deepEqual(
      errorsOf(
        [
          'app: a',
          'services:',
          '  web: { run: x, env: { DATABASE_URL: postgres://elsewhere } }',
          'addons:',
          '  cache: redis',
          '  sessions: redis',
          '  db: postgres',
          '  internal: { kind: redis, as: BERTH_CACHE }',
          '',
        ].join('\n'),
      ),
      [
        'berth.yaml:3:25 services.web.env.DATABASE_URL: DATABASE_URL is the URL of add-on "db"; a variable comes from env or from an add-on, not both',
        'berth.yaml:6:3 addons.sessions: add-on "cache" is already given as REDIS_URL; set "as:" to another variable name, e.g. SESSIONS_URL',
        'berth.yaml:8:32 addons.internal.as: BERTH_CACHE: PORT and BERTH_* are set by Berth',
      ],
    );
  });
});

describe('validateAppSpec', () => {
  it('accepts the berth.yaml document as JSON and returns the same AppSpec', () => {
    const value = {
      app: 'hello',
      routes: [{ host: 'hello.localhost', service: 'web' }],
      services: { web: { run: 'node server.js', health: { interval: '5s' } } },
    };
    const spec = validateAppSpec(value);
    assert.equal(spec.services['web']?.health?.intervalMs, 5_000);
    assert.deepEqual(
      spec,
      parseSpec(
        'app: hello\nroutes: [{ host: hello.localhost, service: web }]\nservices:\n  web: { run: node server.js, health: { interval: 5s } }\n',
        {
          file: 'berth.yaml',
        },
      ),
    );
  });

  it('reports issues with field paths and no file position', () => {
    assert.throws(
      () => validateAppSpec({ app: 'a', services: { web: { run: 'x', instances: -1, extra: true } } }),
      (error: unknown) => {
        assert.ok(error instanceof BerthError);
        assert.equal(error.message, 'spec has 2 errors');
        assert.deepEqual(error.issues, [
          {
            path: 'services.web.extra',
            message:
              'unknown field; expected one of: run, build, image, port, instances, health, deploy, autoscale, resources, env, secrets, responseTimeout',
          },
          { path: 'services.web.instances', message: 'expected a whole number from 0 to 100, got -1' },
        ]);
        return true;
      },
    );
  });
});

describe('loadSpecFile', () => {
  it('reads berth.yaml and the Procfile beside it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-spec-'));
    try {
      mkdirSync(join(dir, 'app'));
      writeFileSync(join(dir, 'app', 'berth.yaml'), 'app: a\nservices:\n  web:\n');
      writeFileSync(join(dir, 'app', 'Procfile'), 'web: node server.js\n');
      assert.equal(loadSpecFile(join(dir, 'app', 'berth.yaml')).services['web']?.run, 'node server.js');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the file in positions, and refuses a missing file naming its path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-spec-'));
    try {
      const file = join(dir, 'berth.yaml');
      writeFileSync(file, 'app: a\nservices:\n  web: { run: x, instances: -1 }\n');
      assert.throws(
        () => loadSpecFile(file),
        (error: unknown) => {
          assert.ok(error instanceof BerthError);
          assert.equal(error.message, `${file} has 1 error`);
          assert.equal(error.issues[0]?.location, `${file}:3:29`);
          return true;
        },
      );
      const missing = join(dir, 'nope.yaml');
      assert.throws(() => loadSpecFile(missing), {
        code: 'invalid_spec',
        message: `${missing} does not exist`,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('parseSpec: Procfile problems', () => {
  it('reports a broken Procfile alongside other errors only when a service needs it', () => {
    assert.deepEqual(
      errorsOf('app: a\nservices:\n  web: { run: x, instances: -1 }\n', { procfile: 'oops\n' }),
      ['berth.yaml:3:29 services.web.instances: expected a whole number from 0 to 100, got -1'],
    );
  });
});

describe('pipeline', () => {
  it('reads the secrets the pipeline may use and a per-command timeout', () => {
    const spec = parseSpec(
      `app: a
services:
  web: { run: node s.js }
pipeline: { test: npm test, secrets: [NPM_TOKEN], timeout: 2m, deploy: manual }
`,
      { file: 'berth.yaml' },
    );
    assert.deepEqual(spec.pipeline, {
      check: [],
      test: ['npm test'],
      deploy: 'manual',
      secrets: ['NPM_TOKEN'],
      timeoutMs: 120_000,
    });
  });

  it('refuses a pipeline secret that is not an environment variable name, with its position', () => {
    assert.throws(
      () =>
        parseSpec('app: a\nservices:\n  web: { run: node s.js }\npipeline: { secrets: [bad-name] }\n', {
          file: 'berth.yaml',
        }),
      (error: BerthError) =>
        error.issues.some((i) => i.path === 'pipeline.secrets[0]' && /berth.yaml:4/.test(i.location ?? '')),
    );
  });
});

describe('parseSpec: containers', () => {
  const parse = (text: string, dockerfile = false) =>
    parseSpec(text, { file: 'berth.yaml', context: { dockerfile } });
  const messages = (text: string, dockerfile = false): string[] => {
    try {
      parse(text, dockerfile);
    } catch (error) {
      return (error as BerthError).issues.map((i) => `${i.location} ${i.path}: ${i.message}`);
    }
    assert.fail('expected the spec to be refused');
  };

  it('runs an image on the docker runtime, with the image command when there is no run', () => {
    const spec = parse('app: a\nservices:\n  web:\n    image: registry.example.com:5000/shop/web:1.4\n');
    assert.equal(spec.runtime, 'docker');
    assert.equal(spec.services.web!.image, 'registry.example.com:5000/shop/web:1.4');
    assert.equal(spec.services.web!.run, '');
    assert.equal(spec.services.web!.dockerfile, undefined);
  });

  it('builds from a named Dockerfile, or from the directory Dockerfile by default', () => {
    const named = parse('app: a\nservices:\n  web:\n    build: { dockerfile: docker/web.Dockerfile }\n');
    assert.equal(named.runtime, 'docker');
    assert.equal(named.services.web!.dockerfile, 'docker/web.Dockerfile');
    const byDirectory = parse('app: a\nservices:\n  web:\n    run: node server.js\n', true);
    assert.equal(byDirectory.runtime, 'docker');
    assert.equal(byDirectory.services.web!.dockerfile, 'Dockerfile');
    assert.equal(byDirectory.services.web!.run, 'node server.js');
  });

  it('keeps process apps as they were, also with a Dockerfile when runtime: process says so', () => {
    const spec = parse(
      'app: a\nruntime: process\nservices:\n  web:\n    run: node s.js\n    build: npm ci\n',
      true,
    );
    assert.equal(spec.runtime, 'process');
    assert.equal(spec.services.web!.build, 'npm ci');
    assert.equal(spec.services.web!.dockerfile, undefined);
  });

  it('refuses images and Dockerfiles that do not fit the runtime, with their positions', () => {
    assert.deepEqual(
      messages('app: a\nruntime: process\nservices:\n  web:\n    image: busybox\n    run: x\n'),
      [
        'berth.yaml:5:5 services.web.image: an image runs on the docker runtime; remove "runtime: process" or this image',
      ],
    );
    assert.deepEqual(
      messages('app: a\nservices:\n  web:\n    image: busybox\n    build: { dockerfile: D }\n'),
      [
        'berth.yaml:5:5 services.web.build: a service runs an existing image or builds one, not both: remove "image" or "build"',
      ],
    );
    assert.match(
      messages('app: a\nservices:\n  web:\n    build: npm ci\n', true)[0]!,
      /services\.web\.build: on the docker runtime the Dockerfile builds the app/,
    );
    assert.deepEqual(messages('app: a\nruntime: docker\nservices:\n  web:\n    run: x\n'), [
      'berth.yaml:4:3 services.web: runs on the docker runtime but has no image: set "image:", "build: { dockerfile: ... }", or add a Dockerfile to the app directory',
    ]);
  });

  it('refuses a malformed image reference and a Dockerfile outside the directory', () => {
    assert.match(
      messages('app: a\nservices:\n  web:\n    image: Not An Image\n')[0]!,
      /services\.web\.image: expected an image such as/,
    );
    assert.match(
      messages('app: a\nservices:\n  web:\n    build: { dockerfile: ../Dockerfile }\n')[0]!,
      /dockerfile must be a path inside the app directory/,
    );
    assert.match(
      messages('app: a\nruntime: vm\nservices:\n  web:\n    run: x\n')[0]!,
      /runtime: expected "process" or "docker"/,
    );
  });

  it('reads a registry with a login from a secret, and refuses half a login or a registry for processes', () => {
    const spec = parse(
      'app: a\nservices:\n  web:\n    image: busybox\nregistry:\n  url: registry.example.com:5000/team\n  username: deploy\n  password: REGISTRY_PASSWORD\n',
    );
    assert.deepEqual(spec.registry, {
      url: 'registry.example.com:5000/team',
      username: 'deploy',
      passwordSecret: 'REGISTRY_PASSWORD',
    });
    assert.match(
      messages(
        'app: a\nservices:\n  web:\n    image: busybox\nregistry:\n  url: r.example.com\n  username: deploy\n',
      )[0]!,
      /registry\.username: a login needs both username and password/,
    );
    assert.match(
      messages('app: a\nservices:\n  web:\n    run: x\nregistry:\n  url: r.example.com\n')[0]!,
      /registry: a registry holds the images of the docker runtime; this app runs processes/,
    );
    assert.match(
      messages(
        'app: a\nservices:\n  web:\n    image: busybox\nregistry:\n  url: https://r.example.com\n',
      )[0]!,
      /registry\.url: expected a registry such as/,
    );
  });
});

describe('parseSpec: origins', () => {
  it('reads an origin, with the URL host as Host and SNI unless host: says otherwise', () => {
    const spec = parseSpec(
      [
        'app: shop',
        'routes: [{ host: shop.localhost, service: web }]',
        'services:',
        '  web: { run: node server.js }',
        'origins:',
        '  heroku: { url: "https://shop.herokuapp.com", health: /health, timeout: 10s }',
        '  old: { url: "http://10.0.0.5:8080/", host: shop.example.com, ca: certs/ca.pem }',
        '',
      ].join('\n'),
      { file: 'berth.yaml' },
    );
    assert.deepEqual(spec.origins, {
      heroku: {
        url: 'https://shop.herokuapp.com',
        tls: true,
        address: 'shop.herokuapp.com',
        port: 443,
        host: 'shop.herokuapp.com',
        healthPath: '/health',
        responseTimeoutMs: 10_000,
      },
      old: {
        url: 'http://10.0.0.5:8080',
        tls: false,
        address: '10.0.0.5',
        port: 8080,
        host: 'shop.example.com',
        healthPath: '/',
        responseTimeoutMs: 30_000,
        ca: 'certs/ca.pem',
      },
    });
    assert.equal('origins' in parseSpec('app: a\nservices:\n  web: { run: x }\n', { file: 'b.yaml' }), false);
  });

  it('refuses a URL that is not http(s) or has a path, a bad host, a name taken by a service, each at its place', () => {
    assert.deepEqual(
      errorsOf(
        [
          'app: a',
          'services:',
          '  web: { run: x }',
          'origins:',
          '  one: { url: "ftp://x.example" }',
          '  two: { url: "https://x.example/shop" }',
          '  three: { url: "https://x.example", host: "*.example.com" }',
          '  web: { url: "https://x.example" }',
          '  four: { host: x.example }',
          '',
        ].join('\n'),
      ),
      [
        'berth.yaml:5:15 origins.one.url: expected an https:// (or http://) URL such as https://shop.herokuapp.com, got "ftp://x.example"',
        'berth.yaml:6:15 origins.two.url: expected an https:// (or http://) URL such as https://shop.herokuapp.com, got "https://x.example/shop" (no path: requests keep their own path)',
        'berth.yaml:7:44 origins.three.host: expected a host name such as shop.herokuapp.com (lowercase, no port), got "*.example.com"',
        'berth.yaml:8:3 origins.web: "web" is also a service; an origin needs a name of its own (berth traffic weighs both by name)',
        'berth.yaml:9:3 origins.four.url: missing; expected an https:// (or http://) URL such as https://shop.herokuapp.com',
      ],
    );
  });
});

describe('parseSpec: stickiness, release override and canaries of several services', () => {
  const withDeploy = (web: string, api = '{ strategy: rolling }') =>
    `app: shop\nroutes:\n  - { host: shop.localhost, service: web }\nservices:\n  web:\n    run: node web.js\n    deploy: ${web}\n  api:\n    run: node api.js\n    deploy: ${api}\n`;

  it('reads stickiness as whole seconds (1 day by default) and leaves both options out when unset', () => {
    const parse = (deploy: string) =>
      parseSpec(withDeploy(deploy), { file: 'berth.yaml' }).services['web']!.deploy;
    assert.equal(parse('{ stickiness: { enabled: true, duration: 1h } }').stickinessS, 3600);
    assert.equal(parse('{ stickiness: { enabled: true } }').stickinessS, 86_400);
    const off = parse('{ stickiness: { enabled: false, duration: 1h } }');
    assert.equal('stickinessS' in off, false);
    assert.equal(parse('{ releaseOverride: true }').releaseOverride, true);
    const plain = parse('{ strategy: canary }');
    assert.equal('stickinessS' in plain || 'releaseOverride' in plain, false, 'stored specs compare equal');
  });

  it('refuses a stickiness duration out of range or in fractions of a second, and unknown keys', () => {
    assert.deepEqual(errorsOf(withDeploy('{ stickiness: { enabled: true, duration: 8d } }')), [
      'berth.yaml:7:54 services.web.deploy.stickiness.duration: expected a duration in whole seconds from 1s to 7d such as 1h or 1d, got "8d"',
    ]);
    assert.equal(errorsOf(withDeploy('{ stickiness: { enabled: true, duration: 1500ms } }')).length, 1);
    assert.equal(errorsOf(withDeploy('{ stickiness: { duration: 1h } }')).length, 1);
    assert.equal(errorsOf(withDeploy('{ releaseOverride: yes please }')).length, 1);
  });

  it('refuses canary services whose steps, interval or analysis differ, naming both services', () => {
    const errors = errorsOf(
      withDeploy(
        '{ strategy: canary, steps: [10, 100], interval: 2m }',
        '{ strategy: canary, steps: [50, 100], interval: 1m }',
      ),
    );
    assert.equal(errors.length, 1);
    assert.match(
      errors[0]!,
      /^berth\.yaml:10:5 services\.api\.deploy: canary steps, interval differ from service web's/,
    );
    assert.match(errors[0]!, /give them the same steps, interval and analysis/);
    // Equal once converted (2m = 120s), defaults included: accepted.
    const spec = parseSpec(
      withDeploy(
        '{ strategy: canary, steps: [10, 100], interval: 2m }',
        '{ strategy: canary, steps: [10, 100], interval: 120s, analysis: { minRequests: 50 } }',
      ),
      { file: 'berth.yaml' },
    );
    assert.equal(spec.services['api']!.deploy.intervalMs, 120_000);
    assert.equal(
      errorsOf(withDeploy('{ strategy: canary }', '{ strategy: canary, analysis: { max5xxRate: "1%" } }'))
        .length,
      1,
    );
  });
});
