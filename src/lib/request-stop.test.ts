import assert from 'node:assert/strict';
import { EventEmitter, getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { requestStop } from './request-stop.js';

describe('requestStop', () => {
  it('stops when the client goes away', () => {
    const request = new EventEmitter();
    const stop = requestStop(request, new AbortController().signal);
    request.emit('close');
    assert.equal(stop.signal.aborted, true);
  });

  it('stops when the server closes, and at once if it already has', () => {
    const closing = new AbortController();
    const stop = requestStop(new EventEmitter(), closing.signal);
    assert.equal(stop.signal.aborted, false);
    closing.abort();
    assert.equal(stop.signal.aborted, true);
    assert.equal(requestStop(new EventEmitter(), closing.signal).signal.aborted, true);
  });

  it('leaves no listener behind once released, however many requests came and went', () => {
    const closing = new AbortController();
    for (let i = 0; i < 20; i++) {
      const request = new EventEmitter();
      requestStop(request, closing.signal).release();
      assert.equal(request.listenerCount('close'), 0);
    }
    assert.equal(getEventListeners(closing.signal, 'abort').length, 0);
  });
});
