// Teardown: undoes newest first, keeps going past a failing step, and runs once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from './logger.js';
import { Teardown } from './teardown.js';

describe('Teardown', () => {
  it('undoes every step newest first, even when one fails, and only once', async () => {
    const undone: string[] = [];
    const teardown = new Teardown(silentLogger);
    teardown.add('store', () => undone.push('store'));
    teardown.add('runtime', () => {
      throw new Error('stuck');
    });
    teardown.add('api', async () => undone.push('api'));
    await Promise.all([teardown.run(), teardown.run()]);
    assert.deepEqual(undone, ['api', 'store']);
  });
});
