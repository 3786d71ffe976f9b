// The dashboard's files (web/ and the uPlot build), found at start, each read and gzipped once on its first request
// (compressing them all took ~10 ms of CPU at every start), served gzipped with an ETag.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/** The dashboard's plain HTML/CSS/ES modules: shipped as they are, no build step. */
export const WEB_DIR = fileURLToPath(new URL('../../../../web/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export interface Asset {
  type: string;
  body: Buffer;
  gzipped: Buffer;
  etag: string;
}

/** Every file the dashboard serves, by URL path (`/` is index.html, the rest under `/ui/`). */
export class StaticAssets {
  /** Where each URL path's file is; its Asset is made on the first `get`. */
  readonly #files = new Map<string, { type: string; file: string }>();
  readonly #assets = new Map<string, Asset>();

  constructor(webDir = WEB_DIR) {
    for (const name of readdirSync(webDir, { recursive: true, encoding: 'utf8' })) {
      const type = TYPES[extname(name)];
      if (type === undefined) continue;
      const urlPath = name === 'index.html' ? '/' : `/ui/${name.split('\\').join('/')}`;
      this.#files.set(urlPath, { type, file: join(webDir, name) });
    }
    // uPlot's own minified build (MIT): the one library of the page; a classic script that defines `uPlot`.
    const uplotDir = dirname(createRequire(import.meta.url).resolve('uplot'));
    this.#files.set('/ui/vendor/uPlot.iife.min.js', {
      type: TYPES['.js']!,
      file: join(uplotDir, 'uPlot.iife.min.js'),
    });
    this.#files.set('/ui/vendor/uPlot.min.css', {
      type: TYPES['.css']!,
      file: join(uplotDir, 'uPlot.min.css'),
    });
  }

  get(path: string): Asset | undefined {
    const known = this.#assets.get(path);
    if (known !== undefined) return known;
    const entry = this.#files.get(path);
    if (entry === undefined) return undefined;
    const body = readFileSync(entry.file);
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    const asset = { type: entry.type, body, gzipped: gzipSync(body, { level: 9 }), etag };
    this.#assets.set(path, asset);
    return asset;
  }

  /** Every asset with its sizes, for the page-weight report. */
  list(): { path: string; bytes: number; gzipped: number }[] {
    return [...this.#files.keys()].map((path) => {
      const asset = this.get(path)!;
      return { path, bytes: asset.body.length, gzipped: asset.gzipped.length };
    });
  }
}
