// Compiles the native instance shim (src/main/instance-shim.c) to dist/src/main/berth-shim with the machine's C
// compiler ($CC, else cc): run by `npm run build` and on `npm install` (prepare). Skipped when the binary is newer
// than its source. Fails, naming the Debian package, when there is no compiler.
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const source = join(root, 'src/main/instance-shim.c');
const target = join(root, 'dist/src/main/berth-shim');

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

if (mtime(target) > mtime(source) && mtime(target) > mtime(fileURLToPath(import.meta.url))) process.exit(0);
mkdirSync(dirname(target), { recursive: true });
const compiler = process.env.CC || 'cc';
const temporary = `${target}.${process.pid}.tmp`;
const flags = ['-std=c11', '-O2', '-Wall', '-Wextra', '-Wshadow', '-pthread', '-o', temporary, source];
const result = spawnSync(compiler, flags, { stdio: 'inherit' });
if (result.error?.code === 'ENOENT') {
  console.error(
    `berth: the instance shim needs a C compiler and none was found (${compiler}): install one (Debian: apt-get install gcc, or build-essential) or set CC`,
  );
  process.exit(1);
}
if (result.status !== 0) {
  console.error(`berth: compiling ${source} failed (${compiler} ${flags.join(' ')})`);
  process.exit(1);
}
// Whole or not at all: a running control plane may be starting shims from the old one.
renameSync(temporary, target);
