// The app spec (berth.yaml): its normalised types, and the one way to turn text or JSON into an AppSpec.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Document } from 'yaml';
import type { core } from 'zod';
import { yamlLibrary } from '../lib/yaml-library.js';
import { type AddonSpec, DEFAULT_ADDON_BACKUPS, DEFAULT_ADDON_ENV } from './addon.js';
import { BerthError, type Issue } from './errors.js';
import { parseProcfile } from './procfile.js';
import { DEFAULT_STICKINESS_S } from './route-table.js';
import {
  canaryMismatches,
  crossCheck,
  needsProcfile,
  runtimeOf,
  type SpecContext,
  type SpecProblem,
} from './spec-checks.js';
import {
  DEFAULT_AUTOSCALE_COOLDOWNS,
  DEFAULT_AUTOSCALE_MIN,
  DEFAULT_CANARY_ANALYSIS,
  DEFAULT_DEPLOY,
  DEFAULT_HEALTH_CHECK,
  DEFAULT_INSTANCES,
  DEFAULT_PIPELINE,
  DEFAULT_RESPONSE_TIMEOUT_MS,
} from './spec-defaults.js';
import { type FieldPath, formatPath, locate, placeSyntaxError, positionOf } from './spec-location.js';
import { type ServiceInput, type SpecInput, specInputSchema } from './spec-schema.js';

export * from './spec-defaults.js';
export type { SpecContext };

/** A route: requests for `host` (and, if set, paths under `pathPrefix`) go to `service`. */
export interface RouteSpec {
  host: string;
  pathPrefix?: string;
  service: string;
  /** Idle timeout of upgraded connections (WebSockets) on this route, ms; the proxy's default (60 s) when unset. */
  tunnelIdleTimeoutMs?: number;
  /** Strict-Transport-Security on this route's HTTPS responses; absent: none (the default). */
  hsts?: { maxAgeS: number; includeSubDomains: boolean; preload: boolean };
  /** `false`: plain HTTP requests are served, not redirected to HTTPS (absent: redirected). */
  redirect?: false;
}

/** Active HTTP health check of a service's instances. Times in milliseconds. */
export interface HealthCheckSpec {
  /** Path requested on each instance, e.g. `/health`. */
  path: string;
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive passes that make an unhealthy instance healthy. */
  healthyThreshold: number;
  /** Consecutive failures that make a healthy instance unhealthy. */
  unhealthyThreshold: number;
  /** After an instance starts, failed checks within this time do not count against it (ECS's grace period). */
  graceMs: number;
  /** Status codes that pass, ALB matcher syntax: `200`, `200-299`, `200,204`. */
  successCodes: string;
}

/** How a new release replaces the old one. Times in milliseconds. */
export interface DeploySpec {
  /** Instances started above the desired count during a deploy, as % of desired (ECS maximumPercent − 100). */
  maxSurgePercent: number;
  /** Healthy instances kept during a deploy, as % of desired (ECS minimumHealthyPercent). */
  minHealthyPercent: number;
  /** How long a deregistered instance may finish in-flight requests before it is stopped. */
  drainMs: number;
  /** SIGTERM → SIGKILL delay. */
  stopTimeoutMs: number;
  /** Restore the last succeeded release when a deploy fails. */
  autoRollback: boolean;
  /**
   * Kubernetes targets: a rollout that makes no progress for this long fails (the Deployment's
   * `progressDeadlineSeconds`: pods left unscheduled or pulling their image); `DEFAULT_PROGRESS_DEADLINE_MS` when
   * absent (left out so that specs stored before it compare equal).
   */
  progressDeadlineMs?: number;
  /** `rolling` (default) replaces instances; `canary` shifts traffic by weight between the two releases. */
  strategy: 'rolling' | 'canary';
  /** Canary only: the new release's share of requests (%) at each step, rising, the last 100. */
  steps: number[];
  /** Canary only: how long each step runs before the analysis decides. */
  intervalMs: number;
  /** Canary only: what the analysis compares between the new and the old release. */
  analysis: CanaryAnalysisSpec;
  /**
   * Sticky sessions: while the service's route splits between releases, a client keeps the one it first got for
   * this many seconds after its last request (a cookie; ALB's target-group stickiness). Absent: off (left out so
   * that specs stored before it compare equal).
   */
  stickinessS?: number;
  /**
   * `X-Berth-Release: v7` and the `berth-release=v7` cookie send a request to that release while it is in the route,
   * whatever its weight. Absent: off (anyone could pick an unreleased canary, and skew its analysis).
   */
  releaseOverride?: boolean;
}

