// The yaml library, loaded on first use: ~30 ms of CPU that a control plane start, or a CLI command that reads no
// berth.yaml, need not pay. Under Node it is CommonJS, so it loads synchronously and the parsers stay synchronous.
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

let library: typeof Yaml | undefined;

export function yamlLibrary(): typeof Yaml {
  library ??= createRequire(import.meta.url)('yaml') as typeof Yaml;
  return library;
}
