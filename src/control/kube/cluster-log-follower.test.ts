// Layer 2: following an app on a cluster (`berth logs -f`, `berth events -f`) against the fake API: what exists at
// the start is left to the backlog, new lines and events come once, a restarted container's stream resumes.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { FakeKubeApi } from '../../../test/fakes/fake-kube-api.js';
import { waitFor } from '../../../test/wait.js';
import type { AppLogLine } from '../../domain/metrics-types.js';
import { ClusterLogFollower, stampNs } from './cluster-log-follower.js';
import { KubeCluster } from './kube-cluster.js';

const LABELS = { 'app.kubernetes.io/part-of': 'ledger', 'app.kubernetes.io/component': 'web' };

function pod(name: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: LABELS },
    spec: { containers: [{ name: 'web', image: 'x' }] },
    status: { phase: 'Running' },
  };
}

function event(uid: string, version: string, reason: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: `ledger-web.${uid}`, uid, resourceVersion: version },
    involvedObject: { kind: 'Deployment', name: 'ledger-web' },
    reason,
    message: `${reason} happened`,
    lastTimestamp: new Date().toISOString(),
  };
}

describe('following an app on a cluster', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-kube-follow-'));
  let api: FakeKubeApi;
  let follower: ClusterLogFollower;
  let stop: AbortController;
  let seen: AppLogLine[];
  let running: Promise<void>;

  after(() => rmSync(dir, { recursive: true, force: true }));
  beforeEach(async () => {
    api = new FakeKubeApi();
    await api.start();
    seen = [];
    stop = new AbortController();
    api.put(pod('ledger-web-a'));
    api.put({
      ...pod('shop-web-a'),
      metadata: { name: 'shop-web-a', labels: { 'app.kubernetes.io/part-of': 'shop' } },
    });
    api.put(event('e1', '1', 'ScalingReplicaSet'));
    api.writeLog('ledger-web-a', 'before the start');
    const cluster = new KubeCluster({ kubeconfig: api.kubeconfig(dir) });
    follower = new ClusterLogFollower(cluster, 'ledger', { pollMs: 20 });
    await follower.start();
  });
  afterEach(async () => {
    stop.abort();
    await running;
    await api.stop();
  });

  const lines = (): string[] => seen.map((l) => `${l.instance}[${l.source}] ${l.line}`);
  const until = (what: string, line: string): Promise<true> =>
    waitFor(what, () => (lines().includes(line) ? true : undefined), 5000, 10);

  it("streams new lines of running and new pods, and new events, each once; nothing from before or other apps'", async () => {
    running = follower.run((l) => seen.push(l), stop.signal);
    api.writeLog('ledger-web-a', 'one');
    await until('the running pod', 'ledger-web-a[out] one');
    api.put(pod('ledger-web-b'));
    api.writeLog('ledger-web-b', 'first line of b');
    await until('the new pod, from its start', 'ledger-web-b[out] first line of b');
    api.writeLog('shop-web-a', 'not ledger');
    api.put(event('e2', '5', 'Killing'));
    await until('the new event', 'kubernetes[event] Deployment ledger-web: Killing Killing happened');
    // A repeated event is the same object at a new version: it happened again, so it is shown again.
    api.put(event('e1', '9', 'ScalingReplicaSet'));
    await until(
      'the repeated event',
      'kubernetes[event] Deployment ledger-web: ScalingReplicaSet ScalingReplicaSet happened',
    );
    api.writeLog('ledger-web-a', 'two');
    await until('the next line', 'ledger-web-a[out] two');
    assert.deepEqual(lines(), [
      'ledger-web-a[out] one',
      'ledger-web-b[out] first line of b',
      'kubernetes[event] Deployment ledger-web: Killing Killing happened',
      'kubernetes[event] Deployment ledger-web: ScalingReplicaSet ScalingReplicaSet happened',
      'ledger-web-a[out] two',
    ]);
    assert.equal(seen[0]!.service, 'web');
    const follows = api.requests.filter((r) => r.path.endsWith('/log') && r.query.get('follow') === 'true');
    assert.ok(follows.every((r) => r.query.get('timestamps') === 'true'));
  });

  it('resumes a stream that ended (a restarted container) after its last line, without repeating it', async () => {
    running = follower.run((l) => seen.push(l), stop.signal);
    api.writeLog('ledger-web-a', 'one');
    await until('the first line', 'ledger-web-a[out] one');
    api.endLogs('ledger-web-a');
    api.writeLog('ledger-web-a', 'after the restart');
    await until('the line after the restart', 'ledger-web-a[out] after the restart');
    assert.deepEqual(lines(), ['ledger-web-a[out] one', 'ledger-web-a[out] after the restart']);
    const resumed = api.requests.filter((r) => r.path.endsWith('/ledger-web-a/log')).at(-1)!;
    assert.ok(resumed.query.get('sinceTime'), 'asks from the last line, not from the start');
  });

  it('resumes a stream whose connection broke', async () => {
    running = follower.run((l) => seen.push(l), stop.signal);
    api.writeLog('ledger-web-a', 'one');
    await until('the first line', 'ledger-web-a[out] one');
    api.endLogs('ledger-web-a', 'broken');
    api.writeLog('ledger-web-a', 'after the break');
    await until('the line after the break', 'ledger-web-a[out] after the break');
    assert.deepEqual(lines(), ['ledger-web-a[out] one', 'ledger-web-a[out] after the break']);
  });

  it('only events when output is off (berth events -f)', async () => {
    const cluster = new KubeCluster({ kubeconfig: api.kubeconfig(dir) });
    const events = new ClusterLogFollower(cluster, 'ledger', { pollMs: 20, output: false });
    await events.start();
    running = events.run((l) => seen.push(l), stop.signal);
    api.writeLog('ledger-web-a', 'output');
    api.put(event('e3', '2', 'Killing'));
    await until('the event', 'kubernetes[event] Deployment ledger-web: Killing Killing happened');
    assert.deepEqual(lines(), ['kubernetes[event] Deployment ledger-web: Killing Killing happened']);
    assert.equal(api.requests.filter((r) => r.path.endsWith('/log')).length, 0);
  });
});

describe('kubelet timestamps', () => {
  it('compare by time, whatever the length of their fraction', () => {
    assert.ok(stampNs('2026-01-02T03:04:05.123Z') > stampNs('2026-01-02T03:04:05.1Z'));
    assert.ok(stampNs('2026-01-02T03:04:05.2Z') > stampNs('2026-01-02T03:04:05.123456789Z'));
    assert.ok(stampNs('2026-01-02T03:04:05.000000002Z') > stampNs('2026-01-02T03:04:05.000000001Z'));
    assert.ok(stampNs('2026-01-02T03:04:06Z') > stampNs('2026-01-02T03:04:05.999999999Z'));
    assert.equal(stampNs('nonsense'), -1n);
  });
});
