// Per-target counters: plain numbers bumped on the hot path, turned into the admin API's `Counters` on read.
import type { Counters } from '../domain/route-table.js';
import { Histogram } from './histogram.js';

/** Mutable counters of one target (or of requests that never reached one, per target group). */
export class Metrics {
  requests = 0;
  s1xx = 0;
  s2xx = 0;
  s3xx = 0;
  s4xx = 0;
  s5xx = 0;
  e499 = 0;
  e502 = 0;
  e503 = 0;
  e504 = 0;
  retries = 0;
  bytesIn = 0;
  bytesOut = 0;
  inFlight = 0;
  activeConnections = 0;
  readonly latency = new Histogram();

  /** Records a finished exchange. `proxyStatus` is set when the proxy produced the status itself. */
  record(status: number, proxyError: boolean, ms: number, bytesIn: number, bytesOut: number): void {
    this.requests++;
    this.bytesIn += bytesIn;
    this.bytesOut += bytesOut;
    this.latency.record(ms);
    if (proxyError) {
      if (status === 502) this.e502++;
      else if (status === 503) this.e503++;
      else if (status === 504) this.e504++;
      // A stalled request body (answered 408) is the client's doing, counted with the clients that left.
      else if (status === 499 || status === 408) this.e499++;
      return;
    }
    if (status < 200) this.s1xx++;
    else if (status < 300) this.s2xx++;
    else if (status < 400) this.s3xx++;
    else if (status < 500) this.s4xx++;
    else this.s5xx++;
  }

  /** Adds `other` into this (building group and total views). */
  add(other: Metrics): void {
    this.requests += other.requests;
    this.s1xx += other.s1xx;
    this.s2xx += other.s2xx;
    this.s3xx += other.s3xx;
    this.s4xx += other.s4xx;
    this.s5xx += other.s5xx;
    this.e499 += other.e499;
    this.e502 += other.e502;
    this.e503 += other.e503;
    this.e504 += other.e504;
    this.retries += other.retries;
    this.bytesIn += other.bytesIn;
    this.bytesOut += other.bytesOut;
    this.inFlight += other.inFlight;
    this.activeConnections += other.activeConnections;
    this.latency.merge(other.latency);
  }

  toJSON(): Counters {
    const round = (n: number) => Math.round(n * 1000) / 1000;
    return {
      requests: this.requests,
      status: { '1xx': this.s1xx, '2xx': this.s2xx, '3xx': this.s3xx, '4xx': this.s4xx, '5xx': this.s5xx },
      proxyErrors: { '499': this.e499, '502': this.e502, '503': this.e503, '504': this.e504 },
      retries: this.retries,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      inFlight: this.inFlight,
      activeConnections: this.activeConnections,
      latencyMs: {
        p50: round(this.latency.quantile(0.5)),
        p95: round(this.latency.quantile(0.95)),
        p99: round(this.latency.quantile(0.99)),
        max: round(this.latency.max),
        count: this.latency.count,
      },
      histogram: this.latency.cumulative(),
    };
  }
}
