// Persists the route table as JSON (write to a temporary file, then rename) so the proxy restarts with it.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BerthError } from '../domain/errors.js';
import { parseRouteTable, type RouteTable } from '../domain/route-table.js';

/** Reads and writes `route-table.json`; writes are serialized so the file always holds the latest table. */
export class RouteTableStore {
  readonly path: string;
  #queue: Promise<void> = Promise.resolve();

  constructor(path: string) {
    this.path = path;
  }

  /** The persisted table, or undefined when there is none. Throws `BerthError` when the file is invalid. */
  load(): RouteTable | undefined {
    if (!existsSync(this.path)) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(this.path, 'utf8'));
    } catch (err) {
      throw new BerthError('invalid_route_table', `${this.path}: not valid JSON`, { cause: err });
    }
    return parseRouteTable(json);
  }

  save(table: RouteTable): Promise<void> {
    const text = `${JSON.stringify(table, null, 2)}\n`;
    const next = this.#queue.then(async () => {
      await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      const tmp = `${this.path}.tmp`;
      await writeFile(tmp, text, { mode: 0o600 });
      await rename(tmp, this.path);
    });
    this.#queue = next.catch(() => {});
    return next;
  }
}
