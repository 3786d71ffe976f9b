// Benchmark backend: node:http with keep-alive; MODE=hello answers 5 bytes, MODE=work does ~1 ms of CPU first.
// TLS_CERT and TLS_KEY (PEM files) make it an HTTPS server: an external origin, for BENCH_UPSTREAM=tls.
import { createHash, pbkdf2Sync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';

const mode = process.env.MODE ?? 'hello';
const iterations = Number(process.env.PBKDF2_ITERS ?? 2600);

function work(url: string): string {
  const items = [];
  for (let i = 0; i < 50; i++)
    items.push({ id: i, name: `item-${i}`, tags: ['a', 'b', 'c'], score: i * 1.5 });
  const body = JSON.stringify({ url, ts: Date.now(), items });
  const h = createHash('sha256').update(body).digest('hex');
  const k = pbkdf2Sync(h, 'salt', iterations, 32, 'sha256').toString('hex');
  return JSON.stringify({ ok: true, hash: h.slice(0, 16), key: k.slice(0, 16), n: items.length });
}

const handler: http.RequestListener = (req, res) => {
  if (mode === 'work' && req.url !== '/health') {
    const body = work(req.url ?? '/');
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5 });
  res.end('hello');
};
const { TLS_CERT, TLS_KEY } = process.env;
const server =
  TLS_CERT === undefined || TLS_KEY === undefined
    ? http.createServer(handler)
    : https.createServer({ cert: readFileSync(TLS_CERT), key: readFileSync(TLS_KEY) }, handler);
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as net.AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
