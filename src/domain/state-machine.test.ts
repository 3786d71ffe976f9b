// Table tests of every state machine: each listed jump is allowed, every other one is refused, finals are final.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ADDON_STATES } from './addon.js';
import { CERTIFICATE_STATES } from './certificate.js';
import { DEPLOYMENT_STATES } from './deployment.js';
import { INSTANCE_STATES } from './instance.js';
import { JOB_STATES, RUN_STATES } from './pipeline.js';
import { describeTransitions, IllegalTransition, type StateMachine, stateMachine } from './state-machine.js';
import { TARGET_HEALTH, TARGET_LIFECYCLE } from './target-health.js';

/** Every pair of states, allowed exactly when listed in `expected`. */
function checkTable<S extends string>(machine: StateMachine<S>, expected: string[], finals: S[]): void {
  describe(`${machine.kind} states`, () => {
    it(`allows exactly: ${expected.join('; ')}`, () => {
      assert.deepEqual(describeTransitions(machine).sort(), [...expected].sort());
      for (const from of machine.states) {
        for (const to of machine.states) {
          assert.equal(machine.can(from, to), expected.includes(`${from} → ${to}`), `${from} → ${to}`);
        }
      }
    });
    it(`has ${finals.length === 0 ? 'no final state' : `${finals.join(', ')} final`} and refuses a jump out of one`, () => {
      assert.deepEqual(
        machine.states.filter((s) => machine.isFinal(s)),
        finals,
      );
      const from = finals[0];
      if (from === undefined) return;
      const to = machine.states.find((s) => s !== from)!;
      assert.throws(
        () => machine.assert('x', from, to),
        (error: unknown) => {
          assert.ok(error instanceof IllegalTransition);
          assert.equal(error.code, 'conflict');
          assert.match(
            error.message,
            new RegExp(`${machine.kind} x cannot go from ${from} to ${to} \\(${from} is final\\)`),
          );
          return true;
        },
      );
    });
  });
}

checkTable(
  INSTANCE_STATES,
  [
    'starting → healthy',
    'starting → draining',
    'starting → crashed',
    'healthy → unhealthy',
    'healthy → draining',
    'healthy → crashed',
    'unhealthy → healthy',
    'unhealthy → draining',
    'unhealthy → crashed',
    'draining → stopped',
    'draining → crashed',
  ],
  ['stopped', 'crashed'],
);

checkTable(
  DEPLOYMENT_STATES,
  [
    'canary → in_progress',
    'canary → failed',
    'canary → rolled_back',
    'in_progress → succeeded',
    'in_progress → failed',
    'in_progress → rolled_back',
  ],
  ['succeeded', 'failed', 'rolled_back'],
);

checkTable(
  RUN_STATES,
  [
    'queued → running',
    'queued → cancelled',
    'queued → failed',
    'running → waiting',
    'running → succeeded',
    'running → failed',
    'running → cancelled',
    'waiting → running',
    'waiting → cancelled',
    'waiting → failed',
  ],
  ['succeeded', 'failed', 'cancelled'],
);

checkTable(
  JOB_STATES,
  [
    'pending → running',
    'pending → skipped',
    'pending → cancelled',
    'running → succeeded',
    'running → failed',
    'running → cancelled',
  ],
  ['succeeded', 'failed', 'cancelled', 'skipped'],
);

checkTable(
  TARGET_HEALTH,
  ['initial → healthy', 'initial → unhealthy', 'healthy → unhealthy', 'unhealthy → healthy'],
  [],
);

checkTable(TARGET_LIFECYCLE, ['active → draining', 'draining → drained'], ['drained']);

checkTable(
  ADDON_STATES,
  [
    'provisioning → available',
    'provisioning → failed',
    'provisioning → destroying',
    'available → unavailable',
    'available → stopped',
    'available → restoring',
    'available → destroying',
    'unavailable → available',
    'unavailable → stopped',
    'unavailable → restoring',
    'unavailable → destroying',
    'stopped → available',
    'stopped → unavailable',
    'stopped → restoring',
    'stopped → destroying',
    'restoring → available',
    'restoring → unavailable',
    'restoring → destroying',
    'destroying → destroyed',
  ],
  ['destroyed', 'failed'],
);

describe('stateMachine', () => {
  it('refuses a table naming a state it does not list', () => {
    assert.throws(
      () => stateMachine<'a' | 'b'>('broken', { a: ['b', 'c' as 'b'], b: [] }),
      /broken state machine: a → c: c is not a state/,
    );
  });

  it('names the allowed targets when a live state is asked for an illegal jump', () => {
    assert.throws(() => INSTANCE_STATES.assert('shop.web.1', 'starting', 'stopped'), {
      message:
        'instance shop.web.1 cannot go from starting to stopped (from starting: healthy, draining, crashed)',
    });
  });
});

checkTable(
  CERTIFICATE_STATES,
  [
    'pending → ordering',
    'ordering → active',
    'ordering → failed',
    'failed → ordering',
    'active → renewing',
    'active → revoked',
    'renewing → active',
    'revoked → ordering',
  ],
  [],
);
