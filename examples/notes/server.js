// The add-ons example: a visit counter in Redis (REDIS_URL) and notes in PostgreSQL (DATABASE_URL), both provided
// by Berth as sealed secrets. GET /visits counts, GET/POST /notes list and add, /health checks both databases.
import { createServer } from 'node:http';
import { createPool } from './lib/postgres.js';
import { createRedis } from './lib/redis.js';

const port = Number(process.env.PORT ?? 3000);
const instance = process.env.BERTH_INSTANCE ?? 'local';
const redis = createRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const db = createPool(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', 4);

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify(body)}\n`);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      text += chunk;
      if (text.length > 64 * 1024) reject(new Error('body too large'));
    });
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}

async function handle(req, res) {
  const path = new URL(req.url, 'http://x').pathname;
  if (path === '/health') {
    // Healthy only when both databases answer with this instance's credentials: a release whose URLs do not
    // work never takes traffic.
    const [pong, rows] = await Promise.all([redis.command('PING'), db.query('SELECT 1 AS ok')]);
    return send(res, pong === 'PONG' && rows[0]?.ok === '1' ? 200 : 503, { ok: true });
  }
  if (path === '/visits') return send(res, 200, { visits: await redis.command('INCR', 'visits'), instance });
  if (path === '/notes' && req.method === 'POST') {
    const body = (await readBody(req)).trim();
    if (body === '') return send(res, 400, { error: 'send the note as the request body' });
    const [note] = await db.query('INSERT INTO notes (body) VALUES ($1) RETURNING id, body, created_at', [
      body,
    ]);
    return send(res, 201, note);
  }
  if (path === '/notes') {
    const notes = await db.query('SELECT id, body, created_at FROM notes ORDER BY id DESC LIMIT 20');
    return send(res, 200, { notes, count: Number((await db.query('SELECT count(*) AS n FROM notes'))[0].n) });
  }
  if (path === '/') {
    const [visits, notes] = await Promise.all([
      redis.command('INCR', 'visits'),
      db.query('SELECT count(*) AS n FROM notes'),
    ]);
    return send(res, 200, { visits, notes: Number(notes[0].n), instance });
  }
  return send(res, 404, { error: `no route ${path}` });
}

const server = createServer((req, res) => {
  handle(req, res).catch((error) => send(res, 500, { error: error.message }));
});

server.listen(port, '127.0.0.1', () => {
  console.log(`notes listening on 127.0.0.1:${port} as ${instance}`);
});

process.on('SIGTERM', () => {
  server.close(() => {
    redis.close();
    db.close();
    process.exit(0);
  });
  server.closeIdleConnections();
});
