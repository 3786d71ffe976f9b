// The dashboard's files: found at start, each read and gzipped on its first request, then served from memory.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { StaticAssets } from './static-assets.js';

describe('StaticAssets', () => {
  const webDir = mkdtempSync(join(tmpdir(), 'berth-assets-'));
  after(() => rmSync(webDir, { recursive: true, force: true }));
  mkdirSync(join(webDir, 'sections'));
  writeFileSync(join(webDir, 'index.html'), '<!doctype html><title>Berth</title>');
  writeFileSync(join(webDir, 'sections', 'app.js'), 'export const app = 1;\n');
  writeFileSync(join(webDir, 'notes.txt'), 'not served');

  it('serves index.html at /, the rest under /ui/, with type, gzip and a content ETag; nothing else', () => {
    const assets = new StaticAssets(webDir);
    const page = assets.get('/')!;
    assert.equal(page.type, 'text/html; charset=utf-8');
    assert.equal(page.body.toString(), '<!doctype html><title>Berth</title>');
    assert.deepEqual(gunzipSync(page.gzipped), page.body);
    assert.match(page.etag, /^"[A-Za-z0-9_-]{22}"$/);
    assert.equal(assets.get('/ui/sections/app.js')?.type, 'text/javascript; charset=utf-8');
    assert.equal(assets.get('/ui/vendor/uPlot.min.css')?.type, 'text/css; charset=utf-8');
    assert.equal(assets.get('/ui/notes.txt'), undefined);
    assert.equal(assets.get('/ui/missing.js'), undefined);
  });

  it('reads a file once: later requests get the same asset even if the file changes', () => {
    const assets = new StaticAssets(webDir);
    const first = assets.get('/ui/sections/app.js')!;
    writeFileSync(join(webDir, 'sections', 'app.js'), 'export const app = 2;\n');
    assert.equal(assets.get('/ui/sections/app.js'), first);
    writeFileSync(join(webDir, 'sections', 'app.js'), 'export const app = 1;\n');
  });

  it('lists every asset with its sizes', () => {
    const paths = new StaticAssets(webDir).list().map((a) => a.path);
    assert.deepEqual(paths.sort(), [
      '/',
      '/ui/sections/app.js',
      '/ui/vendor/uPlot.iife.min.js',
      '/ui/vendor/uPlot.min.css',
    ]);
  });

  it('refuses to start without its directory', () => {
    assert.throws(() => new StaticAssets(join(webDir, 'absent')), { code: 'ENOENT' });
  });
});
