// The reconciler's pure core: from desired services and observed instances, what to start and what to stop.
import type { Instance } from '../../domain/instance.js';

/** What the plan needs to know of a service. */
export interface DesiredService {
  app: string;
  name: string;
  desiredCount: number;
  /** Instances with another hash run an outdated command or environment and are replaced. */
  configHash: string;
  /** The crash-loop backoff: no start before this time. */
  nextStartAt: number;
  /** Instances allowed above the desired count while replacing, as % of desired. */
  maxSurgePercent: number;
  /** Healthy instances kept while replacing, as % of desired. */
  minHealthyPercent: number;
  /**
   * A canary runs: the old release's healthy instances stay (they serve the old side of the split) and the new
   * release starts its full count beside them, whatever maxSurge says.
   */
  keepOutdated?: boolean;
}

export type StopReason = 'scale_in' | 'unhealthy_replaced' | 'outdated' | 'service_removed';

export interface StartAction {
  app: string;
  service: string;
  count: number;
}

export interface StopAction {
  instanceId: string;
  app: string;
  service: string;
  reason: StopReason;
}

export interface Plan {
  start: StartAction[];
  stop: StopAction[];
  /** Earliest time a start held back by backoff may happen, if any is held back. */
  wakeAt: number | null;
}

/**
 * Plans the changes that bring `instances` (the live ones) to `services`. No I/O, no clock: `now` is given.
 *
 * Replacements start before anything healthy stops: an unhealthy instance, or one running an outdated config, is
 * stopped only once enough current healthy instances exist to take its place.
 */
export function planChanges(
  services: readonly DesiredService[],
  instances: readonly Instance[],
  now: number,
): Plan {
  const plan: Plan = { start: [], stop: [], wakeAt: null };
  const byService = new Map<string, Instance[]>();
  for (const instance of instances) {
    if (instance.state === 'draining' || instance.state === 'stopped' || instance.state === 'crashed')
      continue;
    const key = serviceKey(instance.app, instance.service);
    byService.set(key, [...(byService.get(key) ?? []), instance]);
  }

  for (const service of services) {
    const key = serviceKey(service.app, service.name);
    const own = byService.get(key) ?? [];
    byService.delete(key);
    planService(service, own, now, plan);
  }

  for (const orphans of byService.values()) {
    for (const instance of orphans) plan.stop.push(stopOf(instance, 'service_removed'));
  }
  return plan;
}

function planService(service: DesiredService, instances: Instance[], now: number, plan: Plan): void {
  const current = instances.filter((i) => i.configHash === service.configHash);
  const outdated = instances.filter((i) => i.configHash !== service.configHash);
  const healthy = newestFirst(current.filter((i) => i.state === 'healthy'));
  const starting = newestFirst(current.filter((i) => i.state === 'starting'));
  const unhealthy = current.filter((i) => i.state === 'unhealthy');
  const desired = service.desiredCount;
  // As ECS rounds them: the surge down, the healthy floor up.
  const maxSurge = Math.floor((desired * service.maxSurgePercent) / 100);
  const minHealthy = Math.ceil((desired * service.minHealthyPercent) / 100);
  const stops: StopAction[] = [];

  // Too many: shed the ones that serve least first (still starting), then the newest healthy ones.
  const excess = healthy.length + starting.length - desired;
  for (const instance of [...starting, ...healthy].slice(0, Math.max(0, excess))) {
    stops.push(stopOf(instance, 'scale_in'));
  }

  const currentHealthy = Math.min(healthy.length, desired);
  if (currentHealthy >= desired) {
    for (const instance of unhealthy) stops.push(stopOf(instance, 'unhealthy_replaced'));
  }

  // Outdated instances that serve nothing go at once; healthy ones only while enough healthy ones remain
  // (minHealthy of desired: at 100 %, each old one waits for a new one to be healthy in its place).
  const outdatedHealthy = oldestFirst(outdated.filter((i) => i.state === 'healthy'));
  for (const instance of outdated) {
    if (instance.state !== 'healthy') stops.push(stopOf(instance, 'outdated'));
  }
  const canRetire = service.keepOutdated
    ? 0
    : desired === 0
      ? outdatedHealthy.length
      : currentHealthy + outdatedHealthy.length - minHealthy;
  for (const instance of outdatedHealthy.slice(0, Math.max(0, canRetire))) {
    stops.push(stopOf(instance, 'outdated'));
  }
  plan.stop.push(...stops);

  // Starts fill the desired count, within maxSurge above it (counting what is not already on its way out).
  const staying = instances.length - stops.length;
  const room = service.keepOutdated
    ? desired - (staying - outdatedHealthy.length)
    : desired + maxSurge - staying;
  const missing = Math.min(desired - healthy.length - starting.length, room);
  if (missing > 0) {
    if (now >= service.nextStartAt)
      plan.start.push({ app: service.app, service: service.name, count: missing });
    else plan.wakeAt = Math.min(plan.wakeAt ?? Number.POSITIVE_INFINITY, service.nextStartAt);
  }
}

function stopOf(instance: Instance, reason: StopReason): StopAction {
  return { instanceId: instance.id, app: instance.app, service: instance.service, reason };
}

function serviceKey(app: string, service: string): string {
  return `${app}\u0000${service}`;
}

function newestFirst(instances: Instance[]): Instance[] {
  return [...instances].sort((a, b) => b.createdAt - a.createdAt || b.id.localeCompare(a.id));
}

function oldestFirst(instances: Instance[]): Instance[] {
  return newestFirst(instances).reverse();
}
