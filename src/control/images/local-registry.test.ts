// The embedded registry's lifetime: closed while it starts, it is stopped once up, and nothing starts it again.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { requireTool } from '../../../test/require-tool.js';
import { createLogger } from '../../lib/logger.js';
import { isRunning, readPidFile } from '../../lib/process-identity.js';
import { LocalRegistry } from './local-registry.js';

describe('LocalRegistry', () => {
  it('stops a registry still starting when it is closed, and starts none after', {
    skip: requireTool('docker-registry', 'docker-registry'),
  }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'berth-registry-'));
    const registry = new LocalRegistry({ dataDir, log: createLogger({ name: 'test', level: 'silent' }) });
    try {
      const starting = registry.address();
      await registry.close();
      await starting; // it came up, and was stopped after
      const recorded = readPidFile(join(dataDir, 'registry', 'registry.pid'));
      assert.ok(recorded, 'it had started');
      assert.equal(isRunning(recorded), false, 'no registry outlives the close');
      await assert.rejects(registry.address(), /the image registry is closed/);
    } finally {
      await registry.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
