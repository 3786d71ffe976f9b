// The zod schema of berth.yaml as written: strict objects, one leaf per field kind, one message style.

import { z } from 'zod';
import { DURATION_EXAMPLES, formatDuration, parseDuration } from '../lib/duration.js';
import { parseSize } from '../lib/size.js';
import { ADDON_KINDS, isAddonKind, MIN_BACKUP_INTERVAL_MS } from './addon.js';
import { hostNameProblem } from './host-name.js';
import { hstsProblem, MAX_STICKINESS_S } from './route-table.js';
import { DEFAULT_AUTOSCALE_MIN, DEFAULT_DEPLOY, DEFAULT_HEALTH_CHECK } from './spec-defaults.js';

/** Names of apps and services become host labels, directory names and Kubernetes object names. */
export const NAME_PATTERN = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const NAME_EXPECTED =
  'a name of lowercase letters, digits and dashes, starting with a letter (at most 63 characters)';
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const ENV_NAME_EXPECTED =
  'an environment variable name (letters, digits and underscores, not starting with a digit)';

const HOST_LABEL = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?';
const HOST_PATTERN = new RegExp(`^(\\*\\.)?${HOST_LABEL}(\\.${HOST_LABEL})*$`);
const STATUS_CODES_PATTERN = /^[1-5]\d\d(-[1-5]\d\d)?(,[1-5]\d\d(-[1-5]\d\d)?)*$/;

/** How a value reads in an error message: strings quoted, containers named, missing values called nothing. */
export function describeValue(value: unknown): string {
  if (value === undefined || value === null) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') {
    const shown = value.length > 40 ? `${value.slice(0, 37)}...` : value;
    return JSON.stringify(shown);
  }
  return String(value);
}

type Converted<T> = { ok: true; value: T } | { ok: false; hint?: string };
const ok = <T>(value: T): Converted<T> => ({ ok: true, value });
const no = (hint?: string): Converted<never> => (hint === undefined ? { ok: false } : { ok: false, hint });

/**
 * A field whose checking and conversion is one function, so that every failure reads
 * `expected <what>, got <value>` (or `missing; expected <what>` when the key is absent).
 */
function leaf<T>(expected: string, convert: (value: unknown) => Converted<T>) {
  return z.unknown().transform((value, ctx): T => {
    const result = value === undefined ? no() : convert(value);
    if (result.ok) return result.value;
    const message =
      value === undefined
        ? `missing; expected ${expected}`
        : `expected ${expected}, got ${describeValue(value)}${result.hint === undefined ? '' : ` (${result.hint})`}`;
    ctx.addIssue({ code: 'custom', message, input: value });
    return z.NEVER;
  });
}

const nonEmptyText = (expected: string) =>
  leaf(expected, (v) => (typeof v === 'string' && v.trim() !== '' ? ok(v.trim()) : no()));

const name = leaf(NAME_EXPECTED, (v) => (typeof v === 'string' && NAME_PATTERN.test(v) ? ok(v) : no()));

const wholeNumber = (min: number, max: number, what = 'a whole number') =>
  leaf(`${what} from ${min} to ${max}`, (v) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? ok(v) : no(),
  );

const duration = leaf(`a duration such as ${DURATION_EXAMPLES}`, (v) => {
  if (typeof v === 'number') return no(`add a unit, e.g. "${v}s"`);
  if (typeof v !== 'string') return no();
  if (/^\d+(\.\d+)?$/.test(v)) return no(`add a unit, e.g. "${v}s"`);
  try {
    return ok(parseDuration(v));
  } catch {
    return no();
  }
});

/** The idle timeout of upgraded connections (WebSockets): from 1 s to 24 h. */
const tunnelIdleTimeout = leaf('a duration from 1s to 24h such as 90s, 10m or 1h', (v) => {
  if (typeof v !== 'string' || /^\d+(\.\d+)?$/.test(v)) return no();
  try {
    const ms = parseDuration(v);
    return ms >= 1000 && ms <= 86_400_000 ? ok(ms) : no();
  } catch {
    return no();
  }
});

