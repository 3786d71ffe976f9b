// The Kubernetes targets table: a name for a kubeconfig file, one of its contexts and a namespace.
import { z } from 'zod';
import type { KubeTarget } from '../../domain/api-types.js';
import { BerthError } from '../../domain/errors.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import type { Database, Migration, Statement } from '../store/database.js';

export const TARGET_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'kubernetes targets',
    sql: `
      CREATE TABLE kube_targets (
        name TEXT PRIMARY KEY,
        kubeconfig TEXT NOT NULL,
        context TEXT,
        namespace TEXT NOT NULL,
        server_version TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
    `,
  },
];

const targetRow = z.object({
  name: z.string(),
  kubeconfig: z.string(),
  context: z.string().nullable(),
  namespace: z.string(),
  server_version: z.string(),
  created_at: z.number().int(),
});

function toTarget(row: z.infer<typeof targetRow>): KubeTarget {
  return {
    name: row.name,
    kubeconfig: row.kubeconfig,
    ...(row.context === null ? {} : { context: row.context }),
    namespace: row.namespace,
    serverVersion: row.server_version,
    createdAt: row.created_at,
  };
}

export class TargetStore {
  readonly #clock: Clock;
  readonly #s: {
    insert: Statement<never>;
    get: Statement<z.infer<typeof targetRow>>;
    list: Statement<z.infer<typeof targetRow>>;
    remove: Statement<never>;
  };

  constructor(db: Database, clock: Clock = systemClock) {
    db.migrate('kube-targets', TARGET_MIGRATIONS);
    this.#clock = clock;
    this.#s = {
      insert: db.statement(
        `INSERT INTO kube_targets (name, kubeconfig, context, namespace, server_version, created_at)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET kubeconfig = excluded.kubeconfig, context = excluded.context,
           namespace = excluded.namespace, server_version = excluded.server_version`,
      ),
      get: db.statement('SELECT * FROM kube_targets WHERE name = ?', targetRow),
      list: db.statement('SELECT * FROM kube_targets ORDER BY name', targetRow),
      remove: db.statement('DELETE FROM kube_targets WHERE name = ?'),
    };
  }

  /** Adds a target, or replaces the one of that name. */
  put(target: Omit<KubeTarget, 'createdAt'>): KubeTarget {
    this.#s.insert.run(
      target.name,
      target.kubeconfig,
      target.context ?? null,
      target.namespace,
      target.serverVersion,
      this.#clock.now(),
    );
    return this.get(target.name);
  }

  /** The target named `name`; `not_found` listing the known ones otherwise. */
  get(name: string): KubeTarget {
    const row = this.#s.get.get(name);
    if (row === undefined) {
      const known = this.list().map((t) => t.name);
      throw new BerthError(
        'not_found',
        `no target named ${name}${known.length === 0 ? '; add one with `berth targets add NAME --kubeconfig FILE`' : ` (targets: ${known.join(', ')})`}`,
      );
    }
    return toTarget(row);
  }

  list(): KubeTarget[] {
    return this.#s.list.all().map(toTarget);
  }

  remove(name: string): void {
    this.get(name);
    this.#s.remove.run(name);
  }
}
