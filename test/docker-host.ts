// What Docker tests need on this machine: an engine (started here only if none answers, stopped by the last test
// file that used it, and only if tests started it), and the test images, built locally (nothing is pulled).
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { buildContext } from '../src/control/docker/build-context.js';
import { DockerEngine } from '../src/control/docker/docker-engine.js';
import { FileLock } from '../src/lib/file-lock.js';
import {
  identify,
  isRunning,
  readPidFile,
  signalRecorded,
  writePidFile,
} from '../src/lib/process-identity.js';
import { requireTool } from './require-tool.js';

const execFileAsync = promisify(execFile);

/** The busybox image of the tests: `FROM scratch` with Debian's static busybox (its `httpd` serves the test app). */
export const BUSYBOX_IMAGE = 'berth-test/busybox:1';
/** Where scripts/build-base-images.sh leaves the Node root filesystem (kept outside the checkout, between runs). */
export const BASE_IMAGE_CACHE = process.env.BERTH_IMAGE_CACHE ?? '/var/cache/berth';
export const NODE_ROOTFS = join(BASE_IMAGE_CACHE, 'node-bookworm-rootfs.tar');

/**
 * What the Node image takes from that root filesystem: node, the bookworm libraries it links (glibc, libstdc++,
 * libgcc_s) with their loader, a shell for `run:` lines (dash), and the user and group files; the rest of Debian
 * (120 of the tar's 213 MB) no test app uses. Why it matters: every data dir's registry starts empty, so the first
 * push of a release compresses the whole base layer again, which cost the engine 8 s of CPU for the full root
 * filesystem against 4 s for this. Merged /usr (bookworm): /bin, /lib, /lib64 are symbolic links.
 */
const NODE_IMAGE_FILES =
  /^\.\/(bin|lib\w*|etc\/(passwd|group)|usr\/bin\/(sh|dash)|usr\/local\/bin\/node|usr\/lib\w*\/([\w-]+\/)?(ld-linux[\w.-]*|lib(c|m|dl|pthread|gcc_s)\.so\.\d+|libstdc\+\+\.so\.6[\d.]*))$/;
const NODE_IMAGE_CHANGES = [
  'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin',
  'CMD ["node"]',
];

/**
 * The Node image: tagged by a hash of what makes it (the root filesystem's size and time, the selection, the
 * image config), so every test file and every later run on this machine finds the one import, and a rebuilt root
 * filesystem gets a new image instead of a stale one.
 */
export const NODE_IMAGE = `berth-test/node:${nodeImageKey()}`;

function nodeImageKey(): string {
  let rootfs = 'missing';
  try {
    const { size, mtimeMs } = statSync(NODE_ROOTFS);
    rootfs = `${size}:${mtimeMs}`;
  } catch {
    // Then the Node tests skip (nodeImageSkipReason), and the tag is never used.
  }
  const inputs = [rootfs, NODE_IMAGE_FILES.source, ...NODE_IMAGE_CHANGES].join('\n');
  return createHash('sha256').update(inputs).digest('hex').slice(0, 12);
}

/** Shared by the test files of every run on this machine: who started the engine, and who still uses it. */
const STATE_DIR = '/tmp/berth-test-dockerd';

/**
 * Why the Docker tests cannot run here (one line naming the Debian package), or false. The docker.io and
 * docker-registry packages are in .ci/apt-packages, so CI runs them.
 */
export function dockerSkipReason(): string | false {
  for (const [command, pkg] of [
    ['dockerd', 'docker.io'],
    ['docker-registry', 'docker-registry'],
    ['busybox', 'busybox-static'],
  ] as const) {
    const missing = requireTool(command, pkg);
    if (missing) return missing;
  }
  if (process.getuid?.() !== 0) return 'the Docker tests start and use the engine as root';
  return false;
}

/** Why the Node image cannot be had, or false. */
export function nodeImageSkipReason(): string | false {
  return (
    dockerSkipReason() ||
    (existsSync(NODE_ROOTFS)
      ? false
      : `${NODE_ROOTFS} missing: run scripts/build-base-images.sh once (Debian package debootstrap)`)
  );
}

export interface EngineLease {
  engine: DockerEngine;
  /** True when the tests started this engine (it stops when its last user releases it). */
  startedHere: boolean;
  release(): Promise<void>;
}

