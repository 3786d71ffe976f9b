// Node's floor for an HTTP proxy: a TCP relay that pipes each client connection to a backend connection of its own
// and reads nothing (no HTTP parsing, routing, metrics or health checks). A Node proxy that parses HTTP cannot spend
// less CPU per request than this; what Berth's proxy spends above it is Berth's, what this spends above nginx is Node's.
import net from 'node:net';

const backendPort = Number(process.argv[2]);
const server = net.createServer({ noDelay: true }, (client) => {
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
});
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as net.AddressInfo;
  process.stdout.write(`${JSON.stringify({ event: 'listening', http: port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