/**
 * Thresholds of a canary's analysis over one interval (Argo Rollouts / Flagger / Kayenta's judges, reduced to
 * the metrics the proxy measures per release). Rates in %, latencies in ms.
 */
export interface CanaryAnalysisSpec {
  /** Requests the new release must have served in the window before any verdict; fewer is a hold. */
  minRequests: number;
  /** 5xx share of the new release's responses (its own 5xx and the proxy's 502-504 for it) that aborts. */
  max5xxRatePercent: number;
  /** Percentage points the new release's 5xx share may exceed the old release's in the same window. */
  max5xxIncreasePercent: number;
  /** 502-504 the proxy answered for the new release beyond what the old release's rate predicts. */
  maxGatewayErrors: number;
  /** Absolute p95 / p99 ceilings; null = none. */
  maxP95Ms: number | null;
  maxP99Ms: number | null;
  /** The new release's p95 and p99 may be at most this multiple of the old release's (over a 10 ms floor). */
  maxLatencyRatio: number;
  /** A URL the user supplies that must answer 2xx at the end of each window (GET, 5 s timeout); null = none. */
  check: string | null;
}

/** Target tracking: each set target is a per-instance value the autoscaler keeps the service near. */
export interface AutoscaleSpec {
  min: number;
  max: number;
  requestsPerMinute?: number;
  /** Average CPU % per instance (100 = one core). */
  cpuPercent?: number;
  /** Average memory % of `resources.memoryBytes` (of the machine's memory when no limit is set). */
  memoryPercent?: number;
  scaleOutCooldownMs: number;
  scaleInCooldownMs: number;
  /** Step rules: while the app's alarm `alarm` is in ALARM, ask for `add` more instances (absent when none). */
  steps?: AutoscaleStep[];
}

/** A step rule on an alarm (Application Auto Scaling's step scaling, ChangeInCapacity). */
export interface AutoscaleStep {
  /** The name of one of the app's alarms (`berth alarms set`). */
  alarm: string;
  /** Instances to add while it is in ALARM. */
  add: number;
}

/** Resource limits of one instance. */
export interface ResourcesSpec {
  memoryBytes?: number;
  /** CPUs, may be fractional (0.5). */
  cpu?: number;
}

/** One service (process type) of an app, with every default filled in. */
export interface ServiceSpec {
  name: string;
  /**
   * Command run in the release directory (from berth.yaml `run`, else the Procfile line of this name); in a
   * container, empty runs the image's own command.
   */
  run: string;
  /** Build command of the process runtime. */
  build?: string;
  /**
   * Docker runtime: the image instances run. As written (`image:`) until the release's build resolves it to the
   * digest it pushed, `registry/name@sha256:…`: what every instance of the release (and a rollback to it) runs.
   */
  image?: string;
  /** Docker runtime: the Dockerfile in the app directory that the release's image is built from. */
  dockerfile?: string;
  /** Fixed port; when absent the platform assigns one per instance in `PORT`. */
  port?: number;
  instances: number;
  /** `null` for services that take no HTTP traffic (not routed, no port, no `health` set) or `health: false`. */
  health: HealthCheckSpec | null;
  deploy: DeploySpec;
  autoscale?: AutoscaleSpec;
  resources?: ResourcesSpec;
  env: Record<string, string>;
  /** Names of secrets given to the instances as environment variables of the same name. */
  secrets: string[];
  responseTimeoutMs: number;
}