const size = leaf('a size such as 512Mi, 1Gi, 100M, 64Ki or a number of bytes', (v) => {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? ok(v) : no();
  if (typeof v !== 'string') return no();
  const withB = /^(\d+(?:\.\d+)?)([kKMGT])i?B$/.exec(v);
  if (withB !== null)
    return no(`write "${withB[1]}${withB[2]}i" for binary or "${withB[1]}${withB[2]}" for decimal`);
  try {
    return ok(parseSize(v));
  } catch {
    return no();
  }
});

/** Deploy percentages must carry `%`: a bare `50` next to `instances: 2` could be read as a count. */
const percentWithSign = (min: number, max: number) =>
  leaf(`a percentage from ${min}% to ${max}% such as "50%"`, (v) => {
    if (typeof v === 'number') return no(`add a percent sign, e.g. "${v}%"`);
    if (typeof v !== 'string') return no();
    const match = /^(\d+)%$/.exec(v);
    const n = match === null ? Number.NaN : Number(match[1]);
    return n >= min && n <= max ? ok(n) : no();
  });

/** Utilisation targets read as plain numbers (`cpu: 70`) as in DESIGN.md; `70%` is accepted too. */
const utilisation = leaf('a percentage from 1 to 100', (v) => {
  const n =
    typeof v === 'number'
      ? v
      : typeof v === 'string' && /^\d+(\.\d+)?%$/.test(v)
        ? Number.parseFloat(v)
        : NaN;
  return n >= 1 && n <= 100 ? ok(n) : no();
});

const boolean = leaf('true or false', (v) => (typeof v === 'boolean' ? ok(v) : no()));

const urlPath = leaf('a URL path starting with "/"', (v) =>
  typeof v === 'string' && v.startsWith('/') && !/\s/.test(v) ? ok(v) : no(),
);

const host = leaf('a host name such as shop.localhost or *.example.com (lowercase, no port)', (v) => {
  if (typeof v !== 'string') return no();
  // The pattern first keeps the plain message for plain typos; the reason names what else is wrong.
  const problem = hostNameProblem(v);
  if (v.length <= 253 && HOST_PATTERN.test(v)) return problem === undefined ? ok(v) : no(problem);
  return no(problem);
});

/** HSTS max-age: a duration of whole seconds (the header's unit), up to the header's 2^31-1 seconds. */
const hstsMaxAge = leaf('a duration in whole seconds such as 365d, 180d or 1h', (v) => {
  if (typeof v === 'number') return no(`add a unit, e.g. "${v}s"`);
  if (typeof v !== 'string') return no();
  try {
    const ms = parseDuration(v);
    return ms % 1000 === 0 && ms / 1000 <= 2 ** 31 - 1 ? ok(ms / 1000) : no();
  } catch {
    return no();
  }
});

const hstsSchema = z
  .strictObject({
    maxAge: hstsMaxAge,
    includeSubDomains: boolean.optional(),
    preload: boolean.optional(),
  })
  .superRefine((hsts, ctx) => {
    const problem = hstsProblem({
      maxAgeS: hsts.maxAge,
      includeSubDomains: hsts.includeSubDomains ?? false,
      preload: hsts.preload ?? false,
    });
    if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['preload'], message: problem });
  });

const successCodes = leaf('HTTP status codes such as "200", "200-299" or "200,204"', (v) => {
  const text = typeof v === 'number' ? String(v) : typeof v === 'string' ? v.replace(/\s+/g, '') : '';
  if (!STATUS_CODES_PATTERN.test(text)) return no();
  const reversed = text.split(',').some((part) => {
    const [low, high] = part.split('-');
    return high !== undefined && Number(high) < Number(low);
  });
  return reversed ? no('a range must go from low to high') : ok(text);
});

