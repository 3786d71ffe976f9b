import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { requireTool } from '../../../test/require-tool.js';
import { PooledKubeConfig } from './pooled-kube-config.js';

describe('PooledKubeConfig', () => {
  it('makes its API calls over one TLS connection, trusting the kubeconfig CA', {
    skip: requireTool('openssl', 'openssl'),
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-kube-pool-'));
    const server = createServer();
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-days',
          '1',
          '-subj',
          '/CN=127.0.0.1',
          '-addext',
          'subjectAltName=IP:127.0.0.1',
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
        ],
        { stdio: 'ignore' },
      );
      server.setSecureContext({
        key: readFileSync(join(dir, 'key.pem')),
        cert: readFileSync(join(dir, 'cert.pem')),
      });
      let handshakes = 0;
      server.on('secureConnection', () => {
        handshakes += 1;
      });
      const tokens: string[] = [];
      server.on('request', (request, response) => {
        tokens.push(request.headers.authorization ?? '');
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } }));
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as AddressInfo;
      const kubeconfig = join(dir, 'kubeconfig');
      writeFileSync(
        kubeconfig,
        [
          'apiVersion: v1',
          'kind: Config',
          `clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:${port}\n    certificate-authority: ${join(dir, 'cert.pem')}`,
          'users:\n- name: u\n  user:\n    token: t0k3n',
          'contexts:\n- name: c\n  context:\n    cluster: c\n    user: u',
          'current-context: c',
          '',
        ].join('\n'),
      );
      const config = new PooledKubeConfig();
      config.loadFromFile(kubeconfig);
      const core = config.makeApiClient(CoreV1Api);
      for (let i = 0; i < 3; i++) {
        assert.equal((await core.readNamespace({ name: 'default' })).metadata?.name, 'default');
      }
      assert.deepEqual(tokens, ['Bearer t0k3n', 'Bearer t0k3n', 'Bearer t0k3n']);
      assert.equal(handshakes, 1, 'one connection for three calls');
    } finally {
      server.closeAllConnections();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