/** The CI/CD pipeline: commands of each stage, and whether a passing build deploys by itself. */
export interface PipelineSpec {
  check: string[];
  test: string[];
  deploy: 'auto' | 'manual';
  /** Secrets (of the app) given to check and test commands; none by default, so tests cannot leak them. */
  secrets: string[];
  /** Each check, test and release-phase command fails after this long. */
  timeoutMs: number;
  /** Where a pipeline run deploys (a Kubernetes target's name); the app's `target` when absent. */
  target?: string;
}

/** A registry other than Berth's own for the app's release images, and its login. */
export interface RegistrySpec {
  /** `host[:port][/path]`: images go to `<url>/<app>/<service>`. */
  url: string;
  username?: string;
  /** The name of the app's secret holding the password (sealed like every secret; never in the spec). */
  passwordSecret?: string;
}

/** A whole, valid, normalised app spec: plain JSON data, stored as a release's spec snapshot. */
export interface AppSpec {
  app: string;
  /** How its instances run: processes under a shim, or Docker containers. */
  runtime: 'process' | 'docker';
  /** Where `berth deploy` sends it: a Kubernetes target's name (`berth targets add`); this machine when absent. */
  target?: string;
  routes: RouteSpec[];
  services: Record<string, ServiceSpec>;
  /** Managed databases of the app (`addons:`); absent when it declares none. */
  addons?: Record<string, AddonSpec>;
  /** External origins (`origins:`); absent when it declares none. */
  origins?: Record<string, OriginSpec>;
  pipeline: PipelineSpec;
  /** Docker runtime: where release images are pushed; Berth's own registry when absent. */
  registry?: RegistrySpec;
}

/**
 * An external origin (`origins:`): an app's old home outside Berth that a route can send a share of its requests to
 * (`berth traffic`), while the app moves. The proxy reaches it at `address:port`, sends `host` as Host (and as SNI
 * over TLS) and verifies the certificate against it.
 */
export interface OriginSpec {
  /** As written, for display. */
  url: string;
  tls: boolean;
  /** Where to connect: the URL's host (a name is resolved by the proxy, an IP address is used as is). */
  address: string;
  port: number;
  /** Host header and TLS server name: `host:`, else the URL's host. */
  host: string;
  /** Health-check path; the proxy checks `GET /` when unset. */
  healthPath: string;
  responseTimeoutMs: number;
  /** `ca:` as written (a path in the app directory). */
  ca?: string;
  /** The PEM text of `ca:`, read by the control plane when the release is made. */
  caPem?: string;
}

/** Options of `parseSpec`: the file name used in error positions, and the app's Procfile text if it has one. */
export interface ParseSpecOptions {
  file: string;
  procfile?: string;
  /** Name used for Procfile positions; defaults to `Procfile`. */
  procfileName?: string;
  /** What the app directory holds (a Dockerfile) when the spec comes from one. */
  context?: SpecContext;
}

interface PlacedIssue extends Issue {
  order: [file: number, line: number, column: number];
}

const SPEC_KEYS_HINT_DISTANCE = 2;

/**
 * Parses and validates berth.yaml text into a normalised AppSpec.
 * @throws BerthError `invalid_spec` listing every problem with `file:line:column`, sorted by position.
 */
