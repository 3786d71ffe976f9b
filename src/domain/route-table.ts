// The route table and admin-API types: the only shapes the control plane and the proxy share.
import { X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { BerthError, type Issue } from './errors.js';

/** Health-check defaults (ALB-like, but faster: Berth runs on one machine). */
export const DEFAULT_HEALTH = {
  path: '/',
  intervalMs: 5000,
  timeoutMs: 2000,
  healthyThreshold: 2,
  unhealthyThreshold: 3,
  successCodes: '200-399',
  /** No grace by default (ALB); Berth's services set their spec's `grace`. */
  graceMs: 0,
} as const;

/** Default upstream response timeout: a request whose response head does not arrive in time gets 504. */
export const DEFAULT_RESPONSE_TIMEOUT_MS = 30_000;
/** Default time in-flight requests and upgraded connections get after a target is deregistered. */
export const DEFAULT_DRAIN_MS = 30_000;
/** Default time a request or response body may stall (no byte moves either way) before the exchange is ended. */
export const DEFAULT_BODY_IDLE_TIMEOUT_MS = 60_000;
/** Default time an upgraded connection (WebSocket) may stay idle before it is closed: ALB's and nginx's 60 s. */
export const DEFAULT_TUNNEL_IDLE_TIMEOUT_MS = 60_000;
/** Longest stickiness: ALB's 7 days. */
export const MAX_STICKINESS_S = 604_800;
/** Default stickiness: ALB's 1 day. */
export const DEFAULT_STICKINESS_S = 86_400;
/** Paths served over plain HTTP instead of being redirected to HTTPS. */
export const DEFAULT_RESERVED_PATH_PREFIXES = ['/.well-known/acme-challenge/'];

const hostPattern = z
  .string()
  .min(1)
  .max(253)
  .regex(/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/, {
    message: 'must be a lower-case host name, optionally starting with "*."',
  });

const name = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, { message: 'must be letters, digits, ".", "_" or "-"' });

const successCodes = z
  .string()
  .regex(/^\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*$/, { message: 'must look like "200", "200-399" or "200,302"' });

const healthSchema = z
  .object({
    path: z.string().startsWith('/').default(DEFAULT_HEALTH.path),
    intervalMs: z.number().int().min(50).max(300_000).default(DEFAULT_HEALTH.intervalMs),
    timeoutMs: z.number().int().min(10).max(120_000).default(DEFAULT_HEALTH.timeoutMs),
    healthyThreshold: z.number().int().min(1).max(10).default(DEFAULT_HEALTH.healthyThreshold),
    unhealthyThreshold: z.number().int().min(1).max(10).default(DEFAULT_HEALTH.unhealthyThreshold),
    successCodes: successCodes.default(DEFAULT_HEALTH.successCodes),
    /**
     * After a target is registered, failed checks within this time do not count against it (it stays `initial`),
     * and it is checked every 100 ms (or `intervalMs`, if shorter) until it passes: a booting instance joins as soon
     * as it answers. ECS's health check grace period, kept where the checks run.
     */
    graceMs: z.number().int().min(0).max(3_600_000).default(DEFAULT_HEALTH.graceMs),
  })
  .strict()
  .refine((h) => h.timeoutMs < h.intervalMs, {
    message: 'timeoutMs must be below intervalMs',
    path: ['timeoutMs'],
  });

const targetSchema = z
  .object({
    id: name,
    host: z.string().min(1).max(253),
    port: z.number().int().min(1).max(65535),
    weight: z.number().int().min(0).max(1000).default(1),
  })
  .strict();

/**
 * A target group whose targets live outside Berth (an external origin: the old platform during a migration). The
 * proxy sends `host` as Host and, over TLS, as SNI, and verifies the certificate against it with the system's CAs
 * plus `ca` (PEM, for a private CA).
 */
const originSchema = z
  .object({
    // Sent as a header line and an SNI name: a host name or an IP address, nothing that could end the line.
    host: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[A-Za-z0-9._:-]+$/, { message: 'must be a host name or an IP address' }),
    tls: z.boolean().default(true),
    ca: z.string().min(1).optional(),
  })
  .strict();

const targetGroupSchema = z
  .object({
    name,
    origin: originSchema.optional(),
    balancing: z.enum(['round_robin', 'least_outstanding']).default('round_robin'),
    health: healthSchema.default({ ...DEFAULT_HEALTH }),
    responseTimeoutMs: z.number().int().min(1).max(3_600_000).default(DEFAULT_RESPONSE_TIMEOUT_MS),
    bodyIdleTimeoutMs: z.number().int().min(100).max(3_600_000).default(DEFAULT_BODY_IDLE_TIMEOUT_MS),
    retryPutDelete: z.boolean().default(false),
    drainMs: z.number().int().min(0).max(3_600_000).default(DEFAULT_DRAIN_MS),
    targets: z.array(targetSchema).default([]),
  })
  .strict();

