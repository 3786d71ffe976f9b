// Runs every compiled test file (unit tests beside the code, integration tests in test/) with node:test, bounded in
// time: a timeout per test (per file before Node 24), a deadline for the whole run, and a sweep of any process the
// tests left running. Prints each file's duration, the skipped tests with their reasons, and one closing line.
import { setMaxListeners } from 'node:events';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { run } from 'node:test';
import { dot, spec, tap } from 'node:test/reporters';
import { pathToFileURL } from 'node:url';

/** A whole number (milliseconds, a count) from an environment variable, else the default. */
function fromEnv(name, fallback) {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms <= 0) {
    console.error(`${name}=${value}: expected a whole number above 0`);
    process.exit(2);
  }
  return ms;
}

// Node 24 applies `timeout` to each test; Node 20 and 22 apply it to each test file as a whole (nodejs/node#57672),
// so there the bound is sized for the slowest file instead. Both leave room for a machine with a busy core.
const PER_TEST = Number(process.versions.node.split('.')[0]) >= 24;
const TIMEOUT_MS = fromEnv('BERTH_TEST_TIMEOUT', PER_TEST ? 120_000 : 300_000);
const DEADLINE_MS = fromEnv('BERTH_TEST_DEADLINE', 900_000);
// Six files at a time on two cores: integration tests mostly wait (health intervals, windows, backoff, a cluster or
// a browser starting), so on a quiet 2-core machine six take 141 s where three take 170 (docs/testing.md); every
// wait is on a condition, so a busy machine makes them slower, not red.
const CONCURRENCY = fromEnv('BERTH_TEST_CONCURRENCY', 6);

function findTests(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...findTests(path));
    else if (entry.name.endsWith('.test.js')) found.push(path);
  }
  return found;
}

/** Processes whose command line or working directory lies in `dir`: only this run's tests can have made those. */
function processesIn(dir) {
  const found = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const command = readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      let cwd = '';
      try {
        cwd = readlinkSync(`/proc/${name}/cwd`);
      } catch {
        // Not ours to read, or gone: only the command line counts.
      }
      if (command.includes(dir) || cwd.startsWith(dir)) found.push({ pid: Number(name), command });
    } catch {
      // Exited while we looked.
    }
  }
  return found;
}

/** Names of the entry files that run a group of unit test files in one process (made below). */
const groupNames = new Map();

