// Which commands each pipeline stage runs: the spec's, else the defaults of a Node app (pure).

import type { PipelineSpec } from '../../domain/spec.js';
import { yamlLibrary } from '../../lib/yaml-library.js';

/** The stages a berth.yaml sets itself (an explicit `test: []` means no tests, not the defaults). */
export function explicitStages(specText: string | undefined): { check: boolean; test: boolean } {
  if (specText === undefined) return { check: false, test: false };
  const { isMap, parseDocument } = yamlLibrary();
  const pipeline = parseDocument(specText).get('pipeline');
  if (!isMap(pipeline)) return { check: false, test: false };
  return { check: pipeline.has('check'), test: pipeline.has('test') };
}

/** The commands of check and test: from the spec when set there, else from package.json's scripts. */
export function stageCommands(
  pipeline: PipelineSpec,
  explicit: { check: boolean; test: boolean },
  scripts: Readonly<Record<string, string>> | undefined,
): { check: string[]; test: string[] } {
  const has = (name: string): boolean => scripts !== undefined && typeof scripts[name] === 'string';
  const defaultCheck = [
    ...(has('lint') ? ['npm run lint'] : []),
    ...(has('typecheck') ? ['npm run typecheck'] : []),
  ];
  // npm's placeholder test script fails on purpose; it is not a test suite.
  const placeholder = /no test specified/.test(scripts?.['test'] ?? '');
  const defaultTest = has('test') && !placeholder ? ['npm test'] : [];
  return {
    check: explicit.check || pipeline.check.length > 0 ? pipeline.check : defaultCheck,
    test: explicit.test || pipeline.test.length > 0 ? pipeline.test : defaultTest,
  };
}
