// The command-line options of the proxy worker, which the keeper also takes and hands on: one list for both.
import type { ParseArgsConfig } from 'node:util';

export const PROXY_OPTIONS = {
  'data-dir': { type: 'string' },
  'http-port': { type: 'string' },
  'https-port': { type: 'string' },
  host: { type: 'string' },
  'admin-socket': { type: 'string' },
  'access-log': { type: 'boolean' },
  'access-log-file': { type: 'string' },
  'no-redirect': { type: 'boolean' },
  'drain-ms': { type: 'string' },
  'trusted-proxies': { type: 'string' },
  'max-head-bytes': { type: 'string' },
  help: { type: 'boolean' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;
