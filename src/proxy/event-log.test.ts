import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventLog } from './event-log.js';

const drained = (target: string) => ({
  type: 'target_drained' as const,
  targetGroup: 'g',
  target,
  forced: false,
});

describe('EventLog', () => {
  it('numbers events and returns those after a sequence number', () => {
    const log = new EventLog({ now: () => new Date(0) });
    log.append(drained('a'));
    log.append(drained('b'));
    const { events, lastSeq, truncated } = log.read(1);
    assert.deepEqual(
      events.map((e) => e.seq),
      [2],
    );
    assert.equal(lastSeq, 2);
    assert.equal(truncated, false);
  });

  it('wakes a long-polling reader when an event arrives', async () => {
    const log = new EventLog();
    const waiting = log.wait(0, 5000);
    log.append(drained('a'));
    assert.equal((await waiting).events.length, 1);
  });

  it('says when a slow reader missed events that fell out of the ring', () => {
    const log = new EventLog({ capacity: 2 });
    for (const t of ['a', 'b', 'c']) log.append(drained(t));
    assert.equal(log.read(0).truncated, true);
    assert.equal(log.read(1).truncated, false);
  });
});
