// The proxy's health verdicts as a test sets them: what TargetHealthFeed would report, without a proxy.
import type { TargetHealthView } from '../../src/control/reconcile/reconciler.js';
import type { TargetHealth } from '../../src/domain/route-table.js';

export class FakeTargetHealth implements TargetHealthView {
  readonly #verdicts = new Map<string, { health: TargetHealth; reason: string }>();
  /** Called after each change, as the feed wakes the reconciler. */
  onChange: () => void = () => {};

  healthOf(instanceId: string): { health: TargetHealth; reason: string } | undefined {
    return this.#verdicts.get(instanceId);
  }

  /** The proxy's verdict on one target changed. */
  set(
    instanceId: string,
    health: TargetHealth,
    reason = health === 'healthy' ? 'status 200' : 'status 500',
  ): void {
    this.#verdicts.set(instanceId, { health, reason });
    this.onChange();
  }
}
