// Node's floor for an HTTP proxy: a relay that pipes each client connection (TCP, or TLS when given a certificate) to
// a backend connection of its own and reads nothing (no HTTP parsing, routing, metrics or health checks). A Node proxy
// that parses HTTP cannot spend less than this; what Berth spends above it is Berth's, what this spends above nginx
// is Node's.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

// argv: the backend's port, then (for TLS, as Berth's HTTPS listener) a certificate and key file.
const [backendArg, certFile, keyFile] = process.argv.slice(2);
const backendPort = Number(backendArg);
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
  client.pipe(upstream).pipe(client);
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