const commands = leaf('a command or a list of commands', (v) => {
  if (typeof v === 'string' && v.trim() !== '') return ok([v.trim()]);
  if (Array.isArray(v) && v.every((c) => typeof c === 'string' && c.trim() !== '')) {
    return ok(v.map((c: string) => c.trim()));
  }
  return no();
});

/**
 * A Docker image reference: `[registry[:port]/]name[/name...][:tag][@sha256:digest]`, names in lowercase as the
 * distribution spec has them.
 */
export const IMAGE_PATTERN =
  /^(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*(?::\d+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::\w[\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

const image = leaf('an image such as registry.example.com/shop/web:1.4 or busybox:1.36', (v) =>
  typeof v === 'string' && v.length <= 255 && IMAGE_PATTERN.test(v) ? ok(v) : no(),
);

/** A file inside the app directory: relative, no `..`. */
function isInsidePath(v: string): boolean {
  return v !== '' && !v.startsWith('/') && !v.split('/').some((part) => part === '..' || part === '');
}

/** `build:` is a build command (process runtime) or `{ dockerfile: path }` (an image built from the directory). */
const build = leaf<string | { dockerfile: string }>(
  'a build command such as "npm ci && npm run build", or { dockerfile: Dockerfile }',
  (v) => {
    if (typeof v === 'string') return v.trim() === '' ? no() : ok(v.trim());
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return no();
    const keys = Object.keys(v);
    const dockerfile = (v as Record<string, unknown>)['dockerfile'];
    if (keys.some((k) => k !== 'dockerfile'))
      return no(`only "dockerfile" may be set, not ${keys.filter((k) => k !== 'dockerfile').join(', ')}`);
    if (typeof dockerfile !== 'string' || !isInsidePath(dockerfile))
      return no(
        'dockerfile must be a path inside the app directory, e.g. Dockerfile or docker/web.Dockerfile',
      );
    return ok({ dockerfile });
  },
);

const runtimeKind = leaf<'process' | 'docker'>('"process" or "docker"', (v) =>
  v === 'process' || v === 'docker' ? ok(v) : no(),
);

const deployMode = leaf<'auto' | 'manual'>('"auto" or "manual"', (v) =>
  v === 'auto' || v === 'manual' ? ok(v) : no(),
);

/** Env values are strings; YAML numbers and booleans are taken as written (the YAML reader passes their text). */
const envValue = leaf('a string, number or boolean', (v) =>
  typeof v === 'string' ? ok(v) : typeof v === 'number' || typeof v === 'boolean' ? ok(String(v)) : no(),
);

const envName = leaf(ENV_NAME_EXPECTED, (v) =>
  typeof v === 'string' && ENV_NAME_PATTERN.test(v) ? ok(v) : no(),
);

/** Where release images go: `host[:port][/path]`, no scheme (Docker speaks HTTPS, or HTTP to loopback). */
const registryUrl = leaf('a registry such as registry.example.com/team or 127.0.0.1:5000 (no scheme)', (v) =>
  typeof v === 'string' &&
  /^[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*(?::\d{1,5})?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(v)
    ? ok(v)
    : no(),
);

const registrySchema = z
  .strictObject({
    url: registryUrl,
    username: nonEmptyText('a user name').optional(),
    password: envName.optional(),
  })
  .superRefine((registry, ctx) => {
    if ((registry.username === undefined) !== (registry.password === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [registry.username === undefined ? 'password' : 'username'],
        message: "a login needs both username and password (the name of one of the app's secrets)",
      });
    }
  });

const cpu = leaf('a number of CPUs greater than 0 such as 0.5 or 2', (v) =>
  typeof v === 'number' && v > 0 && v <= 1024 ? ok(v) : no(),
);

const healthSchema = z
  .strictObject({
    path: urlPath.optional(),
    interval: duration.optional(),
    timeout: duration.optional(),
    healthy: wholeNumber(1, 10).optional(),
    unhealthy: wholeNumber(1, 10).optional(),
    grace: duration.optional(),
    successCodes: successCodes.optional(),
  })
  .superRefine((health, ctx) => {
    // As on ALB, a check must time out before the next one is due, or checks would pile up.
    const interval = health.interval ?? DEFAULT_HEALTH_CHECK.intervalMs;
    const timeout = health.timeout ?? DEFAULT_HEALTH_CHECK.timeoutMs;
    if (timeout >= interval) {
      ctx.addIssue({
        code: 'custom',
        path: [health.timeout === undefined ? 'interval' : 'timeout'],
        message: `expected timeout (${formatDuration(timeout)}) to be shorter than interval (${formatDuration(interval)})`,
      });
    }
  });

const deployStrategy = leaf<'rolling' | 'canary'>('"rolling" or "canary"', (v) =>
  v === 'rolling' || v === 'canary' ? ok(v) : no(),
);

/** Canary steps: rising shares of requests from 1 to 100, ending at 100 (`[5, 25, 50, 100]`). */
const canarySteps = leaf(
  'a list of rising percentages from 1 to 100 ending with 100, such as [5, 25, 50, 100]',
  (v) =>
    Array.isArray(v) &&
    v.length > 0 &&
    v.length <= 20 &&
    v.every(
      (n, i) =>
        typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 100 && (i === 0 || n > v[i - 1]),
    ) &&
    v.at(-1) === 100
      ? ok(v as number[])
      : no(),
);

/** A rate in percent, written `5%` or `0.5%`. */
const ratePercent = leaf('a percentage from 0% to 100% such as "5%" or "0.5%"', (v) => {
  if (typeof v === 'number') return no(`add a percent sign, e.g. "${v}%"`);
  const match = typeof v === 'string' ? /^(\d+(?:\.\d+)?)%$/.exec(v) : null;
  const n = match === null ? Number.NaN : Number(match[1]);
  return n >= 0 && n <= 100 ? ok(n) : no();
});

const ratio = leaf('a ratio from 1 to 100 such as 1.5', (v) =>
  typeof v === 'number' && v >= 1 && v <= 100 ? ok(v) : no(),
);

/** An http(s) URL for the canary's own check. */
const checkUrl = leaf('an http:// or https:// URL such as https://shop.example.com/health/deep', (v) => {
  if (typeof v !== 'string') return no();
  try {
    const url = new URL(v);
    return url.protocol === 'http:' || url.protocol === 'https:' ? ok(v) : no();
  } catch {
    return no();
  }
});

/** How long a sticky cookie lasts after a client's last request: whole seconds (its Max-Age), 1 s to ALB's 7 days. */
const stickinessDuration = leaf('a duration in whole seconds from 1s to 7d such as 1h or 1d', (v) => {
  if (typeof v === 'number') return no(`add a unit, e.g. "${v}s"`);
  if (typeof v !== 'string') return no();
  try {
    const ms = parseDuration(v);
    return ms % 1000 === 0 && ms >= 1000 && ms / 1000 <= MAX_STICKINESS_S ? ok(ms / 1000) : no();
  } catch {
    return no();
  }
});

/** ALB's target-group stickiness: `{ enabled: true, duration: 1h }`. */
const stickinessSchema = z.strictObject({
  enabled: boolean,
  duration: stickinessDuration.optional(),
});

const analysisSchema = z.strictObject({
  minRequests: wholeNumber(1, 1_000_000).optional(),
  max5xxRate: ratePercent.optional(),
  max5xxIncrease: ratePercent.optional(),
  maxGatewayErrors: wholeNumber(0, 1_000_000).optional(),
  maxP95: duration.optional(),
  maxP99: duration.optional(),
  maxLatencyRatio: ratio.optional(),
  check: checkUrl.optional(),
});

const deploySchema = z
  .strictObject({
    maxSurge: percentWithSign(0, 100).optional(),
    minHealthy: percentWithSign(0, 100).optional(),
    drain: duration.optional(),
    stopTimeout: duration.optional(),
    autoRollback: boolean.optional(),
    progressDeadline: duration.optional(),
    strategy: deployStrategy.optional(),
    steps: canarySteps.optional(),
    interval: duration.optional(),
    analysis: analysisSchema.optional(),
    stickiness: stickinessSchema.optional(),
    releaseOverride: boolean.optional(),
  })
  .superRefine((deploy, ctx) => {
    // `analysis` also judges `berth traffic --ramp` (a service taking over from an external origin), so it may stand
    // without a canary strategy.
    if (deploy.strategy !== 'canary') {
      for (const key of ['steps', 'interval'] as const) {
        if (deploy[key] !== undefined)
          ctx.addIssue({ code: 'custom', path: [key], message: 'only for strategy: canary' });
      }
    }
    if (deploy.interval !== undefined && deploy.interval < 1000) {
      ctx.addIssue({ code: 'custom', path: ['interval'], message: 'expected at least 1s between decisions' });
    }
    const surge = deploy.maxSurge ?? DEFAULT_DEPLOY.maxSurgePercent;
    const minHealthy = deploy.minHealthy ?? DEFAULT_DEPLOY.minHealthyPercent;
    if (surge === 0 && minHealthy === 100) {
      ctx.addIssue({
        code: 'custom',
        path: [deploy.maxSurge === undefined ? 'minHealthy' : 'maxSurge'],
        message:
          'maxSurge 0% with minHealthy 100% can neither start nor stop an instance; raise maxSurge or lower minHealthy',
      });
    }
  });

const alarmName = leaf('an alarm name such as slow-p95 (letters, digits, dots, dashes, underscores)', (v) =>
  typeof v === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(v) ? ok(v) : no(),
);

const autoscaleStepSchema = z.strictObject({
  alarm: alarmName,
  add: wholeNumber(1, 100),
});

const autoscaleSchema = z
  .strictObject({
    min: wholeNumber(0, 100).optional(),
    max: wholeNumber(1, 100),
    requestsPerMinute: wholeNumber(1, 1_000_000).optional(),
    cpu: utilisation.optional(),
    memory: utilisation.optional(),
    scaleOutCooldown: duration.optional(),
    scaleInCooldown: duration.optional(),
    steps: z.array(autoscaleStepSchema).optional(),
  })
  .superRefine((autoscale, ctx) => {
    const min = autoscale.min ?? DEFAULT_AUTOSCALE_MIN;
    if (min > autoscale.max) {
      ctx.addIssue({
        code: 'custom',
        path: [autoscale.min === undefined ? 'max' : 'min'],
        message: `expected min (${min}) to be at most max (${autoscale.max})`,
      });
    }
    if (
      autoscale.requestsPerMinute === undefined &&
      autoscale.cpu === undefined &&
      autoscale.memory === undefined
    ) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: 'expected at least one target: requestsPerMinute, cpu or memory',
      });
    }
  });