export function parseSpec(text: string, options: ParseSpecOptions): AppSpec {
  const { file } = options;
  const doc = yamlLibrary().parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): { location: string; line: number; column: number } => {
    const { line, column } = positionOf(text, offset);
    return { location: `${file}:${line}:${column}`, line, column };
  };

  if (doc.errors.length > 0) {
    const issues = doc.errors.map((error): PlacedIssue => {
      const placed = placeSyntaxError(text, error);
      const { location, line, column } = at(placed.offset);
      return { path: '', message: `invalid YAML: ${placed.message}`, location, order: [0, line, column] };
    });
    throw specError(file, issues);
  }
  if (doc.contents === null) {
    const { location } = at(0);
    throw specError(file, [
      {
        path: '',
        location,
        message: 'the file is empty; expected at least "app" and "services"',
        order: [0, 1, 1],
      },
    ]);
  }

  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  keepEnvTextAsWritten(doc, raw);

  return validate(
    raw,
    options.procfile,
    options.procfileName ?? 'Procfile',
    (path, target) => {
      const { location, line, column } = at(locate(doc, path, target));
      return { location, order: [0, line, column] };
    },
    file,
    options.context ?? {},
  );
}

/**
 * Validates a spec that arrives as JSON (the berth.yaml document as an object, e.g. in an API request body)
 * with the same rules and messages as `parseSpec`. Issues carry a field path but no file position.
 * @throws BerthError `invalid_spec`.
 */
export function validateAppSpec(value: unknown, options: { procfile?: string } = {}): AppSpec {
  return validate(value, options.procfile, 'Procfile', () => ({ order: [0, 0, 0] }), 'spec', {});
}

/**
 * Reads a berth.yaml file and the `Procfile` beside it (if any) and parses them.
 * @throws BerthError `invalid_spec` when the file is missing or invalid.
 */
export function loadSpecFile(path: string): AppSpec {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    const reason = (cause as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : 'cannot be read';
    throw new BerthError('invalid_spec', `${path} ${reason}`, {
      cause,
      issues: [{ path: '', message: `${path} ${reason}; expected an app spec (berth.yaml)` }],
    });
  }
  const procfilePath = join(dirname(path), 'Procfile');
  const procfile = existsSync(procfilePath) ? readFileSync(procfilePath, 'utf8') : undefined;
  return parseSpec(
    text,
    procfile === undefined ? { file: path } : { file: path, procfile, procfileName: procfilePath },
  );
}

type Locator = (
  path: FieldPath,
  target: 'key' | 'value',
) => { location?: string; order: PlacedIssue['order'] };

function validate(
  raw: unknown,
  procfileText: string | undefined,
  procfileName: string,
  place: Locator,
  subject: string,
  context: SpecContext,
): AppSpec {
  // A file that is not an app spec at all (a key, a .env file named by mistake) is refused without a word of its
  // content: the field-by-field messages below quote values.
  const notSpec = notAnAppSpec(raw);
  if (notSpec !== undefined) {
    const placed = place([], 'value');
    const issue: PlacedIssue = { path: '', message: notSpec, order: placed.order };
    if (placed.location !== undefined) issue.location = placed.location;
    throw specError(subject, [issue]);
  }
  const procfile = procfileText === undefined ? undefined : parseProcfile(procfileText, procfileName);
  const problems: SpecProblem[] = [];
  // The fields each mapping allows, by path, as zod's error map sees them (its finished issues no longer carry them).
  const allowed = new Map<string, string[]>();
  const parsed = specInputSchema.safeParse(raw, {
    error: (issue) => structuralMessage(issue, allowed),
    reportInput: true,
  });
  if (!parsed.success) problems.push(...parsed.error.issues.flatMap((issue) => fromZodIssue(issue, allowed)));
  problems.push(...crossCheck(raw, procfile?.processes, context));

  const issues: PlacedIssue[] = problems.map((problem) => placeProblem(problem, place));
  // Procfile lines matter only when a service takes its command from there.
  if (procfile !== undefined && needsProcfile(raw, context)) {
    for (const issue of procfile.issues) {
      const [, line, column] = (issue.location ?? '').match(/:(\d+):(\d+)$/) ?? [];
      issues.push({
        ...issue,
        path: issue.path === '' ? 'Procfile' : `Procfile.${issue.path}`,
        order: [1, Number(line), Number(column)],
      });
    }
  }
  if (issues.length > 0 || !parsed.success) throw specError(subject, issues);
  const spec = normalise(parsed.data, procfile?.processes ?? {}, runtimeOf(raw, context));
  const mismatches = canaryMismatches(spec.services);
  if (mismatches.length > 0)
    throw specError(
      subject,
      mismatches.map((problem) => placeProblem(problem, place)),
    );
  return spec;
}

