// Composition root of the proxy process: parse flags, start the proxy and its admin API, stop gracefully.
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { BerthError, formatIssues } from '../domain/errors.js';
import { proxyPaths } from '../domain/proxy-paths.js';
import { AccessLog } from '../proxy/access-log.js';
import { AdminApi } from '../proxy/admin-api.js';
import { DEFAULT_PORTS, ProxyServer } from '../proxy/proxy-server.js';

const USAGE = `usage: node dist/src/main/proxy.js --data-dir DIR [--http-port 8080] [--https-port 8443] [--host ADDR]
       [--admin-socket PATH] [--access-log [FILE]] [--no-redirect] [--drain-ms 10000]
       [--trusted-proxies CIDR,...] [--max-head-bytes 16384]
  --trusted-proxies  proxies in front of this one whose X-Forwarded-* headers are passed on (default none;
                     also BERTH_TRUSTED_PROXIES)
  --max-head-bytes   largest request head accepted and forwarded, 431 above (default 16384, what Node
                     backends accept; also BERTH_MAX_HEAD_BYTES)`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
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
    },
  });
  if (values.help || values['data-dir'] === undefined) {
    console.error(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  const port = (raw: string | undefined, fallback: number, flag: string): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0 || n > 65535) {
      console.error(`--${flag}: not a port: ${raw}`);
      process.exit(2);
    }
    return n;
  };
  const trusted = values['trusted-proxies'] ?? process.env.BERTH_TRUSTED_PROXIES ?? '';
  const maxHead = values['max-head-bytes'] ?? process.env.BERTH_MAX_HEAD_BYTES;
  const maxHeadBytes = maxHead === undefined ? undefined : Number(maxHead);
  if (
    maxHeadBytes !== undefined &&
    (!Number.isInteger(maxHeadBytes) || maxHeadBytes < 1024 || maxHeadBytes > 1024 * 1024)
  ) {
    console.error(`--max-head-bytes: expected a whole number of bytes from 1024 to 1048576, got ${maxHead}`);
    process.exit(2);
  }
  const paths = proxyPaths(values['data-dir']);
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  const accessLog =
    values['access-log-file'] !== undefined
      ? AccessLog.toFile(values['access-log-file'])
      : values['access-log']
        ? new AccessLog(process.stderr)
        : undefined;
  const proxy = await ProxyServer.start({
    stateDir: paths.dir,
    httpPort: port(values['http-port'], DEFAULT_PORTS.http, 'http-port'),
    httpsPort: port(values['https-port'], DEFAULT_PORTS.https, 'https-port'),
    host: values.host,
    redirectHttp: !values['no-redirect'],
    accessLog,
    maxHeadBytes,
    trustedProxies: trusted
      .split(',')
      .map((entry) => entry.trim())
      .filter((entry) => entry !== ''),
  });
  const admin = new AdminApi(proxy);
  const adminSocket = values['admin-socket'] ?? paths.adminSocket;
  await admin.listen(adminSocket);
  const drainMs = Number(values['drain-ms'] ?? 10_000);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${JSON.stringify({ event: 'stopping', signal })}\n`);
    await proxy.close(drainMs);
    await admin.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  process.stdout.write(
    `${JSON.stringify({
      event: 'listening',
      pid: process.pid,
      http: proxy.ports.http,
      https: proxy.ports.https,
      adminSocket,
      caCert: paths.caCert,
    })}\n`,
  );
}

main().catch((err: unknown) => {
  if (err instanceof BerthError) {
    console.error(
      `berth proxy: ${err.message}${err.issues.length > 0 ? `\n${formatIssues(err.issues)}` : ''}`,
    );
  } else {
    console.error('berth proxy:', err);
  }
  process.exit(1);
});
