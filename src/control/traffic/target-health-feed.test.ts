// The feed follows the proxy's health as an informer: list, then watch; lists again when out of step.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TargetHealthChanges, TargetHealthSnapshot } from '../../domain/target-health.js';
import { silentLogger } from '../../lib/logger.js';
import { ManualClock, settle } from '../../lib/manual-clock.js';
import { TargetHealthFeed } from './target-health-feed.js';

/** A proxy whose answers the test queues: lists and long-polls, in order; an Error is thrown. */
function scriptedProxy() {
  const lists: (TargetHealthSnapshot | Error)[] = [];
  const polls: (TargetHealthChanges | Error)[] = [];
  const pending: (() => void)[] = [];
  const asked: string[] = [];
  const next = <T>(queue: (T | Error)[], what: string, signal?: AbortSignal): Promise<T> => {
    asked.push(what);
    return new Promise((resolve, reject) => {
      const answer = (): void => {
        const value = queue.shift()!;
        if (value instanceof Error) reject(value);
        else resolve(value);
      };
      if (queue.length > 0) answer();
      else {
        pending.push(() => (queue.length > 0 ? answer() : reject(new Error('nothing queued'))));
        signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
      }
    });
  };
  return {
    lists,
    polls,
    asked,
    /** Answers the long-poll that waits. */
    flush: () => {
      for (const answer of pending.splice(0)) answer();
    },
    source: {
      targetHealth: () => next(lists, 'list'),
      targetHealthChanges: (after: number, _wait: number, signal?: AbortSignal) =>
        next(polls, `changes after ${after}`, signal),
    },
  };
}

const target = (id: string, health: 'initial' | 'healthy' | 'unhealthy') => ({
  targetGroup: 'shop.web',
  target: id,
  health,
  reason: 'status 200',
  state: 'active' as const,
});

describe('TargetHealthFeed', () => {
  it('lists, then applies the transitions after the listed sequence number, telling its reader each time', async () => {
    const clock = new ManualClock();
    const proxy = scriptedProxy();
    let told = 0;
    const feed = new TargetHealthFeed({
      source: proxy.source,
      log: silentLogger,
      clock,
      onChange: () => told++,
    });
    proxy.lists.push({ epoch: 'e1', lastSeq: 7, targets: [target('a', 'initial')] });
    feed.start();
    await settle();
    assert.equal(feed.healthOf('a')?.health, 'initial');
    proxy.polls.push({
      epoch: 'e1',
      lastSeq: 9,
      truncated: false,
      changes: [
        {
          seq: 9,
          targetGroup: 'shop.web',
          target: 'a',
          from: 'initial',
          to: 'healthy',
          reason: 'status 200',
        },
      ],
    });
    proxy.flush();
    await settle();
    assert.equal(feed.healthOf('a')?.health, 'healthy');
    assert.deepEqual(proxy.asked.slice(0, 3), ['list', 'changes after 7', 'changes after 9']);
    assert.equal(told, 2);
    await feed.stop();
  });

  it('lists again when the proxy restarted (another epoch) or the reader fell behind, and says so', async () => {
    const clock = new ManualClock();
    const proxy = scriptedProxy();
    let restarts = 0;
    const feed = new TargetHealthFeed({
      source: proxy.source,
      log: silentLogger,
      clock,
      onProxyRestart: () => restarts++,
    });
    proxy.lists.push({ epoch: 'e1', lastSeq: 3, targets: [target('a', 'healthy')] });
    proxy.polls.push({ epoch: 'e2', lastSeq: 1, truncated: false, changes: [] });
    proxy.lists.push({ epoch: 'e2', lastSeq: 1, targets: [target('a', 'initial'), target('b', 'initial')] });
    proxy.polls.push({ epoch: 'e2', lastSeq: 50, truncated: true, changes: [] });
    proxy.lists.push({ epoch: 'e2', lastSeq: 50, targets: [target('b', 'unhealthy')] });
    feed.start();
    await settle();
    assert.deepEqual(proxy.asked.slice(0, 5), ['list', 'changes after 3', 'list', 'changes after 1', 'list']);
    assert.equal(restarts, 1);
    assert.equal(feed.healthOf('a'), undefined, 'a target gone from the proxy leaves the cache on a list');
    assert.equal(feed.healthOf('b')?.health, 'unhealthy');
    await feed.stop();
  });

  it('keeps its cache and tries again after retryMs while the proxy does not answer', async () => {
    const clock = new ManualClock();
    const proxy = scriptedProxy();
    const feed = new TargetHealthFeed({ source: proxy.source, log: silentLogger, clock, retryMs: 1000 });
    proxy.lists.push(new Error('ECONNREFUSED'));
    proxy.lists.push({ epoch: 'e1', lastSeq: 1, targets: [target('a', 'healthy')] });
    feed.start();
    await settle();
    assert.equal(feed.healthOf('a'), undefined);
    await clock.advance(999);
    assert.deepEqual(proxy.asked, ['list']);
    await clock.advance(1);
    assert.equal(feed.healthOf('a')?.health, 'healthy');
    await feed.stop();
  });
});
