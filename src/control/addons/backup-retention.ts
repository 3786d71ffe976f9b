// Which backups of an add-on are due, kept and named how: pure decisions, tested as tables.
import type { BackupRecord } from './addon-store.js';

/** How long the backups of a destroyed add-on are kept (the secrets' recovery window is as long). */
export const DESTROYED_BACKUPS_KEPT_MS = 7 * 24 * 3_600_000;

/** `cache-20261130-065617` (UTC), with `-2`, `-3` … when that name is taken (two backups in one second). */
export function backupId(addon: string, at: number, taken: (id: string) => boolean): string {
  const stamp = new Date(at).toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const base = `${addon}-${stamp}`;
  if (!taken(base)) return base;
  for (let n = 2; ; n++) if (!taken(`${base}-${n}`)) return `${base}-${n}`;
}

/** Whether a scheduled backup is due: the newest backup (or the add-on's creation) is `everyMs` old. */
export function backupDue(
  backups: readonly BackupRecord[],
  createdAt: number,
  everyMs: number,
  now: number,
): boolean {
  const newest = Math.max(createdAt, ...backups.map((b) => b.createdAt));
  return now - newest >= everyMs;
}

/** The backups beyond the newest `keep`, whatever took them (a schedule, a person, a data-directory backup). */
export function backupsToPrune(backups: readonly BackupRecord[], keep: number): BackupRecord[] {
  return [...backups].sort((a, b) => b.createdAt - a.createdAt || b.id.localeCompare(a.id)).slice(keep);
}