function placeProblem(problem: SpecProblem, place: Locator): PlacedIssue {
  const placed = place(problem.path, problem.target);
  const issue: PlacedIssue = {
    path: formatPath(problem.path),
    message: problem.message,
    order: placed.order,
  };
  if (placed.location !== undefined) issue.location = placed.location;
  return issue;
}

function notAnAppSpec(raw: unknown): string | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    const got = Array.isArray(raw) ? 'a list' : 'a single value (not shown)';
    return `expected a mapping (key: value pairs) with "app" and "services", got ${got}`;
  }
  if (!('app' in raw) && !('services' in raw)) {
    return 'this is not an app spec: it sets neither "app" nor "services" (nothing of its content is shown)';
  }
  return undefined;
}

function specError(subject: string, placed: PlacedIssue[]): BerthError {
  const sorted = [...placed].sort(
    (a, b) =>
      a.order[0] - b.order[0] ||
      a.order[1] - b.order[1] ||
      a.order[2] - b.order[2] ||
      a.path.localeCompare(b.path),
  );
  const issues = sorted.map(({ order: _order, ...issue }) => issue);
  const count = issues.length === 1 ? '1 error' : `${issues.length} errors`;
  return new BerthError('invalid_spec', `${subject} has ${count}`, { issues });
}

/** The key of a field path in the map of allowed fields. */
function pathKey(path: readonly PropertyKey[]): string {
  return path.map(String).join('\u0000');
}

/**
 * Messages for the issues zod raises itself (shapes and unknown keys); field leaves write their own. For unknown
 * keys it records the fields the mapping allows, for the "did you mean" of `fromZodIssue`.
 */
function structuralMessage(issue: core.$ZodRawIssue, allowed: Map<string, string[]>): string | undefined {
  if (issue.code === 'invalid_type') {
    const expected =
      issue.expected === 'array'
        ? 'a list'
        : issue.expected === 'object' || issue.expected === 'record'
          ? 'a mapping (key: value pairs)'
          : `a ${issue.expected}`;
    if (issue.input === undefined) return `missing; expected ${expected}`;
    return `expected ${expected}, got ${describeForMessage(issue.input)}`;
  }
  if (issue.code === 'unrecognized_keys') {
    const shape = (issue.inst as { shape?: Record<string, unknown> } | undefined)?.shape;
    if (shape !== undefined) allowed.set(pathKey(issue.path ?? []), Object.keys(shape));
    return 'unknown field';
  }
  return undefined;
}

