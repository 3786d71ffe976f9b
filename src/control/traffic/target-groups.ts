// Which proxy target group each instance joins, and how a service's route splits its requests between groups.
import { canaryWeight, type Deployment } from '../../domain/deployment.js';
import type { Instance } from '../../domain/instance.js';

/** The first target group of a service: one per app and service. */
export function targetGroupName(app: string, service: string): string {
  return `${app}.${service}`;
}

/** The group of an app's external origin (`origins:`): service names have no dots, so it cannot collide. */
export function originGroupName(app: string, origin: string): string {
  return `${app}.${origin}.origin`;
}

/** The app and origin of an origin's group (`shop.heroku.origin`), else undefined. */
export function originOfGroup(group: string): { app: string; origin: string } | undefined {
  const match = /^(.+)\.([^.]+)\.origin$/.exec(group);
  return match === null ? undefined : { app: match[1]!, origin: match[2]! };
}

/** The group a canary's new instances join: their own, so the route can weigh it against the old release's. */
export function canaryGroupName(app: string, service: string, release: number): string {
  return `${app}.${service}.v${release}`;
}

/** The first group of the service a group belongs to: `shop.web.v7` → `shop.web` (names have no dots). */
export function serviceGroupOf(group: string): string {
  return group.replace(/\.v\d+$/, '');
}

/** The group an instance is registered in (fixed when it started). */
export function groupOf(instance: Pick<Instance, 'app' | 'service' | 'targetGroup'>): string {
  return instance.targetGroup ?? targetGroupName(instance.app, instance.service);
}

/**
 * The group a service's new instances join: that of the newest canary of the service that was not aborted (its
 * group became the service's when it was promoted; while it runs, its new instances are the ones starting), else
 * the first group. Derived from the deployments table, so a restarted control plane finds the same answer.
 */
export function homeTargetGroup(deployments: readonly Deployment[], app: string, service: string): string {
  for (let i = deployments.length - 1; i >= 0; i--) {
    const d = deployments[i]!;
    if (d.app !== app || d.strategy !== 'canary' || !d.canary?.services.includes(service)) continue;
    if (d.state === 'failed' || d.state === 'rolled_back') continue;
    return canaryGroupName(app, service, d.toRelease);
  }
  return targetGroupName(app, service);
}

/** The app's canary that is shifting this service's traffic now, if any. */
export function runningCanary(
  deployments: readonly Deployment[],
  app: string,
  service: string,
): Deployment | undefined {
  return deployments.find(
    (d) => d.app === app && d.state === 'canary' && d.canary?.services.includes(service),
  );
}

/**
 * The weighted groups of a service's route: its home group alone, or during a canary the old release's group at
 * 100 − step % and the canary's group at the step's %, labelled with their releases (`v6`, `v7`: what
 * `X-Berth-Release` names). An abort or a promotion changes the deployment's state, and the next table has one
 * group again: the weights move in one route-table swap.
 */
export function serviceBackends(
  deployments: readonly Deployment[],
  app: string,
  service: string,
): { targetGroup: string; weight: number; release?: string }[] {
  const canary = runningCanary(deployments, app, service);
  if (canary === undefined) return [{ targetGroup: homeTargetGroup(deployments, app, service), weight: 1 }];
  const weight = canaryWeight(canary.canary!);
  const stable = homeTargetGroup(
    deployments.filter((d) => d.id !== canary.id),
    app,
    service,
  );
  const canaryBackend = { targetGroup: canaryGroupName(app, service, canary.toRelease), weight };
  // The old side is the app's release the canary started from: the service as it was in that release.
  const from = canary.fromRelease;
  return [
    from === null
      ? { targetGroup: stable, weight: 100 - weight }
      : { targetGroup: stable, weight: 100 - weight, release: `v${from}` },
    { ...canaryBackend, release: `v${canary.toRelease}` },
  ];
}
