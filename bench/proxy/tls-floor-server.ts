// Node's floor for TLS handshakes: a bare `tls.Server` with the benchmark's certificate that does nothing with its
// connections (no SNI callback, no per-connection object). What Berth's HTTPS listener costs above it is Berth's.
import { readFileSync } from 'node:fs';
import tls from 'node:tls';

const [certFile, keyFile] = process.argv.slice(2);
const server = tls.createServer(
  { cert: readFileSync(certFile!), key: readFileSync(keyFile!), ALPNProtocols: ['http/1.1'], noDelay: true },
  (socket) => socket.on('error', () => {}),
);
server.on('tlsClientError', () => {});
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as import('node:net').AddressInfo;
  process.stdout.write(`${JSON.stringify({ event: 'listening', https: port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
