// Watches deployments in progress: counts failed new instances (the circuit breaker), ends them when done.
import { circuitBreakerReason, type Deployment } from '../../domain/deployment.js';
import type { Instance } from '../../domain/instance.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import type { AppManager } from '../app-manager.js';
import { tailInstances } from '../logs/instance-logs.js';
import type { Store } from '../store/store.js';

/** Lines of the failing instance's output kept in a failed deployment's reason. */
const OUTPUT_LINES_IN_REASON = 10;

export class DeploymentTracker {
  readonly #store: Store;
  readonly #apps: AppManager;
  readonly #clock: Clock;

  constructor(store: Store, apps: AppManager, clock: Clock = systemClock) {
    this.#store = store;
    this.#apps = apps;
    this.#clock = clock;
  }

  /**
   * A new-release instance failed (crashed, never passed its health check, or turned unhealthy). Past the
   * service's threshold the deployment fails and, with autoRollback, the previous release is restored.
   */
  instanceFailed(instance: Instance, reason: string): void {
    const deployment = this.#store.activeDeployment(instance.app);
    const service = this.#store.getService(instance.app, instance.service);
    if (!deployment || !service || instance.configHash !== service.configHash) return;
    const entry = deployment.services.find((s) => s.name === instance.service);
    if (!entry) return;
    entry.failures += 1;
    this.#store.transaction(() => {
      this.#store.setDeploymentServices(deployment.id, deployment.services);
      this.#store.events.record({
        actor: 'deployer',
        kind: 'deployment.instance_failed',
        app: instance.app,
        service: instance.service,
        instance: instance.id,
        message: `v${deployment.toRelease} ${instance.service}: ${entry.failures}/${entry.threshold} new instances failed (${reason})`,
        data: { deployment: deployment.id, failures: entry.failures, threshold: entry.threshold, reason },
      });
    });
    if (entry.failures < entry.threshold) return;
    const why = circuitBreakerReason({
      service: instance.service,
      failures: entry.failures,
      threshold: entry.threshold,
      last: instance.id,
      failure: reason,
      output: tailInstances([instance], OUTPUT_LINES_IN_REASON).map((line) => line.line),
    });
    this.#apps.failDeployment(deployment, why, service.spec.deploy.autoRollback);
  }

  /** Ends every deployment whose services all run their new release at the desired count, healthy. */
  checkProgress(): void {
    for (const deployment of this.#store.listDeployments({ state: 'in_progress' })) this.#check(deployment);
  }

  #check(deployment: Deployment): void {
    const status = this.#apps.status(deployment.app);
    const involved = status.services.filter((s) => deployment.services.some((d) => d.name === s.name));
    // No service of it on this machine: the deployment of an app on a Kubernetes target, which its rollout watch
    // ends (src/control/kube/).
    if (involved.length === 0 || !involved.every((s) => s.converged)) return;
    const now = this.#clock.now();
    this.#store.transitionDeployment(deployment.id, 'succeeded', null, () => ({
      actor: 'deployer',
      kind: 'deployment.succeeded',
      app: deployment.app,
      message: `${deployment.app} v${deployment.toRelease} is live: ${involved.map((s) => `${s.name} ${s.healthy}/${s.desired} healthy`).join(', ')} (${((now - deployment.startedAt) / 1000).toFixed(1)}s)`,
      data: {
        deployment: deployment.id,
        release: deployment.toRelease,
        durationMs: now - deployment.startedAt,
      },
    }));
    this.#apps.pruneArtifacts(deployment.app);
  }
}
