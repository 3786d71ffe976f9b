// The shapes of metric series, alarms and log drains as the control plane's API returns them.

/** One time bucket of a series. Counts are totals over the bucket; gauges are averages over its samples. */
export interface MetricPoint {
  /** Bucket start, epoch ms. */
  at: number;
  requests: number;
  /** Requests per minute in this bucket, over all instances of the series. */
  rpm: number;
  /** Requests per minute per instance that ran in the bucket (null when none did). */
  rpmPerInstance: number | null;
  /** Latency in ms from the merged histogram (null when no request ended in the bucket). */
  p50: number | null;
  p95: number | null;
  p99: number | null;
  avg: number | null;
  max: number | null;
  /** Responses from the app, by class. */
  s2xx: number;
  s3xx: number;
  s4xx: number;
  s5xx: number;
  /** Errors the proxy produced itself (client gone, connection failure, no target, timeout). */
  e499: number;
  e502: number;
  e503: number;
  e504: number;
  bytesIn: number;
  bytesOut: number;
  inFlight: number | null;
  /** Instances in state healthy / unhealthy at the end of the bucket. */
  healthy: number;
  unhealthy: number;
  /** CPU % (100 = one core), memory and memory % of the limit: averages per instance. */
  cpuPercent: number | null;
  memoryBytes: number | null;
  /** Memory as % of `resources.memoryBytes`, when a limit is set. */
  memoryPercent: number | null;
}

/** One series: the labels that group it and its points, oldest first. */
export interface MetricSeries {
  app: string;
  service: string;
  /** Set when grouped by release or instance. */
  release?: number;
  instance?: string;
  points: MetricPoint[];
}

export type MetricsGrouping = 'service' | 'release' | 'instance';

export interface MetricsQueryResult {
  app: string;
  /** Bucket width of the points, ms. */
  resolutionMs: number;
  from: number;
  to: number;
  by: MetricsGrouping;
  series: MetricSeries[];
}

/** The metrics an alarm rule can watch (each is a field of `MetricPoint`, or a rate derived from them). */
export const ALARM_METRICS = [
  'requests',
  'rpm',
  'rpmPerInstance',
  'p50',
  'p95',
  'p99',
  'avg',
  'errorRate5xx',
  'errorRate4xx',
  'healthy',
  'unhealthy',
  'cpuPercent',
  'memoryBytes',
  'memoryPercent',
] as const;
export type AlarmMetric = (typeof ALARM_METRICS)[number];

export const ALARM_COMPARISONS = ['>', '>=', '<', '<='] as const;
export type AlarmComparison = (typeof ALARM_COMPARISONS)[number];

export type AlarmState = 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';

/** A CloudWatch-style threshold rule on a service's series. */
export interface AlarmRule {
  app: string;
  name: string;
  service: string;
  metric: AlarmMetric;
  comparison: AlarmComparison;
  threshold: number;
  /** Length of one datapoint, ms (a multiple of the 10 s resolution). */
  periodMs: number;
  /** The last `evaluationPeriods` datapoints are looked at ... */
  evaluationPeriods: number;
  /** ... and `datapointsToAlarm` of them breaching means ALARM. */
  datapointsToAlarm: number;
  /** POSTed a JSON body on every state change. */
  webhook?: string;
}

export interface AlarmView extends AlarmRule {
  state: AlarmState;
  reason: string;
  stateAt: number;
}

export type DrainKind = 'https' | 'syslog';

export interface DrainView {
  id: string;
  app: string;
  kind: DrainKind;
  /** `https://host/path`, `syslog://host:port` or `syslog+tls://host:port`. */
  url: string;
  createdAt: number;
  /** Counters since the control plane started. */
  sent: number;
  dropped: number;
  queued: number;
  lastError: string | null;
}

/** Where a line of an app's log came from: an instance's stdout/stderr, the platform's events, the proxy. */
export type AppLogSource = 'out' | 'err' | 'event' | 'access';

/** One line of an app's merged log. */
export interface AppLogLine {
  /** When it was written, epoch ms. */
  t: number;
  source: AppLogSource;
  /** The instance id (for access lines: the instance that served it), or `berth` for platform events. */
  instance: string;
  service: string | null;
  line: string;
}
