// Table tests of backup naming, scheduling and retention.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BackupRecord } from './addon-store.js';
import { backupDue, backupId, backupsToPrune } from './backup-retention.js';

const HOUR = 3_600_000;

function backup(id: string, createdAt: number, trigger: BackupRecord['trigger'] = 'scheduled'): BackupRecord {
  return {
    id,
    app: 'shop',
    addon: 'db',
    addonId: 'ad1',
    kind: 'postgres',
    version: '15',
    trigger,
    createdAt,
    sizeBytes: 1,
    tookMs: 1,
    file: `${id}.dump`,
  };
}

describe('backup retention', () => {
  it('names a backup after its add-on and UTC time, numbering those taken in the same second', () => {
    const at = Date.UTC(2026, 10, 30, 6, 56, 17, 900);
    assert.equal(
      backupId('db', at, () => false),
      'db-20261130-065617',
    );
    const taken = new Set(['db-20261130-065617', 'db-20261130-065617-2']);
    assert.equal(
      backupId('db', at, (id) => taken.has(id)),
      'db-20261130-065617-3',
    );
  });

  it('is due when the newest backup, or the creation when there is none, is `every` old', () => {
    const cases: [string, BackupRecord[], number, boolean][] = [
      ['new add-on, a day not passed', [], 23 * HOUR, false],
      ['new add-on, a day passed', [], 24 * HOUR, true],
      ['a manual backup an hour ago counts', [backup('a', 23 * HOUR, 'manual')], 24 * HOUR, false],
      ['the newest of several decides', [backup('a', 0), backup('b', 30 * HOUR)], 53 * HOUR, false],
      ['the newest of several, a day old', [backup('a', 0), backup('b', 30 * HOUR)], 54 * HOUR, true],
    ];
    for (const [name, backups, now, due] of cases)
      assert.equal(backupDue(backups, 0, 24 * HOUR, now), due, name);
  });

  it('prunes the backups beyond the newest `keep`, whatever took them', () => {
    const backups = [
      backup('a', 1),
      backup('b', 2, 'manual'),
      backup('c', 3, 'snapshot'),
      backup('d', 4),
      backup('e', 4),
    ];
    assert.deepEqual(
      backupsToPrune(backups, 3).map((b) => b.id),
      ['b', 'a'],
    );
    assert.deepEqual(backupsToPrune(backups, 7), []);
    assert.deepEqual(
      backupsToPrune(backups, 1).map((b) => b.id),
      ['d', 'c', 'b', 'a'],
    );
  });
});
