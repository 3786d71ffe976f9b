// Tests of the pipeline's stage commands: the spec's when set, else a Node app's lint, typecheck and test scripts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_PIPELINE } from '../../domain/spec.js';
import { explicitStages, stageCommands } from './stages.js';

const none = { check: false, test: false };

describe('stageCommands', () => {
  it('runs lint, typecheck and test scripts of package.json when the spec sets no stage', () => {
    const scripts = { lint: 'biome check', typecheck: 'tsc --noEmit', test: 'node --test', build: 'tsc' };
    assert.deepEqual(stageCommands(DEFAULT_PIPELINE, none, scripts), {
      check: ['npm run lint', 'npm run typecheck'],
      test: ['npm test'],
    });
  });

  it("skips scripts that do not exist and npm's placeholder test", () => {
    const scripts = { test: 'echo "Error: no test specified" && exit 1' };
    assert.deepEqual(stageCommands(DEFAULT_PIPELINE, none, scripts), { check: [], test: [] });
    assert.deepEqual(stageCommands(DEFAULT_PIPELINE, none, undefined), { check: [], test: [] });
  });

  it("uses the spec's commands, and an explicit empty list means no stage at all", () => {
    const scripts = { lint: 'x', test: 'y' };
    const pipeline = { ...DEFAULT_PIPELINE, check: ['make lint'] };
    assert.deepEqual(stageCommands(pipeline, { check: true, test: true }, scripts), {
      check: ['make lint'],
      test: [],
    });
  });
});

describe('explicitStages', () => {
  it('tells a stage set to [] from one left out', () => {
    assert.deepEqual(explicitStages('app: a\npipeline: { test: [] }\n'), { check: false, test: true });
    assert.deepEqual(explicitStages('app: a\n'), none);
    assert.deepEqual(explicitStages(undefined), none);
  });
});