/** The source file of a compiled test file: dist/test/x.test.js → test/x.test.ts (or a group's name). */
const where = (file) =>
  groupNames.get(file) ??
  (file
    ? relative(process.cwd(), file)
        .replace(/^dist\//, '')
        .replace(/\.test\.js$/, '.test.ts')
    : '?');

// Longest files first, by how long each took in the last runs: with a fixed number of files at a time, a long file
// that starts late runs alone at the end. A file never timed counts as long if it is an integration test.
const DURATIONS_FILE = join('node_modules', '.cache', 'berth-test-durations.json');
function lastDurations() {
  try {
    return JSON.parse(readFileSync(DURATIONS_FILE, 'utf8'));
  } catch {
    return {};
  }
}
const durations = lastDurations();
const expectedMs = (file) => durations[where(file)] ?? (where(file).startsWith('test/') ? 20_000 : 1000);

const roots = process.argv.length > 2 ? process.argv.slice(2) : ['dist/src', 'dist/test'];
const found = roots.flatMap((root) => (root.endsWith('.js') ? [root] : findTests(root))).sort();
if (found.length === 0) {
  console.error('no test files found under', roots.join(', '));
  process.exit(1);
}

// Every temp dir the tests make (data dirs, apps, sockets) goes under one dir of this run, so what they leave
// behind, files or processes, is found and removed here.
const runDir = mkdtempSync(join(tmpdir(), 'berth-test-run-'));
// Passable (not listable) by others: a root Berth runs add-on servers as an unprivileged user, which must reach the
// data directories the tests make in here.
chmodSync(runDir, 0o711);
process.env.TMPDIR = runDir;

// Unit tests (beside the code, under dist/src) share processes, UNIT_GROUPS of them balanced by duration, instead of
// one each: a process and the modules every unit test loads cost more than most unit files' tests (80 files: about
// 33 CPU-s one process each, 12 CPU-s in one; docs/testing.md). node:test still names each test's own file.
// Integration tests (dist/test) keep a process each: they start servers and detached processes of their own.
const UNIT_GROUPS = 2;
// A single unit file runs on its own, like an integration test: there is nothing to share a process with.
const units = found.filter((file) => relative(process.cwd(), file).startsWith(join('dist', 'src')));
if (units.length === 1) units.pop();
const groups = Array.from({ length: Math.min(UNIT_GROUPS, units.length) }, () => ({
  files: [],
  ms: 0,
}));
for (const file of [...units].sort((a, b) => expectedMs(b) - expectedMs(a))) {
  const lightest = groups.reduce((a, b) => (b.ms < a.ms ? b : a));
  lightest.files.push(file);
  lightest.ms += expectedMs(file);
}
const groupMs = new Map();
for (const [index, group] of groups.entries()) {
  const entry = join(runDir, `unit-tests-${index + 1}.mjs`);
  // A file that fails to load fails a test named after it; the files after it in the group still run.
  const imports = group.files.map((file) => {
    const url = JSON.stringify(pathToFileURL(file).href);
    const name = JSON.stringify(`loads ${where(file)}`);
    return `try { await import(${url}); } catch (error) { test(${name}, () => { throw error; }); }`;
  });
  writeFileSync(entry, `import { test } from 'node:test';\n${imports.join('\n')}\n`);
  groupNames.set(entry, `unit tests, group ${index + 1} of ${groups.length} (${group.files.length} files)`);
  groupMs.set(entry, group.ms);
}
const grouped = new Set(groups.flatMap((group) => group.files));
const files = [...found.filter((file) => !grouped.has(file)), ...groupMs.keys()].sort(
  (a, b) => (groupMs.get(b) ?? expectedMs(b)) - (groupMs.get(a) ?? expectedMs(a)),
);

const abort = new AbortController();
setMaxListeners(files.length + 10, abort.signal); // node:test listens on it once per file
const stream = run({
  files,
  concurrency: CONCURRENCY,
  timeout: TIMEOUT_MS,
  signal: abort.signal,
});

const counts = { passed: 0, failed: 0, skipped: 0 };
const fileMs = new Map();
const skips = [];
const running = new Map();
const key = (data) => `${data.file ?? ''}\0${data.nesting}\0${data.name}`;

stream.on('test:start', (data) => running.set(key(data), data));
for (const outcome of ['test:pass', 'test:fail']) {
  stream.on(outcome, (data) => {
    running.delete(key(data));
    if (data.nesting === 0 && data.file)
      fileMs.set(data.file, (fileMs.get(data.file) ?? 0) + (data.details.duration_ms ?? 0));
    const suite = data.details.type === 'suite';
    if (data.skip) {
      counts.skipped++;
      skips.push(`${where(data.file)}: ${data.name}: ${data.skip === true ? 'skipped' : data.skip}`);
    } else if (outcome === 'test:fail' && (!suite || data.details.error?.failureType !== 'subtestsFailed'))
      counts.failed++; // a suite fails on its own only through a hook (or a timeout); else its tests count
    else if (outcome === 'test:pass' && !suite) counts.passed++;
  });
}

const started = Date.now();
let stopReason = '';
function stop(reason) {
  if (stopReason) return;
  stopReason = reason;
  const open = [...running.values()].map((d) => `  ${where(d.file)}: ${d.name}`);
  console.error(
    `\n${reason}: stopping the run.${open.length ? ` Started and not finished:\n${open.join('\n')}` : ''}`,
  );
  abort.abort();
}
const deadline = setTimeout(() => stop(`the whole run took more than ${DEADLINE_MS / 1000} s`), DEADLINE_MS);
process.on('SIGINT', () => stop('interrupted'));
process.on('SIGTERM', () => stop('terminated'));

const reporters = { spec, tap, dot };
const reporter = reporters[process.env.BERTH_TEST_REPORTER ?? 'spec'];
if (reporter === undefined) {
  console.error(`BERTH_TEST_REPORTER: expected one of ${Object.keys(reporters).join(', ')}`);
  process.exit(2);
}
const output = stream.compose(reporter);
output.pipe(process.stdout);
await new Promise((resolve) => output.on('end', resolve));
clearTimeout(deadline);

// A test that timed out, or an `after` that did not stop what its suite started, leaves processes behind.
const leftovers = processesIn(runDir);
if (leftovers.length > 0) {
  console.error(`\n${leftovers.length} processes left running by the tests (killed now):`);
  for (const { pid, command } of leftovers) console.error(`  ${pid} ${command.slice(0, 160)}`);
}
for (let round = 0, left = leftovers; left.length > 0 && round < 50; round++) {
  for (const { pid } of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
  left = processesIn(runDir);
}

// A Docker test file killed by its timeout never released the dockerd the tests started: stopped once unused.
try {
  const dockerHost = join(process.cwd(), 'dist', 'test', 'docker-host.js');
  if (existsSync(dockerHost)) {
    const { stopUnusedEngine } = await import(pathToFileURL(dockerHost).href);
    if ((await stopUnusedEngine()) === 'stopped')
      console.error('\nstopped the dockerd the tests had left running');
  }
} catch (error) {
  console.error(`could not stop the tests' dockerd: ${error.message}`);
}

try {
  for (const [file, ms] of fileMs) durations[where(file)] = Math.round(ms);
  mkdirSync(join('node_modules', '.cache'), { recursive: true });
  writeFileSync(DURATIONS_FILE, `${JSON.stringify(durations, null, 1)}\n`);
} catch (error) {
  console.error(`could not keep the files' durations for the next run's order: ${error.message}`);
}

const slow = [...fileMs].filter(([, ms]) => ms >= 500).sort((a, b) => b[1] - a[1]);
console.log(`\nseconds per test file (its tests and suites; ${fileMs.size - slow.length} more under 0.5 s):`);
for (const [file, ms] of slow) console.log(`${(ms / 1000).toFixed(1).padStart(7)}  ${where(file)}`);
if (skips.length > 0) console.log(`\nskipped:\n${skips.map((s) => `  ${s}`).join('\n')}`);
const seconds = ((Date.now() - started) / 1000).toFixed(1);
const ok = counts.failed === 0 && !stopReason && leftovers.length === 0 && counts.passed > 0;
if (ok) rmSync(runDir, { recursive: true, force: true });
else console.log(`\ntemporary files of this run kept in ${runDir}`);
console.log(`\nthe run took ${seconds} s on Node ${process.versions.node}`);
// The last line, alone and plain, as CI tools read it.
console.log(`tests: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
process.exit(ok ? 0 : 1);
