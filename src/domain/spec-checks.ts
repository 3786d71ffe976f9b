// Checks of berth.yaml that span fields (routes → services, Procfile fallback, names, env); run on the raw value.

import { DEFAULT_ADDON_ENV, isAddonKind } from './addon.js';
import type { FieldPath } from './spec-location.js';
import {
  describeValue,
  ENV_NAME_EXPECTED,
  ENV_NAME_PATTERN,
  NAME_EXPECTED,
  NAME_PATTERN,
} from './spec-schema.js';

/** A problem found before positions are known; `target: 'key'` means the key itself is wrong. */
export interface SpecProblem {
  path: FieldPath;
  message: string;
  target: 'key' | 'value';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Canary services whose steps, interval or analysis differ from the first one's. A deploy that changes several canary
 * services moves them together (one deployment, one weight, one verdict over their requests), so they must agree;
 * checked on the converted values (`2m` and `120s` agree), defaults included.
 */
export function canaryMismatches(
  services: Record<
    string,
    { deploy: { strategy: string; steps: number[]; intervalMs: number; analysis: unknown } }
  >,
): SpecProblem[] {
  const canaries = Object.entries(services).filter(([, s]) => s.deploy.strategy === 'canary');
  const [first, ...rest] = canaries;
  if (first === undefined) return [];
  const problems: SpecProblem[] = [];
  const [firstName, { deploy: want }] = first;
  for (const [name, { deploy }] of rest) {
    const differ = (['steps', 'intervalMs', 'analysis'] as const).filter(
      (key) => JSON.stringify(deploy[key]) !== JSON.stringify(want[key]),
    );
    if (differ.length === 0) continue;
    const fields = differ.map((key) => (key === 'intervalMs' ? 'interval' : key));
    problems.push({
      path: ['services', name, 'deploy'],
      target: 'key',
      message: `canary ${fields.join(', ')} differ from service ${firstName}'s: services ${firstName} and ${name} are canaries of one deployment when a release changes both, moved by the same steps and judged by one analysis; give them the same steps, interval and analysis`,
    });
  }
  return problems;
}

/** What the app directory holds that the spec's meaning depends on. */
export interface SpecContext {
  /** The directory has a `Dockerfile` at its top: the app runs on the docker runtime unless it says otherwise. */
  dockerfile?: boolean;
}

/**
 * The runtime an app runs on: `runtime:` when set, else docker when a service names an image or a Dockerfile, or
 * when the directory has a Dockerfile (as Heroku, Dokku and CapRover pick a builder), else process.
 */
export function runtimeOf(raw: unknown, context: SpecContext = {}): 'process' | 'docker' {
  if (!isRecord(raw)) return 'process';
  if (raw['runtime'] === 'docker' || raw['runtime'] === 'process') return raw['runtime'];
  const services = isRecord(raw['services']) ? Object.values(raw['services']) : [];
  const wantsImage = services.some(
    (service) => isRecord(service) && (service['image'] !== undefined || isRecord(service['build'])),
  );
  return wantsImage || context.dockerfile === true ? 'docker' : 'process';
}

/** Whether some service takes its command from the Procfile (it has no `run`; a container may run its image's). */
export function needsProcfile(raw: unknown, context: SpecContext = {}): boolean {
  if (runtimeOf(raw, context) === 'docker') return false;
  const services = isRecord(raw) && isRecord(raw['services']) ? Object.values(raw['services']) : [];
  return services.some((service) => service === null || (isRecord(service) && service['run'] === undefined));
}

/**
 * Finds the problems that no single field shows. It runs whatever the field checks found, so one pass reports
 * everything; where a part has the wrong shape it is skipped here, because the schema already reports it.
 * `procfile` holds the Procfile's commands when the app has one.
 */
export function crossCheck(
  raw: unknown,
  procfile: Record<string, string> | undefined,
  context: SpecContext = {},
): SpecProblem[] {
  const problems: SpecProblem[] = [];
  if (!isRecord(raw)) return problems;
  const runtime = runtimeOf(raw, context);
  const services = isRecord(raw['services']) ? raw['services'] : undefined;
  const names = services === undefined ? [] : Object.keys(services);

  if (services !== undefined && names.length === 0) {
    problems.push({ path: ['services'], target: 'key', message: 'expected at least one service' });
  }

  const portOwners = new Map<number, string>();
  for (const name of names) {
    const path = ['services', name];
    if (!NAME_PATTERN.test(name)) {
      problems.push({
        path,
        target: 'key',
        message: `expected ${NAME_EXPECTED}, got ${describeValue(name)}`,
      });
    }
    const service = services?.[name] ?? {};
    if (!isRecord(service)) continue;

    problems.push(...runtimeProblems(path, service, runtime, raw['runtime'] !== undefined, context));

    if (runtime === 'process' && service['run'] === undefined && procfile?.[name] === undefined) {
      const where = procfile === undefined ? 'there is no Procfile' : 'the Procfile has no such line';
      problems.push({
        path,
        target: 'key',
        message: `service "${name}" has no command: add "run:" or a "${name}: <command>" line to the Procfile (${where})`,
      });
    }

    const port = service['port'];
    if (typeof port === 'number') {
      const owner = portOwners.get(port);
      if (owner === undefined) portOwners.set(port, name);
      else
        problems.push({
          path: [...path, 'port'],
          target: 'value',
          message: `port ${port} is already used by service "${owner}"`,
        });
    }

    const env = isRecord(service['env']) ? service['env'] : {};
    for (const key of Object.keys(env)) {
      const envPath = [...path, 'env', key];
      if (!ENV_NAME_PATTERN.test(key)) {
        problems.push({
          path: envPath,
          target: 'key',
          message: `expected ${ENV_NAME_EXPECTED}, got ${describeValue(key)}`,
        });
      } else if (key === 'PORT') {
        problems.push({
          path: envPath,
          target: 'key',
          message:
            'PORT is assigned by the platform to each instance; remove it (set "port:" on the service to fix it)',
        });
      }
    }

    const secrets = service['secrets'];
    if (Array.isArray(secrets)) {
      const seen = new Set<unknown>();
      secrets.forEach((secret, index) => {
        const secretPath = [...path, 'secrets', index];
        if (seen.has(secret)) {
          problems.push({
            path: secretPath,
            target: 'value',
            message: `${describeValue(secret)} is listed twice`,
          });
        } else if (typeof secret === 'string' && Object.hasOwn(env, secret)) {
          problems.push({
            path: secretPath,
            target: 'value',
            message: `${describeValue(secret)} is also set in env; a variable comes from env or from secrets, not both`,
          });
        }
        seen.add(secret);
      });
    }
  }

  if (raw['registry'] !== undefined && runtime === 'process') {
    problems.push({
      path: ['registry'],
      target: 'key',
      message: 'a registry holds the images of the docker runtime; this app runs processes',
    });
  }

  const routes = Array.isArray(raw['routes']) ? raw['routes'] : [];
  const routed = new Map<string, number>();
  routes.forEach((route: unknown, index) => {
    if (!isRecord(route)) return;
    const target = route['service'];
    if (services !== undefined && typeof target === 'string' && !Object.hasOwn(services, target)) {
      const known = names.length === 0 ? 'none defined' : names.join(', ');
      problems.push({
        path: ['routes', index, 'service'],
        target: 'value',
        message: `expected the name of a service in this file (${known}), got ${describeValue(target)}`,
      });
    }
    if (typeof route['host'] === 'string') {
      const prefix = typeof route['pathPrefix'] === 'string' ? route['pathPrefix'] : '/';
      const key = `${route['host']} ${prefix}`;
      const first = routed.get(key);
      if (first === undefined) routed.set(key, index);
      else
        problems.push({
          path: ['routes', index, 'host'],
          target: 'value',
          message: `host ${route['host']} with path prefix ${prefix} is already routed by routes[${first}]`,
        });
    }
  });

  problems.push(...checkAddons(raw['addons'], services));
  problems.push(...checkOrigins(raw['origins'], services));
  return problems;
}

/** Origin names: like service names, and not a service's name (`berth traffic` weighs both by name). */
function checkOrigins(origins: unknown, services: Record<string, unknown> | undefined): SpecProblem[] {
  const problems: SpecProblem[] = [];
  if (!isRecord(origins)) return problems;
  for (const name of Object.keys(origins)) {
    const path = ['origins', name];
    if (!NAME_PATTERN.test(name)) {
      problems.push({
        path,
        target: 'key',
        message: `expected ${NAME_EXPECTED}, got ${describeValue(name)}`,
      });
    } else if (services !== undefined && Object.hasOwn(services, name)) {
      problems.push({
        path,
        target: 'key',
        message: `"${name}" is also a service; an origin needs a name of its own (berth traffic weighs both by name)`,
      });
    }
  }
  return problems;
}

/**
 * Add-on names, and the variables their URLs become: not the platform's, not two add-ons on one, and not set by a
 * service's `env` too (a variable comes from one place).
 */
function checkAddons(addons: unknown, services: Record<string, unknown> | undefined): SpecProblem[] {
  const problems: SpecProblem[] = [];
  if (!isRecord(addons)) return problems;
  const owners = new Map<string, string>();
  for (const [name, addon] of Object.entries(addons)) {
    const path = ['addons', name];
    if (!NAME_PATTERN.test(name)) {
      problems.push({
        path,
        target: 'key',
        message: `expected ${NAME_EXPECTED}, got ${describeValue(name)}`,
      });
    }
    const kind = typeof addon === 'string' ? addon : isRecord(addon) ? addon['kind'] : undefined;
    if (!isAddonKind(kind)) continue;
    const explicit = isRecord(addon) && typeof addon['as'] === 'string' ? addon['as'] : undefined;
    const variable = explicit ?? DEFAULT_ADDON_ENV[kind];
    const asPath = explicit === undefined ? path : [...path, 'as'];
    const target = explicit === undefined ? 'key' : 'value';
    if (variable === 'PORT' || variable.startsWith('BERTH_')) {
      problems.push({ path: asPath, target, message: `${variable}: PORT and BERTH_* are set by Berth` });
      continue;
    }
    const owner = owners.get(variable);
    if (owner !== undefined) {
      problems.push({
        path: asPath,
        target,
        message: `add-on "${owner}" is already given as ${variable}; set "as:" to another variable name, e.g. ${name.toUpperCase().replaceAll('-', '_')}_URL`,
      });
      continue;
    }
    owners.set(variable, name);
    for (const [service, spec] of Object.entries(services ?? {})) {
      if (isRecord(spec) && isRecord(spec['env']) && Object.hasOwn(spec['env'], variable)) {
        problems.push({
          path: ['services', service, 'env', variable],
          target: 'key',
          message: `${variable} is the URL of add-on "${name}"; a variable comes from env or from an add-on, not both`,
        });
      }
    }
  }
  return problems;
}

/** A service's image and build agree with the app's runtime: a container needs an image, a process needs none. */
function runtimeProblems(
  path: FieldPath,
  service: Record<string, unknown>,
  runtime: 'process' | 'docker',
  explicit: boolean,
  context: SpecContext,
): SpecProblem[] {
  const dockerBuild = isRecord(service['build']);
  const image = service['image'];
  if (runtime === 'process') {
    // Only reachable with `runtime: process` written: an image or a Dockerfile build otherwise means docker.
    if (image !== undefined)
      return [
        {
          path: [...path, 'image'],
          target: 'key',
          message: 'an image runs on the docker runtime; remove "runtime: process" or this image',
        },
      ];
    if (dockerBuild)
      return [
        {
          path: [...path, 'build'],
          target: 'value',
          message:
            'a Dockerfile build runs on the docker runtime; remove "runtime: process" or use a build command',
        },
      ];
    return [];
  }
  if (image !== undefined && service['build'] !== undefined) {
    return [
      {
        path: [...path, 'build'],
        target: 'key',
        message: 'a service runs an existing image or builds one, not both: remove "image" or "build"',
      },
    ];
  }
  if (typeof service['build'] === 'string') {
    return [
      {
        path: [...path, 'build'],
        target: 'value',
        message: `on the docker runtime the Dockerfile builds the app: write build: { dockerfile: Dockerfile }${explicit ? '' : ' (the app runs on docker because of its Dockerfile or images)'}`,
      },
    ];
  }
  if (image === undefined && !dockerBuild && context.dockerfile !== true) {
    return [
      {
        path,
        target: 'key',
        message:
          'runs on the docker runtime but has no image: set "image:", "build: { dockerfile: ... }", or add a Dockerfile to the app directory',
      },
    ];
  }
  return [];
}
