// The control plane's metrics collection alone, as its own process so its CPU can be measured: a Store with the
// bench's 20 instances, CPU/memory sampled from /proc, and the real MetricsCollector polling the proxy's admin API.
import { MetricsCollector } from '../../src/control/metrics/metrics-collector.js';
import { MetricsStore } from '../../src/control/metrics/metrics-store.js';
import { ProcessRuntime } from '../../src/control/runtime/process-runtime.js';
import { Database } from '../../src/control/store/database.js';
import { EventStore } from '../../src/control/store/event-store.js';
import { Store } from '../../src/control/store/store.js';
import { UsageMonitor } from '../../src/control/usage-monitor.js';
import { ProxyAdminClient } from '../../src/domain/proxy-admin-client.js';
import { systemClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';

const [database, socket, intervalText, countText, backendPid] = process.argv.slice(2);
const count = Number(countText);
const db = Database.open(database!);
const store = new Store(db, new EventStore(db));
if (!store.getApp('bench')) {
  store.createRelease({ app: 'bench' } as never, '/tmp', 'bench');
  store.putService({
    app: 'bench',
    name: 'web',
    release: 1,
    desiredCount: count,
    configHash: 'h',
    spec: { name: 'web', resources: { memoryBytes: 512 * 1024 * 1024 } } as never,
    sourceDir: '/tmp',
    failures: 0,
    nextStartAt: 0,
  });
  const start = Number(
    (await import('node:fs')).readFileSync(`/proc/${backendPid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19],
  );
  for (let i = 0; i < count; i++) {
    const id = `t-${i}`;
    store.insertInstance({
      id,
      app: 'bench',
      service: 'web',
      release: 1,
      configHash: 'h',
      // Every "instance" is the one backend process: the sampler reads its process group 20 times over.
      pid: Number(backendPid),
      processStart: start,
      port: 0,
      createdAt: Date.now(),
      healthyAt: Date.now(),
      endedAt: null,
      exitCode: null,
      exitSignal: null,
      reason: null,
      logPath: '/dev/null',
      runtime: 'process',
    });
    store.transitionInstance(id, 'healthy', null, {
      event: () => ({ actor: 'bench', kind: 'instance.healthy', message: `${id} healthy` }),
    });
  }
}
const usage = new UsageMonitor(store, new ProcessRuntime(), silentLogger);
usage.start();
const collector = new MetricsCollector({
  store,
  metrics: new MetricsStore(db),
  proxyMetrics: () => new ProxyAdminClient(socket!).metrics(),
  usage,
  clock: systemClock,
  log: silentLogger,
  intervalMs: Number(intervalText),
});
collector.start();
process.stdout.write('{"ready":true}\n');
process.on('SIGTERM', () => {
  void collector.stop().then(() => {
    void usage.stop();
    db.close();
    process.exit(0);
  });
});
