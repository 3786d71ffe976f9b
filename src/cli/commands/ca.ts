// `berth ca`: prints the path of the local certificate authority, for `curl --cacert` and browsers.
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { BerthError } from '../../domain/errors.js';
import { proxyPaths } from '../../domain/proxy-paths.js';
import type { CliContext } from '../context.js';

export function registerCa(program: Command, context: CliContext): void {
  program
    .command('ca')
    .description("print the path of the local CA's certificate (trust it to use https://*.localhost)")
    .action(() => {
      const path = proxyPaths(context.dataDir).caCert;
      if (!existsSync(path)) {
        throw new BerthError(
          'not_found',
          `no local CA yet at ${path}; it is created when the proxy first starts (berth up)`,
        );
      }
      process.stdout.write(`${path}\n`);
    });
}
