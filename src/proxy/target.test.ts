import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_HEALTH } from '../domain/route-table.js';
import { Target } from './target.js';

const make = () =>
  new Target('web', { id: 't', host: '127.0.0.1', port: 1, weight: 1 }, { ...DEFAULT_HEALTH });

describe('Target leases', () => {
  it('counts requests in flight until their lease ends; ending twice counts once', () => {
    const target = make();
    const a = target.lease();
    const b = target.lease();
    assert.equal(target.inFlight, 2);
    a.end();
    a.end();
    assert.equal(target.inFlight, 1);
    assert.equal(a.ended, true);
    b.end();
    assert.equal(target.inFlight, 0);
  });

  it('drains when the last request and tunnel lease end, not before', () => {
    const target = make();
    const request = target.lease();
    const tunnel = target.openTunnel(() => {});
    let drained = 0;
    target.drain(() => drained++);
    assert.equal(target.state, 'draining');
    request.end();
    assert.equal(drained, 0, 'a tunnel is still open');
    assert.equal(target.upgraded, 1);
    tunnel.end();
    assert.equal(drained, 1);
    assert.equal(target.upgraded, 0);
  });

  it('drains at once when nothing is in flight, and closes tunnels when asked (drain time over)', () => {
    const idle = make();
    let drained = false;
    idle.drain(() => {
      drained = true;
    });
    assert.ok(drained);
    const busy = make();
    const closed: string[] = [];
    const first = busy.openTunnel(() => {
      closed.push('first');
      first.end();
    });
    busy.openTunnel(() => closed.push('second'));
    busy.closeTunnels();
    assert.deepEqual(closed, ['first', 'second']);
    assert.equal(busy.upgraded, 1, 'only a tunnel whose close ended its lease is gone');
  });
});
