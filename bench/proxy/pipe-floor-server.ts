// Node's floor for an HTTP proxy: a relay that pipes each client connection (TCP, or TLS when given a certificate) to
// a backend connection of its own and reads nothing (no HTTP parsing, routing, metrics or health checks). A Node proxy
// that parses HTTP cannot spend less than this; what Berth spends above it is Berth's, what this spends above nginx
// is Node's. With `forwarded` it also does the wire work Berth does on every exchange, and nothing else: the
// forwarding headers and a request id added to each request head, the request id added to each response head.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { nextRequestId } from '../../src/proxy/exchange.js';

// argv: the backend's port, `forwarded` or `plain`, then (for TLS, as Berth's HTTPS listener) a certificate and key.
const [backendArg, mode, certFile, keyFile] = process.argv.slice(2);
const backendPort = Number(backendArg);
const proto = certFile === undefined ? 'http' : 'https';

/**
 * Adds the headers and forwards each head in one write, as Berth does. It assumes what the benchmark sends and
 * gets: one whole request head per read and no request body; responses framed by Content-Length. It is a
 * measuring stick, not a proxy.
 */
function relayWithHeaders(client: net.Socket, upstream: net.Socket): void {
  const forwarding = `x-forwarded-for: ${client.remoteAddress}\r\nx-forwarded-proto: ${proto}\r\n`;
  const port = `x-forwarded-port: ${client.localPort}\r\n`;
  let requestId = '';
  client.on('data', (chunk: Buffer) => {
    const headEnd = chunk.indexOf('\r\n\r\n');
    if (headEnd === -1 || headEnd + 4 !== chunk.length)
      throw new Error('floor: not one whole request per read');
    const head = chunk.toString('latin1', 0, headEnd + 2);
    const hostLine = head.indexOf('\nHost: ');
    const host = hostLine === -1 ? '' : head.slice(hostLine + 7, head.indexOf('\r', hostLine));
    requestId = nextRequestId();
    upstream.write(
      `${head}${forwarding}x-forwarded-host: ${host}\r\n${port}x-request-id: ${requestId}\r\n\r\n`,
      'latin1',
    );
  });
  /** Body bytes of the current response still to come. */
  let bodyLeft = 0;
  upstream.on('data', (chunk: Buffer) => {
    if (bodyLeft > 0) {
      bodyLeft -= chunk.length;
      client.write(chunk);
      return;
    }
    const headEnd = chunk.indexOf('\r\n\r\n');
    if (headEnd === -1) throw new Error('floor: a response head split across reads');
    const head = chunk.toString('latin1', 0, headEnd + 2);
    const lengthAt = head.toLowerCase().indexOf('\ncontent-length: ');
    if (lengthAt === -1) throw new Error('floor: a response without Content-Length');
    bodyLeft = Number.parseInt(head.slice(lengthAt + 17), 10) - (chunk.length - headEnd - 4);
    client.write(
      Buffer.concat([
        Buffer.from(`${head}x-request-id: ${requestId}\r\n\r\n`, 'latin1'),
        chunk.subarray(headEnd + 4),
      ]),
    );
  });
}

if (mode !== 'forwarded' && mode !== 'plain')
  throw new Error(`floor: mode ${mode}: expected forwarded or plain`);
const forwarded = mode === 'forwarded';
const relay = (client: net.Socket) => {
  const upstream = net.connect({ host: '127.0.0.1', port: backendPort, noDelay: true });
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  for (const socket of [client, upstream]) {
    socket.on('error', end);
    socket.on('close', end);
  }
  if (forwarded) relayWithHeaders(client, upstream);
  else client.pipe(upstream).pipe(client);
};
const server =
  certFile === undefined || keyFile === undefined
    ? net.createServer({ noDelay: true }, relay)
    : tls.createServer({ noDelay: true, cert: readFileSync(certFile), key: readFileSync(keyFile) }, relay);
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as net.AddressInfo;
  process.stdout.write(`${JSON.stringify({ event: 'listening', port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
