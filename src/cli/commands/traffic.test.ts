import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../output.js';
import { parseSteps, parseTrafficArgs } from './traffic.js';

describe('berth traffic arguments', () => {
  it('reads NAME=WEIGHT pairs and ramp steps', () => {
    assert.deepEqual(parseTrafficArgs(['web=10', 'heroku=90']), { web: 10, heroku: 90 });
    assert.deepEqual(parseSteps('10,25,50,100'), [10, 25, 50, 100]);
  });

  it('refuses anything else, naming the argument', () => {
    assert.throws(
      () => parseTrafficArgs(['web:10']),
      (e: unknown) => e instanceof UsageError && /web:10: expected NAME=WEIGHT/.test(e.message),
    );
    assert.throws(() => parseTrafficArgs(['web=1', 'web=2']), /web=2: web is named twice/);
    assert.throws(() => parseSteps('10,x'), /10,x: expected percentages separated by commas/);
  });
});