/** HSTS (RFC 6797) of a route: sent on its HTTPS responses only. */
const hstsSchema = z
  .object({
    maxAgeS: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1),
    includeSubDomains: z.boolean().default(false),
    preload: z.boolean().default(false),
  })
  .strict();

const routeSchema = z
  .object({
    host: hostPattern,
    pathPrefix: z.string().startsWith('/').optional(),
    tunnelIdleTimeoutMs: z.number().int().min(100).max(86_400_000).default(DEFAULT_TUNNEL_IDLE_TIMEOUT_MS),
    /** Plain HTTP requests for this route are redirected to HTTPS (default); false serves them over HTTP. */
    redirect: z.boolean().default(true),
    hsts: hstsSchema.optional(),
    /**
     * Sticky sessions across the route's groups (ALB's target-group stickiness, cookie `AWSALBTG`): while the route
     * splits between groups, a client keeps the group it first got for `durationS` after its last request.
     */
    stickiness: z
      .object({ durationS: z.number().int().min(1).max(MAX_STICKINESS_S) })
      .strict()
      .optional(),
    /** `X-Berth-Release: v7` (or the `berth-release` cookie) picks the backend labelled `v7` (ALB listener rules). */
    releaseOverride: z.boolean().default(false),
    backends: z
      .array(
        z
          .object({
            targetGroup: name,
            weight: z.number().int().min(0).max(1000).default(1),
            /** The label `X-Berth-Release` names: a release (`v7`) or an origin. */
            release: name.optional(),
          })
          .strict(),
      )
      .min(1),
  })
  .strict();

/** An HTTP-01 challenge answer (RFC 8555 §8.3): `GET /.well-known/acme-challenge/<token>` for `host`. */
const challengeSchema = z
  .object({
    host: hostPattern,
    token: z.string().regex(/^[A-Za-z0-9_-]{1,256}$/, { message: 'must be base64url' }),
    keyAuthorization: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,256}\.[A-Za-z0-9_-]{1,256}$/, { message: 'must be token.thumbprint' }),
  })
  .strict();

const certificateSchema = z
  .object({ host: hostPattern, certFile: z.string().min(1), keyFile: z.string().min(1) })
  .strict();

const routeTableSchema = z
  .object({
    routes: z.array(routeSchema).default([]),
    targetGroups: z.array(targetGroupSchema).default([]),
    certificates: z.array(certificateSchema).default([]),
    challenges: z.array(challengeSchema).default([]),
    reservedPathPrefixes: z.array(z.string().startsWith('/')).default([...DEFAULT_RESERVED_PATH_PREFIXES]),
  })
  .strict();

/** Health check of a target group. `successCodes` is a list of codes and ranges: "200-399", "200,204". */
export type HealthCheckConfig = z.output<typeof healthSchema>;
/** One upstream (an instance): where to connect and its share of the group's traffic. */
export type TargetConfig = z.output<typeof targetSchema>;
/** How the proxy reaches an external origin's targets: Host/SNI name, TLS, extra trusted CAs. */
export type OriginConfig = z.output<typeof originSchema>;
/** A set of interchangeable targets (one service release) with its balancing, health check and timeouts. */
export type TargetGroupConfig = z.output<typeof targetGroupSchema>;
/** Host (exact or `*.suffix`) and optional path prefix, sent to weighted target groups. */
export type Route = z.output<typeof routeSchema>;
/** A certificate and key in PEM files, served for `host` (SNI; `*.suffix` allowed). */
export type CertificateConfig = z.output<typeof certificateSchema>;
/** `Strict-Transport-Security: max-age=<maxAgeS>[; includeSubDomains][; preload]`. */
export type HstsConfig = z.output<typeof hstsSchema>;
/** What the proxy answers to a CA's HTTP-01 validation request. */
export type AcmeChallenge = z.output<typeof challengeSchema>;
/** Everything the proxy serves. Plain JSON; PUT whole to the admin API; persisted by the proxy. */
export type RouteTable = z.output<typeof routeTableSchema>;
/** What a writer may send: every field with a default may be left out. */
export type RouteTableInput = z.input<typeof routeTableSchema>;
export type TargetInput = z.input<typeof targetSchema>;

