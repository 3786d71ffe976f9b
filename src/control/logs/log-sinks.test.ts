// Unit tests: syslog over TLS with octet-counted RFC 5424 frames arrives whole and in order, across reconnects.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import { requireTool } from '../../../test/require-tool.js';
import { waitFor, withDeadline } from '../../../test/wait.js';
import type { AppLogLine } from '../../domain/metrics-types.js';
import { SyslogSink } from './log-sinks.js';

/** Splits octet-counted frames (`<len> <msg>`), returning the messages and the unconsumed rest. */
function frames(buffer: Buffer): { messages: string[]; rest: Buffer } {
  const messages: string[] = [];
  let at = 0;
  for (;;) {
    const space = buffer.indexOf(0x20, at);
    if (space < 0) break;
    const length = Number(buffer.subarray(at, space).toString());
    if (buffer.length < space + 1 + length) break;
    messages.push(buffer.subarray(space + 1, space + 1 + length).toString());
    at = space + 1 + length;
  }
  return { messages, rest: buffer.subarray(at) };
}

describe('SyslogSink', () => {
  it('sends RFC 5424 over TLS, trusting only the given CA, every line in order once, after a dropped connection', {
    skip: requireTool('openssl', 'openssl'),
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-syslog-tls-'));
    writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
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
    const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
    const received: string[] = [];
    let connections = 0;
    const sockets: tls.TLSSocket[] = [];
    const server = tls.createServer({ key: readFileSync(join(dir, 'key.pem')), cert }, (socket) => {
      connections++;
      sockets.push(socket);
      let pending: Buffer = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        const { messages, rest } = frames(Buffer.concat([pending, chunk]));
        pending = rest;
        received.push(...messages);
      });
      socket.on('error', () => {});
    });
    server.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const port = (server.address() as { port: number }).port;
    const sink = new SyslogSink(`syslog+tls://127.0.0.1:${port}`, {
      app: 'shop',
      ca: cert,
      initialRetryMs: 20,
    });
    const line = (i: number): AppLogLine => ({
      t: 1000 + i,
      source: 'out',
      instance: 'web-1',
      service: 'web',
      line: `n ${i}`,
    });
    try {
      sink.enqueue(Array.from({ length: 500 }, (_, i) => line(i)));
      await sink.flush(5000);
      await waitFor('500 messages', () => (received.length >= 500 ? true : undefined), 5000, 20);
      assert.equal(received.length, 500);
      assert.match(received[0]!, /^<14>1 1970-01-01T00:00:01\.000Z \S+ shop web-1 web - n 0$/);
      assert.deepEqual(
        received.map((m) => m.slice(m.lastIndexOf(' - ') + 3)),
        Array.from({ length: 500 }, (_, i) => `n ${i}`),
      );
      assert.equal(sink.stats().sent, 500);
      assert.equal(connections, 1);

      // The receiver closes the connection; once the sink has closed its side too, the next lines go on a new one.
      sockets[0]!.end();
      await withDeadline(once(sockets[0]!, 'close'), 5000, 'the sink to close its side');
      sink.enqueue(Array.from({ length: 500 }, (_, i) => line(500 + i)));
      await sink.flush(5000);
      await waitFor('1000 messages', () => (received.length >= 1000 ? true : undefined), 5000, 20);
      assert.deepEqual(
        received.map((m) => m.slice(m.lastIndexOf(' - ') + 3)),
        Array.from({ length: 1000 }, (_, i) => `n ${i}`),
      );
      assert.equal(connections, 2);
    } finally {
      await sink.close();
      server.close();
    }
  });

  it('refuses a server whose certificate is not from the given CA, and keeps the lines queued', async () => {
    const sink = new SyslogSink('syslog+tls://127.0.0.1:1', {
      app: 'shop',
      ca: 'not a pem',
      initialRetryMs: 10_000,
    });
    sink.enqueue([{ t: 1, source: 'out', instance: 'i', service: 's', line: 'x' }]);
    await waitFor('the first attempt to fail', () => (sink.stats().lastError ? true : undefined), 5000);
    assert.equal(sink.stats().sent, 0);
    assert.equal(sink.stats().queued, 1);
    assert.ok(sink.stats().lastError);
    await sink.close();
  });
});
