// Berth's version: the one in package.json, read once, so the CLI, the API and the package never disagree.
import { readFileSync } from 'node:fs';

/** From `<repo>/package.json` (this file is `dist/src/domain/version.js` or `src/domain/version.ts`). */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
