// The release phase (Procfile `release:`): creates the notes table before a release takes traffic.
import { createPool } from './lib/postgres.js';

const db = createPool(process.env.DATABASE_URL, 1);
await db.query(
  'CREATE TABLE IF NOT EXISTS notes (id bigserial PRIMARY KEY, body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())',
);
console.log('notes table ready');
db.close();
