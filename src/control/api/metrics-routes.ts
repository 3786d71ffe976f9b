// API routes of observability: metric series, a live summary, alarms, and the Prometheus exposition.
import http from 'node:http';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { BerthError } from '../../domain/errors.js';
import type { Instance } from '../../domain/instance.js';
import {
  ALARM_COMPARISONS,
  ALARM_METRICS,
  type AlarmRule,
  type MetricSeries,
} from '../../domain/metrics-types.js';
import { parseDuration } from '../../lib/duration.js';
import type { AlarmManager } from '../metrics/alarms.js';
import type { MetricsCollector } from '../metrics/metrics-collector.js';
import type { MetricsStore } from '../metrics/metrics-store.js';
import { renderExposition } from '../metrics/prometheus.js';
import type { Store } from '../store/store.js';
import type { UsageMonitor } from '../usage-monitor.js';
import { parseInput } from './parse-input.js';

export interface MetricsRoutesOptions {
  store: Store;
  metrics: MetricsStore;
  collector: MetricsCollector;
  alarms: AlarmManager;
  usage: UsageMonitor;
  now?: () => number;
}

const duration = z.string().transform((text, context) => {
  try {
    return parseDuration(text);
  } catch (error) {
    context.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

const metricsQuery = z.strictObject({
  service: z.string().optional(),
  since: duration.default(15 * 60_000),
  by: z.enum(['service', 'release', 'instance']).default('service'),
  resolution: duration.optional(),
  /** `1`: one point per series for the whole window (exact merged percentiles), for tables. */
  collapse: z.enum(['0', '1']).optional(),
});

const topQuery = z.strictObject({ window: duration.default(60_000), app: z.string().optional() });

const alarmBody = z.strictObject({
  service: z.string().min(1),
  metric: z.enum(ALARM_METRICS),
  comparison: z.enum(ALARM_COMPARISONS),
  threshold: z.number().finite(),
  periodMs: z.number().int().positive().default(60_000),
  evaluationPeriods: z.number().int().min(1).max(100).default(5),
  datapointsToAlarm: z.number().int().min(1).max(100).default(3),
  webhook: z.url().optional(),
});

/** A summary row of `berth top`: one service over the last window. */
export interface TopRow {
  app: string;
  series: MetricSeries;
}

export function registerMetricsRoutes(api: FastifyInstance, options: MetricsRoutesOptions): void {
  const { store, metrics, alarms } = options;
  const now = options.now ?? Date.now;
  const requireApp = (app: string): void => {
    if (!store.getApp(app)) throw new BerthError('not_found', `no app named ${app}`);
  };

  api.get<{ Params: { app: string } }>('/v1/apps/:app/metrics', async (request) => {
    requireApp(request.params.app);
    const query = parseInput(metricsQuery, request.query, 'query');
    const to = now();
    return metrics.query(
      {
        app: request.params.app,
        service: query.service,
        from: to - query.since,
        to,
        by: query.by,
        resolutionMs: query.resolution,
        collapse: query.collapse === '1',
      },
      to,
    );
  });

  api.get('/v1/top', async (request) => {
    const query = parseInput(topQuery, request.query, 'query');
    const to = now();
    const apps = query.app === undefined ? store.listApps().map((a) => a.name) : [query.app];
    return apps.flatMap(
      (app) =>
        metrics.query(
          { app, from: to - query.window, to, collapse: true, resolutionMs: metrics.retention.fineMs },
          to,
        ).series,
    );
  });

  api.get<{ Querystring: { app?: string } }>('/v1/alarms', async (request) => alarms.list(request.query.app));

  api.put<{ Params: { app: string; name: string } }>('/v1/apps/:app/alarms/:name', async (request) => {
    requireApp(request.params.app);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(request.params.name)) {
      throw new BerthError(
        'invalid_request',
        'alarm names are 1-63 letters, digits, dots, dashes or underscores',
        {
          issues: [{ path: 'params.name', message: 'expected [A-Za-z0-9][A-Za-z0-9._-]*' }],
        },
      );
    }
    const body = parseInput(alarmBody, request.body, 'body');
    const rule: AlarmRule = { app: request.params.app, name: request.params.name, ...body };
    return alarms.put(rule, now());
  });

  api.delete<{ Params: { app: string; name: string } }>('/v1/apps/:app/alarms/:name', async (request) => {
    alarms.remove(request.params.app, request.params.name);
    return { ok: true };
  });

  api.get('/metrics', async (_request, reply) =>
    reply.type('text/plain; version=0.0.4; charset=utf-8').send(prometheusText(options)),
  );
}

/** The exposition from the collector's last snapshot: a scrape never calls the proxy. */
export function prometheusText(options: MetricsRoutesOptions): string {
  const { store } = options;
  const services = new Map(
    store.listServices().map((s) => [`${s.app}.${s.name}`, { app: s.app, service: s.name }] as const),
  );
  const instances = new Map<string, Instance>(store.listInstances({ limit: 1000 }).map((i) => [i.id, i]));
  for (const instance of store.listInstances({ live: true })) instances.set(instance.id, instance);
  return renderExposition({
    proxy: options.collector.latest()?.proxy,
    services,
    instances,
    usageOf: (instance) => options.usage.usageOf(instance),
    alarms: options.alarms.list(),
  });
}

/**
 * An opt-in listener on loopback that serves only `GET /metrics` without a token, for a local Prometheus that
 * cannot send one. Resolves with the port bound.
 */
export async function startOpenMetricsListener(
  port: number,
  render: () => string,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    if (request.method !== 'GET' || (request.url ?? '').split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    try {
      response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(render());
    } catch (error) {
      response.writeHead(500, { 'content-type': 'text/plain' }).end(`${(error as Error).message}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
