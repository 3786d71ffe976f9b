// A small Node HTTP app for Berth: answers on $PORT, has /health, and finishes in-flight requests on SIGTERM.
import { createServer } from 'node:http';

const port = Number(process.env.PORT ?? 3000);
const instance = process.env.BERTH_INSTANCE ?? 'local';
const release = process.env.BERTH_RELEASE ?? 'dev';

const server = createServer((req, res) => {
  if (req.url === '/health') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok\n');
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(
    `${JSON.stringify({ hello: 'world', instance, release, greeting: process.env.GREETING ?? 'hi' })}\n`,
  );
});

server.listen(port, '127.0.0.1', () => {
  console.log(`hello listening on 127.0.0.1:${port} as ${instance} (${release})`);
});

process.on('SIGTERM', () => {
  console.log('SIGTERM: finishing in-flight requests');
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