async function locked<T>(fn: () => Promise<T>): Promise<T> {
  mkdirSync(join(STATE_DIR, 'users'), { recursive: true });
  const deadline = Date.now() + 120_000;
  let lock = FileLock.tryAcquire(join(STATE_DIR, 'lock'));
  while (lock === undefined) {
    if (Date.now() > deadline) throw new Error(`${STATE_DIR}/lock: held for over 120s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    lock = FileLock.tryAcquire(join(STATE_DIR, 'lock'));
  }
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs}ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const PID_FILE = join(STATE_DIR, 'dockerd.pid');

/**
 * An engine for this test file: the one that answers on the default socket, else a dockerd started here (host
 * networking only: no bridge, no iptables rules), shared with the other test files running at the same time and
 * stopped by the last of them to release it. An engine the tests did not start is never stopped.
 */
export async function leaseDockerEngine(): Promise<EngineLease> {
  const engine = new DockerEngine();
  const userFile = join(STATE_DIR, 'users', String(process.pid));
  const startedHere = await locked(async () => {
    const recorded = readPidFile(PID_FILE);
    const ours = recorded !== undefined && isRunning(recorded);
    if ((await engine.probe()).ok && !ours) return false;
    if (!ours) {
      const logFd = openSync(join(STATE_DIR, 'dockerd.log'), 'a');
      const child = spawn('dockerd', ['--bridge=none', '--iptables=false', '--ip6tables=false'], {
        detached: true,
        stdio: ['ignore', logFd, logFd],
      });
      child.unref();
      await once(child, 'spawn');
      const identity = identify(child.pid!);
      if (identity) writePidFile(PID_FILE, identity, {});
      await until('dockerd answering', 60_000, async () => (await engine.probe()).ok);
    }
    writeFileSync(userFile, '');
    return true;
  });
  return {
    engine,
    startedHere,
    release: async () => {
      engine.close();
      if (!startedHere) return;
      await locked(async () => {
        rmSync(userFile, { force: true });
        await stopUnusedEngineLocked();
      });
    },
  };
}

/**
 * Stops the dockerd the tests started once no test process uses it. Called by the last lease's release, and by
 * scripts/run-tests.mjs after every run: a test file killed by its timeout never releases its lease. An engine
 * the tests did not start has no pid file here and is never stopped.
 */
export async function stopUnusedEngine(): Promise<'stopped' | 'in use' | 'none'> {
  if (!existsSync(PID_FILE)) return 'none';
  return locked(stopUnusedEngineLocked);
}

async function stopUnusedEngineLocked(): Promise<'stopped' | 'in use' | 'none'> {
  const users = readdirSync(join(STATE_DIR, 'users')).filter((pid) => {
    const alive = existsSync(`/proc/${pid}`);
    if (!alive) rmSync(join(STATE_DIR, 'users', pid), { force: true });
    return alive;
  });
  if (users.length > 0) return 'in use';
  const signalled = signalRecorded(PID_FILE, 'SIGTERM').outcome === 'signalled';
  if (signalled) {
    const recorded = readPidFile(PID_FILE);
    await until('dockerd stopped', 30_000, async () => recorded === undefined || !isRunning(recorded));
  }
  rmSync(PID_FILE, { force: true });
  return signalled ? 'stopped' : 'none';
}

/** Builds the busybox test image once per engine (in about a second: one file over scratch). */
export async function ensureBusyboxImage(engine: DockerEngine): Promise<string> {
  if ((await engine.inspectImage(BUSYBOX_IMAGE)) !== null) return BUSYBOX_IMAGE;
  const dir = join(tmpdir(), `berth-busybox-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  try {
    copyFileSync(which('busybox'), join(dir, 'busybox'));
    writeFileSync(
      join(dir, 'Dockerfile'),
      'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n',
    );
    await engine.buildImage(buildContext(dir), { dockerfile: 'Dockerfile', tag: BUSYBOX_IMAGE });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return BUSYBOX_IMAGE;
}

/** Imports the Node image, cut from the cached root filesystem, once per engine (a few seconds). */
export async function ensureNodeImage(engine: DockerEngine): Promise<string> {
  if ((await engine.inspectImage(NODE_IMAGE)) !== null) return NODE_IMAGE;
  const dir = mkdtempSync(join(tmpdir(), 'berth-node-image-'));
  try {
    const members = (await execFileAsync('tar', ['-tf', NODE_ROOTFS], { maxBuffer: 64 << 20 })).stdout
      .split('\n')
      .filter((member) => NODE_IMAGE_FILES.test(member.replace(/\/$/, '')));
    // With no member named, tar would extract the whole archive.
    if (!members.includes('./usr/local/bin/node'))
      throw new Error(`${NODE_ROOTFS}: no ./usr/local/bin/node; run scripts/build-base-images.sh again`);
    await execFileAsync('tar', ['-xf', NODE_ROOTFS, '-C', dir, '--numeric-owner', ...members]);
    mkdirSync(join(dir, 'tmp'), { mode: 0o1777 });
    chmodSync(join(dir, 'tmp'), 0o1777); // past the umask
    const [repository, tag] = NODE_IMAGE.split(':') as [string, string];
    await engine.importImage(buildContext(dir), repository, tag, NODE_IMAGE_CHANGES);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return NODE_IMAGE;
}

function which(command: string): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const path = join(dir, command);
    if (dir !== '' && existsSync(path)) return path;
  }
  throw new Error(`${command} not found on PATH`);
}