const resourcesSchema = z.strictObject({
  memory: size.optional(),
  cpu: cpu.optional(),
});

const serviceSchema = z.preprocess(
  // `web:` with no settings is a service whose command comes from the Procfile.
  (v) => (v === null ? {} : v),
  z
    .strictObject({
      run: nonEmptyText('a command to run, e.g. "node server.js"').optional(),
      build: build.optional(),
      image: image.optional(),
      port: wholeNumber(1, 65535, 'a port number').optional(),
      instances: wholeNumber(0, 100).optional(),
      health: z.preprocess((v) => (v === false ? null : v), healthSchema.nullable()).optional(),
      deploy: deploySchema.optional(),
      autoscale: autoscaleSchema.optional(),
      resources: resourcesSchema.optional(),
      env: z.record(z.string(), envValue).optional(),
      secrets: z.array(envName).optional(),
      responseTimeout: duration.optional(),
    })
    .superRefine((service, ctx) => {
      const scale = service.autoscale;
      if (scale === undefined || service.instances === undefined) return;
      const min = scale.min ?? DEFAULT_AUTOSCALE_MIN;
      if (service.instances < min || service.instances > scale.max) {
        ctx.addIssue({
          code: 'custom',
          path: ['instances'],
          message: `expected a whole number from autoscale.min (${min}) to autoscale.max (${scale.max}), got ${service.instances}`,
        });
      }
    }),
);