function issuesOf(error: z.ZodError): Issue[] {
  return error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message }));
}

/** Validates a route table (schema plus cross references); throws `BerthError('invalid_route_table')`. */
export function parseRouteTable(input: unknown): RouteTable {
  const parsed = routeTableSchema.safeParse(input);
  if (!parsed.success) {
    throw new BerthError('invalid_route_table', 'invalid route table', { issues: issuesOf(parsed.error) });
  }
  const table = parsed.data;
  const issues: Issue[] = [];
  const groups = new Set<string>();
  table.targetGroups.forEach((group, i) => {
    if (groups.has(group.name))
      issues.push({ path: `targetGroups.${i}.name`, message: `duplicate "${group.name}"` });
    groups.add(group.name);
    const ids = new Set<string>();
    group.targets.forEach((target, j) => {
      if (ids.has(target.id)) {
        issues.push({ path: `targetGroups.${i}.targets.${j}.id`, message: `duplicate "${target.id}"` });
      }
      ids.add(target.id);
    });
    const caIssue = group.origin?.ca === undefined ? undefined : pemProblem(group.origin.ca);
    if (caIssue !== undefined) issues.push({ path: `targetGroups.${i}.origin.ca`, message: caIssue });
    const codesIssue = checkSuccessCodes(group.health.successCodes);
    if (codesIssue) issues.push({ path: `targetGroups.${i}.health.successCodes`, message: codesIssue });
  });
  const routeKeys = new Set<string>();
  table.routes.forEach((route, i) => {
    const key = `${route.host} ${route.pathPrefix ?? '/'}`;
    if (routeKeys.has(key)) issues.push({ path: `routes.${i}`, message: `duplicate host and path "${key}"` });
    routeKeys.add(key);
    route.backends.forEach((backend, j) => {
      if (!groups.has(backend.targetGroup)) {
        issues.push({
          path: `routes.${i}.backends.${j}.targetGroup`,
          message: `unknown target group "${backend.targetGroup}"`,
        });
      }
    });
    const releases = new Set<string>();
    route.backends.forEach((backend, j) => {
      if (backend.release === undefined) return;
      if (releases.has(backend.release))
        issues.push({ path: `routes.${i}.backends.${j}.release`, message: `duplicate "${backend.release}"` });
      releases.add(backend.release);
    });
    if (route.backends.every((b) => b.weight === 0)) {
      issues.push({ path: `routes.${i}.backends`, message: 'at least one backend needs a weight above 0' });
    }
    const hstsIssue = route.hsts === undefined ? undefined : hstsProblem(route.hsts);
    if (hstsIssue !== undefined) issues.push({ path: `routes.${i}.hsts`, message: hstsIssue });
  });
  const tokens = new Set<string>();
  table.challenges.forEach((challenge, i) => {
    if (tokens.has(challenge.token))
      issues.push({ path: `challenges.${i}.token`, message: `duplicate "${challenge.token}"` });
    tokens.add(challenge.token);
  });
  if (issues.length > 0) throw new BerthError('invalid_route_table', 'invalid route table', { issues });
  return table;
}

/** Why a PEM bundle of CA certificates is refused (none in it, or one that does not parse), or undefined. */
export function pemProblem(pem: string): string | undefined {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return 'no PEM certificate in it';
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (error) {
      return `a certificate does not parse: ${(error as Error).message}`;
    }
  }
  return undefined;
}

/** HSTS preload lists take a site only with a year or more and every subdomain (hstspreload.org). */
export const HSTS_PRELOAD_MIN_AGE_S = 31_536_000;

/** Why an HSTS setting is refused, or undefined. */
export function hstsProblem(hsts: {
  maxAgeS: number;
  includeSubDomains: boolean;
  preload: boolean;
}): string | undefined {
  if (hsts.preload && (!hsts.includeSubDomains || hsts.maxAgeS < HSTS_PRELOAD_MIN_AGE_S))
    return 'preload needs includeSubDomains and a maxAge of at least 1 year (365d): preload lists refuse less';
  return undefined;
}

/** The header line a route's HSTS setting sends, with its CRLF. */
export function hstsHeaderLine(hsts: HstsConfig): string {
  return `strict-transport-security: max-age=${hsts.maxAgeS}${hsts.includeSubDomains ? '; includeSubDomains' : ''}${hsts.preload ? '; preload' : ''}\r\n`;
}

