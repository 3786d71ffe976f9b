// Where the proxy keeps its state under a Berth data directory (shared so the CLI can print the CA's path).
import { join } from 'node:path';

/** Files of the proxy under `<dataDir>/proxy/`. */
export interface ProxyPaths {
  /** `<dataDir>/proxy` */
  dir: string;
  /** The persisted route table. */
  routeTable: string;
  /** The local CA certificate: give it to clients (`curl --cacert`). */
  caCert: string;
  caKey: string;
  /** Server certificates issued by the local CA. */
  certsDir: string;
  /** Default admin API socket. */
  adminSocket: string;
  /** The keeper's pid file: pid, start time and command line (`src/lib/process-identity.ts`). */
  pidFile: string;
  /** Held by the one keeper of this data dir (`FileLock`). */
  keeperLock: string;
}

export function proxyPaths(dataDir: string): ProxyPaths {
  const dir = join(dataDir, 'proxy');
  return {
    dir,
    routeTable: join(dir, 'route-table.json'),
    caCert: join(dir, 'ca', 'ca.crt'),
    caKey: join(dir, 'ca', 'ca.key'),
    certsDir: join(dir, 'certs'),
    adminSocket: join(dir, 'admin.sock'),
    pidFile: join(dir, 'proxy.pid'),
    keeperLock: join(dir, 'keeper.lock'),
  };
}
