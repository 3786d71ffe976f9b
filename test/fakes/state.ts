// Test state: an in-memory database with the core repositories, and instances seeded in any state by the
// transitions the state machine allows (there is no other way to put an instance in a state).
import { Database } from '../../src/control/store/database.js';
import { EventStore } from '../../src/control/store/event-store.js';
import { Store } from '../../src/control/store/store.js';
import type { Instance, InstanceState } from '../../src/domain/instance.js';
import { type Clock, systemClock } from '../../src/lib/clock.js';

export interface TestState {
  db: Database;
  events: EventStore;
  store: Store;
}

/** A fresh state database (`:memory:` unless a path is given) with the event store and the store on it. */
export function openTestState(options: { path?: string; clock?: Clock } = {}): TestState {
  const clock = options.clock ?? systemClock;
  const db = Database.open(options.path ?? ':memory:', { now: () => clock.now() });
  const events = new EventStore(db, { clock });
  return { db, events, store: new Store(db, events, clock) };
}

/** The shortest legal path from `starting` to each state. */
const PATHS: Record<InstanceState, InstanceState[]> = {
  starting: [],
  healthy: ['healthy'],
  unhealthy: ['healthy', 'unhealthy'],
  draining: ['draining'],
  stopped: ['draining', 'stopped'],
  crashed: ['crashed'],
};

/** Inserts `instance` and moves it to its `state` through legal transitions, keeping its other fields. */
export function seedInstance(store: Store, instance: Instance): Instance {
  const { state, ...rest } = instance;
  store.insertInstance(rest);
  let current: Instance = { ...instance, state: 'starting' };
  for (const to of PATHS[state]) {
    current = store.transitionInstance(instance.id, to, instance.reason, {
      facts: {
        healthyAt: instance.healthyAt,
        endedAt: instance.endedAt,
        exitCode: instance.exitCode,
        exitSignal: instance.exitSignal,
      },
      event: () => ({ actor: 'test', kind: 'test.seeded', message: `${instance.id} seeded ${to}` }),
    });
  }
  return current;
}