const routeSchema = z.strictObject({
  host,
  pathPrefix: urlPath.optional(),
  service: nonEmptyText('the name of a service'),
  tunnelIdleTimeout: tunnelIdleTimeout.optional(),
  hsts: hstsSchema.optional(),
  redirect: boolean.optional(),
});

const pipelineSchema = z.strictObject({
  check: commands.optional(),
  test: commands.optional(),
  deploy: deployMode.optional(),
  secrets: z.array(envName).optional(),
  timeout: duration.optional(),
  target: name.optional(),
});

const addonKind = leaf(ADDON_KINDS.map((k) => `"${k}"`).join(' or '), (v) => (isAddonKind(v) ? ok(v) : no()));

/** `15`, `7`, `7.0`: YAML may read a version as a number, taken as written. */
const addonVersion = leaf('a version such as "15" or "7"', (v) => {
  const text = typeof v === 'number' ? String(v) : v;
  return typeof text === 'string' && /^\d+(\.\d+)?$/.test(text) ? ok(text) : no();
});

const backupInterval = leaf('a duration of at least 1m such as 24h, 6h or 30m', (v) => {
  if (typeof v !== 'string' || /^\d+(\.\d+)?$/.test(v)) return no();
  try {
    const ms = parseDuration(v);
    return ms >= MIN_BACKUP_INTERVAL_MS ? ok(ms) : no();
  } catch {
    return no();
  }
});