/** Validates one target registration (admin API body); throws `BerthError('invalid_request')`. */
export function parseTarget(input: unknown): TargetConfig {
  const parsed = targetSchema.safeParse(input);
  if (!parsed.success) {
    throw new BerthError('invalid_request', 'invalid target', { issues: issuesOf(parsed.error) });
  }
  return parsed.data;
}

function checkSuccessCodes(spec: string): string | undefined {
  for (const part of spec.split(',')) {
    const [lo, hi] = part.split('-').map(Number);
    if (lo === undefined || lo < 100 || lo > 599 || (hi !== undefined && (hi < lo || hi > 599))) {
      return `"${part}" is not a status code or range within 100-599`;
    }
  }
  return undefined;
}

/** Parses "200-399,404" into a predicate over status codes. */
export function successCodeMatcher(spec: string): (status: number) => boolean {
  const ranges = spec.split(',').map((part) => {
    const [lo, hi] = part.split('-').map(Number);
    return [lo ?? 0, hi ?? lo ?? 0] as const;
  });
  return (status) => ranges.some(([lo, hi]) => status >= lo && status <= hi);
}

// ---- Admin API shapes -------------------------------------------------------------------------

/**
 * Health as the proxy sees it. `initial`: registered, no verdict yet; it takes traffic only when no target of its
 * group is healthy (fail open), and not even then within its grace period (it is still booting). See
 * `TARGET_HEALTH`.
 */
export type TargetHealth = 'initial' | 'healthy' | 'unhealthy';
/** Lifecycle: `active` takes new requests; `draining` finishes in-flight ones; `drained` is done and removed. */
export type TargetState = 'active' | 'draining' | 'drained';

/** Counters of one target (or a whole target group, or the proxy). Monotonic except `inFlight`/`activeConnections`. */
export interface Counters {
  requests: number;
  /** Responses by class, as sent to clients; the proxy's own 502/503/504 are counted in `proxyErrors`, not here. */
  status: { '1xx': number; '2xx': number; '3xx': number; '4xx': number; '5xx': number };
  /** Errors the proxy produced itself. `499` = client went away before the response was complete. */
  proxyErrors: { '499': number; '502': number; '503': number; '504': number };
  retries: number;
  bytesIn: number;
  bytesOut: number;
  inFlight: number;
  activeConnections: number;
  /** Latency (first byte of request head to last byte of response) in ms, from the histogram. */
  latencyMs: { p50: number; p95: number; p99: number; max: number; count: number };
  /** Histogram: `le` upper bounds (ms) with cumulative counts; only non-empty buckets are listed. */
  histogram: { le: number; count: number }[];
}

/** One target as reported by `GET /target-groups/:group/targets`. */
export interface TargetStatus {
  targetGroup: string;
  id: string;
  host: string;
  port: number;
  weight: number;
  state: TargetState;
  health: TargetHealth;
  /** Why the last health change happened, e.g. `status 500`, `timeout`, `connection refused`. */
  healthReason: string;
  inFlight: number;
  upgraded: number;
  counters: Counters;
}

/** `GET /metrics`. */
export interface MetricsResponse {
  total: Counters;
  targetGroups: Record<string, Counters>;
  targets: TargetStatus[];
  /** Requests that matched no route (404), were redirected to HTTPS, or were ACME HTTP-01 challenges answered. */
  unrouted: { notFound: number; redirected: number; challenges: number };
}

/** Events of the proxy, numbered in order; kept in a ring so a control plane that was down can catch up. */
export type ProxyEvent =
  | {
      seq: number;
      time: string;
      type: 'target_health';
      targetGroup: string;
      target: string;
      from: TargetHealth;
      to: TargetHealth;
      reason: string;
    }
  | {
      seq: number;
      time: string;
      type: 'target_drained';
      targetGroup: string;
      target: string;
      forced: boolean;
    }
  | { seq: number; time: string; type: 'route_table_applied'; routes: number; targetGroups: number };

/** `GET /events?after=N&wait=ms`. `lastSeq` is the newest sequence number; pass it as `after` next time. */
export interface EventsResponse {
  events: ProxyEvent[];
  lastSeq: number;
  /**
   * Random per proxy process start. Sequence numbers restart at 1 when the proxy restarts: when `epoch` changes
   * (or `lastSeq` < your cursor), re-read target state and continue from `after=0`.
   */
  epoch: string;
  /** True when events after `after` were dropped from the ring (the reader fell too far behind). */
  truncated: boolean;
}

/** Error body of every admin API failure (same shape as `BerthError.toJSON()`). */
export interface AdminErrorBody {
  error: { code: string; message: string; issues?: Issue[] };
}
