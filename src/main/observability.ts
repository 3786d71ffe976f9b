// Wires the control plane's observability: metrics collection, alarms, log retention and drains, and their routes.
import type { FastifyInstance } from 'fastify';
import { registerEventsRoutes } from '../control/api/events-routes.js';
import { registerLogsRoutes } from '../control/api/logs-routes.js';
import {
  prometheusText,
  registerMetricsRoutes,
  startOpenMetricsListener,
} from '../control/api/metrics-routes.js';
import { AccessLogSplitter } from '../control/logs/access-logs.js';
import { DrainManager } from '../control/logs/drain-manager.js';
import { LogRetention } from '../control/logs/log-retention.js';
import { AlarmManager } from '../control/metrics/alarms.js';
import { MetricsCollector, type OtherProcess } from '../control/metrics/metrics-collector.js';
import type { MetricsStore } from '../control/metrics/metrics-store.js';
import type { Database } from '../control/store/database.js';
import type { Store } from '../control/store/store.js';
import type { UsageMonitor } from '../control/usage-monitor.js';
import type { ProxyAdminClient } from '../domain/proxy-admin-client.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';

export interface ObservabilityOptions {
  /** The database the alarms and drains tables live in (their modules own them). */
  db: Database;
  store: Store;
  /** The control plane's one metrics repository (the autoscaler reads it too). */
  metrics: MetricsStore;
  usage: UsageMonitor;
  proxyAdmin: ProxyAdminClient;
  clock: Clock;
  log: Logger;
  /** `<data-dir>/logs`: one directory per app. */
  logDir: string;
  /** How often to collect metrics (ms). */
  collectIntervalMs?: number;
  /** When set, also serve `GET /metrics` without a token on 127.0.0.1 at this port (0 = any free port). */
  openMetricsPort?: number;
  /** The proxy's access log file, when access logs are on: its lines are split into each app's log. */
  accessLogFile?: string;
  /** Processes sampled beside the instances (add-on servers). */
  otherProcesses?: () => OtherProcess[];
}

export interface Observability {
  /** Registers the metrics, alarms, events, logs and drains routes on the API. */
  routes(api: FastifyInstance): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The open metrics listener's port, when one was asked for. */
  openMetricsPort(): number | undefined;
  /** Alarm states of an app by name, as last evaluated (the autoscaler's step rules read them). */
  alarmStates(app: string): ReadonlyMap<string, string>;
}

export function createObservability(options: ObservabilityOptions): Observability {
  const { db, store, metrics, usage, clock, log } = options;
  const events = store.events;
  const alarms = new AlarmManager({ db, metrics, events, log });
  const collector = new MetricsCollector({
    store,
    metrics,
    proxyMetrics: () => options.proxyAdmin.metrics(),
    usage,
    clock,
    log,
    intervalMs: options.collectIntervalMs,
    ...(options.otherProcesses === undefined ? {} : { otherProcesses: options.otherProcesses }),
    onCollected: (at) => {
      try {
        alarms.evaluate(at);
      } catch (error) {
        log.warn({ err: error }, 'alarm evaluation failed');
      }
    },
  });
  const drains = new DrainManager({ db, store, events, log, clock, logDir: options.logDir });
  const retention = new LogRetention({ store, logDir: options.logDir, log });
  const access =
    options.accessLogFile === undefined
      ? undefined
      : new AccessLogSplitter({ store, source: options.accessLogFile, logDir: options.logDir, log });
  const routeOptions = { store, metrics, collector, alarms, usage, now: () => clock.now() };
  let open: { port: number; close(): Promise<void> } | undefined;
  // Ends long-polls and log streams when the API closes, so a connected `logs -f` never holds up a shutdown.
  const closing = new AbortController();

  return {
    routes(api) {
      registerMetricsRoutes(api, routeOptions);
      api.addHook('preClose', async () => closing.abort());
      registerEventsRoutes(api, { store, clock, closing: closing.signal });
      registerLogsRoutes(api, { store, drains, logDir: options.logDir, closing: closing.signal });
    },
    async start() {
      collector.start();
      drains.start();
      retention.start();
      access?.start();
      if (options.openMetricsPort !== undefined) {
        open = await startOpenMetricsListener(options.openMetricsPort, () => prometheusText(routeOptions));
        log.info(
          { url: `http://127.0.0.1:${open.port}/metrics` },
          'Prometheus metrics served without a token',
        );
      }
    },
    async stop() {
      await open?.close();
      await retention.stop();
      await access?.stop();
      await drains.stop();
      await collector.stop();
    },
    openMetricsPort: () => open?.port,
    alarmStates: (app) => alarms.states(app),
  };
}
