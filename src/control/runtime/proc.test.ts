import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { bytesPerPage, clockTicksPerSecond, parseProcStat, readProcStat } from './proc.js';

const getconf = (name: string): number =>
  Number(execFileSync('getconf', [name], { encoding: 'utf8' }).trim());

describe('proc', () => {
  it('reads the clock tick rate and the page size from the auxiliary vector, as getconf reports them', () => {
    assert.equal(clockTicksPerSecond(), getconf('CLK_TCK'));
    assert.equal(bytesPerPage(), getconf('PAGESIZE'));
  });

  it('parses a stat line whose command name holds spaces and parentheses', () => {
    const fields = [
      'S',
      '1',
      '4242',
      ...Array.from({ length: 8 }, () => '0'),
      '7',
      '5',
      ...Array(6).fill('0'),
      '99',
      '0',
      '3',
    ];
    const stat = parseProcStat(`4243 (a (b) c) ${fields.join(' ')}`);
    assert.equal(stat?.pid, 4243);
    assert.equal(stat?.state, 'S');
    assert.equal(stat?.pgrp, 4242);
    assert.equal(stat?.cpuTicks, 12);
    assert.equal(stat?.startTicks, 99);
    assert.equal(stat?.rssBytes, 3 * bytesPerPage());
  });

  it('reads this process, and nothing for a pid that does not exist', () => {
    assert.equal(readProcStat(process.pid)?.pid, process.pid);
    assert.equal(readProcStat(2 ** 22 + 1), undefined);
  });
});
