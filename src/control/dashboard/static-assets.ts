// The dashboard's files (web/ and the uPlot build), read once at start, served gzipped with an ETag.
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
  readonly #assets = new Map<string, Asset>();

  constructor(webDir = WEB_DIR) {
    for (const name of readdirSync(webDir, { recursive: true, encoding: 'utf8' })) {
      const type = TYPES[extname(name)];
      if (type === undefined) continue;
      const urlPath = name === 'index.html' ? '/' : `/ui/${name.split('\\').join('/')}`;
      this.#add(urlPath, type, readFileSync(join(webDir, name)));
    }
    // uPlot's own minified build (MIT): the one library of the page; a classic script that defines `uPlot`.
    const uplotDir = dirname(createRequire(import.meta.url).resolve('uplot'));
    this.#add(
      '/ui/vendor/uPlot.iife.min.js',
      TYPES['.js']!,
      readFileSync(join(uplotDir, 'uPlot.iife.min.js')),
    );
    this.#add('/ui/vendor/uPlot.min.css', TYPES['.css']!, readFileSync(join(uplotDir, 'uPlot.min.css')));
  }

  get(path: string): Asset | undefined {
    return this.#assets.get(path);
  }

  /** Every asset with its sizes, for the page-weight report. */
  list(): { path: string; bytes: number; gzipped: number }[] {
    return [...this.#assets].map(([path, a]) => ({ path, bytes: a.body.length, gzipped: a.gzipped.length }));
  }

  #add(path: string, type: string, body: Buffer): void {
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    this.#assets.set(path, { type, body, gzipped: gzipSync(body, { level: 9 }), etag });
  }
}