function describeForMessage(value: unknown): string {
  if (value === null) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function fromZodIssue(issue: core.$ZodIssue, allowedByPath: ReadonlyMap<string, string[]>): SpecProblem[] {
  const path = issue.path.filter((segment): segment is string | number => typeof segment !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    const allowed = allowedByPath.get(pathKey(issue.path)) ?? [];
    return issue.keys.map((key) => {
      const guess = closest(key, allowed);
      const hint = guess === undefined ? '' : ` did you mean "${guess}"?`;
      const list = allowed.length === 0 ? '' : ` expected one of: ${allowed.join(', ')}`;
      return { path: [...path, key], target: 'key' as const, message: `unknown field;${hint}${list}` };
    });
  }
  if (issue.code === 'invalid_type' && path.length === 1 && path[0] === 'services') {
    const expected = 'a mapping of service names to their settings, e.g. "web: { run: node server.js }"';
    const message =
      issue.input === undefined
        ? `missing; expected ${expected}`
        : `expected ${expected}, got ${describeForMessage(issue.input)}`;
    return [{ path, target: 'value', message }];
  }
  return [{ path, target: 'value', message: issue.message }];
}

/** The allowed key nearest to a mistyped one, if it is only a typo or two away. */
function closest(key: string, allowed: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = SPEC_KEYS_HINT_DISTANCE + 1;
  for (const candidate of allowed) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/**
 * YAML reads `VERSION: 1.10` as the number 1.1 and `DEBUG: yes` as a string; env values are strings, so numbers
 * and booleans are kept exactly as written in the file.
 */
function keepEnvTextAsWritten(doc: Document, raw: unknown): void {
  const { isMap, isScalar } = yamlLibrary();
  const services = doc.get('services', true);
  if (!isMap(services) || typeof raw !== 'object' || raw === null) return;
  const rawServices = (raw as Record<string, unknown>)['services'];
  for (const pair of services.items) {
    const name = isScalar(pair.key) ? String(pair.key.value) : undefined;
    const env = isMap(pair.value) ? pair.value.get('env', true) : undefined;
    if (name === undefined || !isMap(env)) continue;
    const rawEnv = (rawServices as Record<string, Record<string, Record<string, unknown>>>)?.[name]?.['env'];
    if (typeof rawEnv !== 'object' || rawEnv === null) continue;
    for (const item of env.items) {
      if (!isScalar(item.key) || !isScalar(item.value)) continue;
      const value = item.value.value;
      if ((typeof value === 'number' || typeof value === 'boolean') && item.value.source !== undefined) {
        rawEnv[String(item.key.value)] = item.value.source;
      }
    }
  }
}

function normalise(
  input: SpecInput,
  procfile: Record<string, string>,
  runtime: 'process' | 'docker',
): AppSpec {
  const routes = (input.routes ?? []).map((route): RouteSpec => {
    const out: RouteSpec = { host: route.host, service: route.service };
    if (route.pathPrefix !== undefined) out.pathPrefix = route.pathPrefix;
    if (route.tunnelIdleTimeout !== undefined) out.tunnelIdleTimeoutMs = route.tunnelIdleTimeout;
    if (route.hsts !== undefined) {
      out.hsts = {
        maxAgeS: route.hsts.maxAge,
        includeSubDomains: route.hsts.includeSubDomains ?? false,
        preload: route.hsts.preload ?? false,
      };
    }
    if (route.redirect === false) out.redirect = false;
    return out;
  });
  const routed = new Set(routes.map((route) => route.service));
  const services: Record<string, ServiceSpec> = {};
  for (const [name, service] of Object.entries(input.services)) {
    services[name] = normaliseService(name, service, procfile[name] ?? '', routed.has(name), runtime);
  }
  const pipeline = input.pipeline ?? {};
  const addons = Object.entries(input.addons ?? {}).map(([name, addon]): [string, AddonSpec] => [
    name,
    {
      kind: addon.kind,
      ...(addon.version !== undefined && { version: addon.version }),
      as: addon.as ?? DEFAULT_ADDON_ENV[addon.kind],
      backups: {
        everyMs: addon.backups?.every ?? DEFAULT_ADDON_BACKUPS.everyMs,
        keep: addon.backups?.keep ?? DEFAULT_ADDON_BACKUPS.keep,
      },
    },
  ]);
  const origins = Object.entries(input.origins ?? {}).map(([name, origin]): [string, OriginSpec] => {
    const tls = origin.url.protocol === 'https:';
    // URL keeps IPv6 literals in brackets; connecting wants the bare address.
    const address = origin.url.hostname.replace(/^\[(.*)\]$/, '$1');
    return [
      name,
      {
        url: origin.url.href.replace(/\/$/, ''),
        tls,
        address,
        port: origin.url.port === '' ? (tls ? 443 : 80) : Number(origin.url.port),
        host: origin.host ?? address,
        healthPath: origin.health ?? '/',
        responseTimeoutMs: origin.timeout ?? DEFAULT_RESPONSE_TIMEOUT_MS,
        ...(origin.ca === undefined ? {} : { ca: origin.ca }),
      },
    ];
  });
  return {
    app: input.app,
    runtime,
    ...(input.target !== undefined && { target: input.target }),
    routes,
    services,
    // Left out when empty, so the specs of apps without add-ons stay what they were.
    ...(addons.length > 0 && { addons: Object.fromEntries(addons) }),
    ...(origins.length > 0 && { origins: Object.fromEntries(origins) }),
    pipeline: {
      check: [...(pipeline.check ?? DEFAULT_PIPELINE.check)],
      test: [...(pipeline.test ?? DEFAULT_PIPELINE.test)],
      deploy: pipeline.deploy ?? DEFAULT_PIPELINE.deploy,
      secrets: [...(pipeline.secrets ?? DEFAULT_PIPELINE.secrets)],
      timeoutMs: pipeline.timeout ?? DEFAULT_PIPELINE.timeoutMs,
      ...(pipeline.target !== undefined && { target: pipeline.target }),
    },
    ...(input.registry === undefined
      ? {}
      : {
          registry: {
            url: input.registry.url,
            ...(input.registry.username === undefined ? {} : { username: input.registry.username }),
            ...(input.registry.password === undefined ? {} : { passwordSecret: input.registry.password }),
          },
        }),
  };
}

function normaliseService(
  name: string,
  input: ServiceInput,
  procfileCommand: string,
  routed: boolean,
  runtime: 'process' | 'docker',
): ServiceSpec {
  const takesHttp =
    routed || input.port !== undefined || (input.health !== undefined && input.health !== null);
  const health =
    input.health === null || !takesHttp
      ? null
      : {
          path: input.health?.path ?? DEFAULT_HEALTH_CHECK.path,
          intervalMs: input.health?.interval ?? DEFAULT_HEALTH_CHECK.intervalMs,
          timeoutMs: input.health?.timeout ?? DEFAULT_HEALTH_CHECK.timeoutMs,
          healthyThreshold: input.health?.healthy ?? DEFAULT_HEALTH_CHECK.healthyThreshold,
          unhealthyThreshold: input.health?.unhealthy ?? DEFAULT_HEALTH_CHECK.unhealthyThreshold,
          graceMs: input.health?.grace ?? DEFAULT_HEALTH_CHECK.graceMs,
          successCodes: input.health?.successCodes ?? DEFAULT_HEALTH_CHECK.successCodes,
        };
  const deploy: DeploySpec = {
    maxSurgePercent: input.deploy?.maxSurge ?? DEFAULT_DEPLOY.maxSurgePercent,
    minHealthyPercent: input.deploy?.minHealthy ?? DEFAULT_DEPLOY.minHealthyPercent,
    drainMs: input.deploy?.drain ?? DEFAULT_DEPLOY.drainMs,
    stopTimeoutMs: input.deploy?.stopTimeout ?? DEFAULT_DEPLOY.stopTimeoutMs,
    autoRollback: input.deploy?.autoRollback ?? DEFAULT_DEPLOY.autoRollback,
    ...(input.deploy?.progressDeadline !== undefined && {
      progressDeadlineMs: input.deploy.progressDeadline,
    }),
    strategy: input.deploy?.strategy ?? DEFAULT_DEPLOY.strategy,
    steps: input.deploy?.steps ?? [...DEFAULT_DEPLOY.steps],
    intervalMs: input.deploy?.interval ?? DEFAULT_DEPLOY.intervalMs,
    analysis: {
      minRequests: input.deploy?.analysis?.minRequests ?? DEFAULT_CANARY_ANALYSIS.minRequests,
      max5xxRatePercent: input.deploy?.analysis?.max5xxRate ?? DEFAULT_CANARY_ANALYSIS.max5xxRatePercent,
      max5xxIncreasePercent:
        input.deploy?.analysis?.max5xxIncrease ?? DEFAULT_CANARY_ANALYSIS.max5xxIncreasePercent,
      maxGatewayErrors: input.deploy?.analysis?.maxGatewayErrors ?? DEFAULT_CANARY_ANALYSIS.maxGatewayErrors,
      maxP95Ms: input.deploy?.analysis?.maxP95 ?? DEFAULT_CANARY_ANALYSIS.maxP95Ms,
      maxP99Ms: input.deploy?.analysis?.maxP99 ?? DEFAULT_CANARY_ANALYSIS.maxP99Ms,
      maxLatencyRatio: input.deploy?.analysis?.maxLatencyRatio ?? DEFAULT_CANARY_ANALYSIS.maxLatencyRatio,
      check: input.deploy?.analysis?.check ?? DEFAULT_CANARY_ANALYSIS.check,
    },
    ...(input.deploy?.stickiness?.enabled === true && {
      stickinessS: input.deploy.stickiness.duration ?? DEFAULT_STICKINESS_S,
    }),
    ...(input.deploy?.releaseOverride !== undefined && { releaseOverride: input.deploy.releaseOverride }),
  };
  let autoscale: AutoscaleSpec | undefined;
  if (input.autoscale !== undefined) {
    const a = input.autoscale;
    autoscale = {
      min: a.min ?? DEFAULT_AUTOSCALE_MIN,
      max: a.max,
      scaleOutCooldownMs: a.scaleOutCooldown ?? DEFAULT_AUTOSCALE_COOLDOWNS.scaleOutCooldownMs,
      scaleInCooldownMs: a.scaleInCooldown ?? DEFAULT_AUTOSCALE_COOLDOWNS.scaleInCooldownMs,
    };
    if (a.requestsPerMinute !== undefined) autoscale.requestsPerMinute = a.requestsPerMinute;
    if (a.cpu !== undefined) autoscale.cpuPercent = a.cpu;
    if (a.memory !== undefined) autoscale.memoryPercent = a.memory;
    if (a.steps !== undefined && a.steps.length > 0) autoscale.steps = a.steps.map((x) => ({ ...x }));
  }
  let resources: ResourcesSpec | undefined;
  if (input.resources !== undefined) {
    resources = {};
    if (input.resources.memory !== undefined) resources.memoryBytes = input.resources.memory;
    if (input.resources.cpu !== undefined) resources.cpu = input.resources.cpu;
  }
  // A container without `image:` or a Dockerfile of its own is built from the directory's Dockerfile.
  const dockerfile =
    runtime !== 'docker' || input.image !== undefined
      ? undefined
      : typeof input.build === 'object'
        ? input.build.dockerfile
        : 'Dockerfile';
  // Optional fields are left out rather than set to undefined, so a JSON round trip gives an equal object.
  return {
    name,
    run: input.run ?? procfileCommand,
    ...(typeof input.build === 'string' && { build: input.build }),
    ...(input.image !== undefined && { image: input.image }),
    ...(dockerfile !== undefined && { dockerfile }),
    ...(input.port !== undefined && { port: input.port }),
    // An autoscaled service starts at its minimum, so the autoscaler is not fighting the spec.
    instances: input.instances ?? autoscale?.min ?? DEFAULT_INSTANCES,
    health,
    deploy,
    ...(autoscale !== undefined && { autoscale }),
    ...(resources !== undefined && { resources }),
    env: { ...(input.env ?? {}) },
    secrets: [...(input.secrets ?? [])],
    responseTimeoutMs: input.responseTimeout ?? DEFAULT_RESPONSE_TIMEOUT_MS,
  };
}
