// Events: the append-only record of every state change, shown by `berth events`.

export interface BerthEvent {
  id: number;
  at: number;
  /** Who caused it: `admin` (API token), `reconciler`, `health`, `system`. */
  actor: string;
  /** Machine-readable kind, e.g. `instance.started`, `instance.crashed`, `app.applied`. */
  kind: string;
  app: string | null;
  service: string | null;
  instance: string | null;
  message: string;
  data: Record<string, unknown>;
}

export type NewEvent = Omit<BerthEvent, 'id' | 'at'> & { at?: number };
