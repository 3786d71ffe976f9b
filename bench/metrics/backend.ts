// Benchmark backend: COUNT keep-alive node:http servers in one process (20 "instances"), each answering 5 bytes.
import http from 'node:http';
import type net from 'node:net';

const count = Number(process.env.COUNT ?? 20);
const ports: number[] = [];
for (let i = 0; i < count; i++) {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5 });
    res.end('hello');
  });
  server.keepAliveTimeout = 65_000;
  server.listen(0, '127.0.0.1', () => {
    ports.push((server.address() as net.AddressInfo).port);
    if (ports.length === count) process.stdout.write(`${JSON.stringify({ ports })}\n`);
  });
}
