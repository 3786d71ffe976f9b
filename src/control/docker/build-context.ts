// A directory as a tar stream, the form in which the Docker engine takes a build context.
import { spawn } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';

/**
 * Streams `dir` as an uncompressed tar (GNU tar, which every Debian system has: it is essential), numeric owners,
 * so the build sees the same bytes whoever runs Berth. An error of tar ends the stream with that error.
 */
export function buildContext(dir: string): Readable {
  const out = new PassThrough();
  const tar = spawn('tar', ['-C', dir, '--numeric-owner', '-cf', '-', '.'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  tar.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  tar.stdout.pipe(out, { end: false });
  tar.on('error', (error) => out.destroy(error));
  tar.on('close', (code) => {
    if (code === 0) out.end();
    else out.destroy(new Error(`tar of ${dir} exited with code ${code}: ${stderr.trim()}`));
  });
  return out;
}
