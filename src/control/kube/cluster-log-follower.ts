// Follows an app on a Kubernetes target as `berth logs -f` does locally: each pod's log streamed by the cluster
// (pods that start later are picked up), and the cluster's events about the app's objects as they are recorded.
import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';
import type { AppLogLine } from '../../domain/metrics-types.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import type { KubeCluster } from './kube-cluster.js';
import { LABEL_COMPONENT, LABEL_PART_OF } from './kube-manifests.js';

export interface ClusterFollowOptions {
  /** Only this service's pods. */
  service?: string;
  /** Pods' output (default true); false for events only (`berth events -f`). */
  output?: boolean;
  /** How often the pod list and the events are read again; the default suits a real cluster. */
  pollMs?: number;
  clock?: Clock;
}

/** One followed container: the time of its last line, to resume from there when its stream ends. */
interface Followed {
  streaming: boolean;
  /** The kubelet's timestamp of the last line (RFC 3339 with nanoseconds), as it printed it. */
  last?: string;
}

/** A cluster event as a line of the app's log (also what `berth logs` shows for it). */
export function eventLine(event: CoreV1Event): AppLogLine {
  const object = `${event.involvedObject.kind} ${event.involvedObject.name}`;
  return {
    t: new Date(event.lastTimestamp ?? event.eventTime ?? event.metadata.creationTimestamp ?? 0).getTime(),
    source: 'event',
    instance: 'kubernetes',
    service: null,
    line: `${object}: ${event.reason ?? ''} ${event.message ?? ''}`.trim(),
  };
}

/** `2026-01-02T03:04:05.123456789Z line` (a log line with the kubelet's timestamp) as a line of the app's log. */
export function podLine(pod: string, service: string | null, text: string): AppLogLine {
  const space = text.indexOf(' ');
  const t = Date.parse(text.slice(0, space));
  return { t: Number.isNaN(t) ? 0 : t, source: 'out', instance: pod, service, line: text.slice(space + 1) };
}

/**
 * A kubelet timestamp as nanoseconds since the epoch, to compare: RFC 3339 fractions vary in length (trailing
 * zeros are dropped), so the strings do not sort.
 */
export function stampNs(stamp: string): bigint {
  const match = /^(.*?)(?:\.(\d+))?Z$/.exec(stamp);
  const seconds = match ? Date.parse(`${match[1]}Z`) : Number.NaN;
  if (Number.isNaN(seconds)) return -1n;
  return BigInt(seconds) * 1_000_000n + BigInt((match![2] ?? '').padEnd(9, '0').slice(0, 9));
}

/** An event occurrence: a repeated event is the same object with a new resourceVersion (and count). */
function eventKey(event: CoreV1Event): string {
  return `${event.metadata.uid ?? event.metadata.name}/${event.metadata.resourceVersion ?? event.count ?? ''}`;
}

export class ClusterLogFollower {
  readonly #cluster: KubeCluster;
  readonly #app: string;
  readonly #options: ClusterFollowOptions;
  readonly #clock: Clock;
  readonly #pods = new Map<string, Followed>();
  readonly #seenEvents = new Set<string>();
  /** Lines before this time (the start) were shown by the backlog: a pod already running resumes after it. */
  #startedAt = '';

  constructor(cluster: KubeCluster, app: string, options: ClusterFollowOptions = {}) {
    this.#cluster = cluster;
    this.#app = app;
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * Notes what exists now (pods, events), so that `run` emits only what comes after: call it before the backlog
   * is read, as the local follower does, so that nothing falls between the two.
   */
  async start(): Promise<void> {
    this.#startedAt = new Date(this.#clock.now()).toISOString();
    for (const pod of await this.#listPods()) {
      this.#pods.set(pod.metadata?.name ?? '', { streaming: false, last: this.#startedAt });
    }
    for (const event of await this.#cluster.events(this.#app)) this.#seenEvents.add(eventKey(event));
  }

  /** Emits new lines until `signal` aborts. A pod whose log the cluster cannot give yet is tried again later. */
  async run(emit: (line: AppLogLine) => void, signal: AbortSignal): Promise<void> {
    const streams = new Set<Promise<void>>();
    while (!signal.aborted) {
      try {
        if (this.#options.output !== false) {
          for (const pod of await this.#listPods()) {
            const name = pod.metadata?.name ?? '';
            const followed = this.#pods.get(name) ?? { streaming: false };
            this.#pods.set(name, followed);
            if (followed.streaming || pod.metadata?.deletionTimestamp !== undefined) continue;
            const service = pod.metadata?.labels?.[LABEL_COMPONENT] ?? null;
            followed.streaming = true;
            const stream = this.#cluster
              .followPodLog(
                name,
                pod.spec?.containers[0]?.name ?? service ?? '',
                { ...(followed.last === undefined ? {} : { sinceTime: followed.last }), signal },
                (text) => {
                  const stamp = text.slice(0, text.indexOf(' '));
                  // sinceTime has whole seconds: the lines of that second already shown come again.
                  if (followed.last !== undefined && stampNs(stamp) <= stampNs(followed.last)) return;
                  followed.last = stamp;
                  emit(podLine(name, service, text));
                },
              )
              .catch(() => {})
              .finally(() => {
                followed.streaming = false;
                streams.delete(stream);
              });
            streams.add(stream);
          }
        }
        for (const event of await this.#cluster.events(this.#app)) {
          const key = eventKey(event);
          if (this.#seenEvents.has(key)) continue;
          this.#seenEvents.add(key);
          emit(eventLine(event));
        }
      } catch {
        // The cluster did not answer this round: the next one asks again.
      }
      await this.#clock.sleep(this.#options.pollMs ?? 2000, { signal });
    }
    await Promise.allSettled([...streams]);
  }

  async #listPods(): Promise<V1Pod[]> {
    const service = this.#options.service;
    return this.#cluster.pods(
      `${LABEL_PART_OF}=${this.#app}${service === undefined ? '' : `,${LABEL_COMPONENT}=${service}`}`,
    );
  }
}