const addonSchema = z.preprocess(
  // `cache: redis` is the short form of `cache: { kind: redis }`.
  (v) => (typeof v === 'string' ? { kind: v } : v),
  z.strictObject({
    kind: addonKind,
    version: addonVersion.optional(),
    as: envName.optional(),
    backups: z
      .strictObject({ every: backupInterval.optional(), keep: wholeNumber(1, 1000).optional() })
      .optional(),
  }),
);

/** An external origin's address: an http(s) URL with a host and at most a bare "/" path (paths are forwarded as sent). */
const originUrl = leaf('an https:// (or http://) URL such as https://shop.herokuapp.com', (v) => {
  if (typeof v !== 'string') return no();
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    return no();
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return no();
  if (url.username !== '' || url.password !== '') return no('no user or password in the URL');
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '')
    return no('no path: requests keep their own path');
  return ok(url);
});

/** The Host header and TLS name of an origin: a plain host name (an IP address too), no wildcard, no port. */
const originHost = leaf('a host name such as shop.herokuapp.com (lowercase, no port)', (v) => {
  if (typeof v !== 'string' || v.startsWith('*.') || v.length > 253) return no();
  return HOST_PATTERN.test(v) ? ok(v) : no();
});

const originSchema = z.strictObject({
  url: originUrl,
  host: originHost.optional(),
  health: urlPath.optional(),
  timeout: duration.optional(),
  ca: nonEmptyText("the path of a PEM file of the CA that signed the origin's certificate").optional(),
});

/** berth.yaml as written, after field-level checks and unit conversion; defaults are filled in later. */
export const specInputSchema = z.strictObject({
  app: name,
  runtime: runtimeKind.optional(),
  target: name.optional(),
  routes: z.array(routeSchema).optional(),
  services: z.record(z.string(), serviceSchema),
  addons: z.record(z.string(), addonSchema).optional(),
  origins: z.record(z.string(), originSchema).optional(),
  pipeline: pipelineSchema.optional(),
  registry: registrySchema.optional(),
});

export type SpecInput = z.output<typeof specInputSchema>;
export type ServiceInput = SpecInput['services'][string];
