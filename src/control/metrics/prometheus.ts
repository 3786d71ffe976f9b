// The Prometheus text exposition (format 0.0.4) of the proxy's counters and the instances' usage, per instance.
import type { Instance, InstanceUsage } from '../../domain/instance.js';
import type { AlarmView } from '../../domain/metrics-types.js';
import type { MetricsResponse } from '../../domain/route-table.js';
import { serviceGroupOf } from '../traffic/target-groups.js';
import { countAtOrBelow, countOf, fromCumulative, mean } from './latency.js';

/** Fixed bucket bounds (seconds) so every scrape of every series has the same `le` set, as Prometheus expects. */
export const DURATION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export interface ExpositionInput {
  proxy: MetricsResponse | undefined;
  /** Maps a target group name to its app and service. */
  services: ReadonlyMap<string, { app: string; service: string }>;
  /** Instances by id (live and recent), for the release label. */
  instances: ReadonlyMap<string, Instance>;
  usageOf: (instance: Instance) => InstanceUsage | null;
  alarms: readonly AlarmView[];
}

type Labels = Record<string, string | number>;

class Exposition {
  readonly #lines: string[] = [];

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): void {
    this.#lines.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
    this.#lines.push(`# TYPE ${name} ${type}`);
  }

  sample(name: string, labels: Labels, value: number): void {
    const text = Object.entries(labels)
      .map(
        ([key, v]) =>
          `${key}="${String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`,
      )
      .join(',');
    this.#lines.push(`${name}${text === '' ? '' : `{${text}}`} ${formatValue(value)}`);
  }

  toString(): string {
    return `${this.#lines.join('\n')}\n`;
  }
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

/** Renders every family; families with no samples still get HELP/TYPE so dashboards find the names. */
export function renderExposition(input: ExpositionInput): string {
  const out = new Exposition();
  const targets = (input.proxy?.targets ?? []).flatMap((target) => {
    const service = input.services.get(serviceGroupOf(target.targetGroup));
    if (!service) return [];
    const instance = input.instances.get(target.id);
    const labels: Labels = {
      app: service.app,
      service: service.service,
      release: instance ? `v${instance.release}` : '',
      instance: target.id,
    };
    return [{ target, labels }];
  });

  out.family(
    'berth_requests_total',
    'counter',
    'Requests answered through the proxy, by status class of the response.',
  );
  for (const { target, labels } of targets) {
    for (const codeClass of ['1xx', '2xx', '3xx', '4xx', '5xx'] as const) {
      out.sample(
        'berth_requests_total',
        { ...labels, code_class: codeClass },
        target.counters.status[codeClass],
      );
    }
  }

  out.family(
    'berth_proxy_errors_total',
    'counter',
    'Responses the proxy produced itself: 499 client gone, 502 connection failure, 503 no target, 504 timeout.',
  );
  for (const { target, labels } of targets) {
    for (const code of ['499', '502', '503', '504'] as const) {
      out.sample('berth_proxy_errors_total', { ...labels, code }, target.counters.proxyErrors[code]);
    }
  }

  out.family('berth_request_duration_seconds', 'histogram', 'Time from request head to end of response.');
  for (const { target, labels } of targets) {
    const histogram = fromCumulative(target.counters.histogram);
    for (const bound of DURATION_BUCKETS_S) {
      out.sample(
        'berth_request_duration_seconds_bucket',
        { ...labels, le: bound },
        countAtOrBelow(histogram, bound * 1000),
      );
    }
    const count = countOf(histogram);
    out.sample('berth_request_duration_seconds_bucket', { ...labels, le: '+Inf' }, count);
    out.sample('berth_request_duration_seconds_sum', labels, ((mean(histogram) ?? 0) * count) / 1000);
    out.sample('berth_request_duration_seconds_count', labels, count);
  }

  out.family('berth_received_bytes_total', 'counter', 'Request bytes received from clients.');
  for (const { target, labels } of targets)
    out.sample('berth_received_bytes_total', labels, target.counters.bytesIn);
  out.family('berth_sent_bytes_total', 'counter', 'Response bytes sent to clients.');
  for (const { target, labels } of targets)
    out.sample('berth_sent_bytes_total', labels, target.counters.bytesOut);
  out.family('berth_in_flight_requests', 'gauge', 'Requests in progress.');
  for (const { target, labels } of targets)
    out.sample('berth_in_flight_requests', labels, target.counters.inFlight);
  out.family('berth_target_healthy', 'gauge', "1 when the proxy's health check passes for the instance.");
  for (const { target, labels } of targets) {
    out.sample('berth_target_healthy', labels, target.health === 'healthy' ? 1 : 0);
  }

  const live = [...input.instances.values()].filter((i) =>
    ['starting', 'healthy', 'unhealthy', 'draining'].includes(i.state),
  );
  out.family('berth_instance_cpu_percent', 'gauge', 'CPU use of the instance (100 = one core).');
  out.family('berth_instance_memory_bytes', 'gauge', 'Resident memory of the instance.');
  const usage = live.flatMap((instance) => {
    const sample = input.usageOf(instance);
    return sample ? [{ instance, sample }] : [];
  });
  for (const { instance, sample } of usage) {
    out.sample('berth_instance_cpu_percent', instanceLabels(instance), sample.cpuPercent);
  }
  for (const { instance, sample } of usage) {
    out.sample('berth_instance_memory_bytes', instanceLabels(instance), sample.memoryBytes);
  }

  out.family('berth_service_instances', 'gauge', 'Instances of a service by state.');
  const counts = new Map<string, { app: string; service: string; state: string; n: number }>();
  for (const instance of live) {
    const key = `${instance.app}\u0000${instance.service}\u0000${instance.state}`;
    const entry = counts.get(key) ?? {
      app: instance.app,
      service: instance.service,
      state: instance.state,
      n: 0,
    };
    entry.n++;
    counts.set(key, entry);
  }
  for (const { app, service, state, n } of counts.values()) {
    out.sample('berth_service_instances', { app, service, state }, n);
  }

  out.family('berth_alarm_state', 'gauge', '1 for the state each alarm is in.');
  for (const alarm of input.alarms) {
    for (const state of ['OK', 'ALARM', 'INSUFFICIENT_DATA']) {
      out.sample(
        'berth_alarm_state',
        { app: alarm.app, alarm: alarm.name, state },
        alarm.state === state ? 1 : 0,
      );
    }
  }
  return out.toString();
}

function instanceLabels(instance: Instance): Labels {
  return {
    app: instance.app,
    service: instance.service,
    release: `v${instance.release}`,
    instance: instance.id,
  };
}
