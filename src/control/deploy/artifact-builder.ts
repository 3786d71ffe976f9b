// Builds a release artifact: copy the source (minus ignored files), run the build, store it by content digest.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync } from 'node:fs';
import { copyFile, lstat, mkdir, readdir, readFile, symlink } from 'node:fs/promises';
import { join, relative } from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { BerthError } from '../../domain/errors.js';
import type { AppSpec } from '../../domain/spec.js';

/** Never part of an artifact: version control and Berth's own state. */
const ALWAYS_IGNORED = ['.git/', '.berth/'];

/** A build that runs longer than this fails (it likely waits on something that will never come). */
export const DEFAULT_BUILD_TIMEOUT_MS = 10 * 60_000;

/** Lines of build output kept in an error and shown by the CLI when a build fails. */
const OUTPUT_TAIL_LINES = 40;

export interface Artifact {
  /** `sha256:<hex>` of the built tree: paths, modes and contents. */
  digest: string;
  dir: string;
  /** The build's combined output (empty when there was nothing to build). */
  output: string;
  /** The commands that ran, in order. */
  commands: string[];
}

export interface ArtifactBuilderOptions {
  /** Where finished artifacts live, one directory per digest. */
  artifactsDir: string;
  /** Scratch space for builds in progress. */
  buildsDir: string;
  timeoutMs?: number;
  /** Environment of build commands (PATH, HOME, ...). */
  env?: Record<string, string>;
}

export class ArtifactBuilder {
  readonly #options: ArtifactBuilderOptions;

  constructor(options: ArtifactBuilderOptions) {
    this.#options = options;
    mkdirSync(options.artifactsDir, { recursive: true });
    mkdirSync(options.buildsDir, { recursive: true });
  }

  /** Copies `sourceDir`, builds it and stores the result. A failed build leaves nothing behind. */
  async build(sourceDir: string, spec: AppSpec): Promise<Artifact> {
    if (!existsSync(sourceDir)) throw new BerthError('invalid_request', `${sourceDir}: no such directory`);
    const staging = join(
      this.#options.buildsDir,
      `build-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`,
    );
    try {
      await copyTree(sourceDir, staging, ignoreRulesOf(sourceDir));
      const commands = buildCommandsFor(spec, staging);
      let output = '';
      for (const command of commands) {
        output += `$ ${command}\n`;
        const result = await runBuildCommand(
          command,
          staging,
          this.#options.env ?? {},
          this.#options.timeoutMs,
        );
        output += result.output;
        if (result.code !== 0) {
          throw new BerthError('build_failed', `build failed: \`${command}\` ${result.reason}`, {
            issues: [{ path: 'build', message: tailLines(output, OUTPUT_TAIL_LINES) }],
          });
        }
      }
      const hex = await digestTree(staging);
      const dir = join(this.#options.artifactsDir, hex);
      if (existsSync(dir)) rmSync(staging, { recursive: true, force: true });
      else renameSync(staging, dir);
      return { digest: `sha256:${hex}`, dir, output, commands };
    } catch (error) {
      rmSync(staging, { recursive: true, force: true });
      throw error;
    }
  }

  /** Removes artifacts whose digest is not in `keep`. Returns the removed digests. */
  prune(keep: ReadonlySet<string>): string[] {
    const removed: string[] = [];
    for (const name of readdirSync(this.#options.artifactsDir)) {
      if (keep.has(`sha256:${name}`)) continue;
      rmSync(join(this.#options.artifactsDir, name), { recursive: true, force: true });
      removed.push(`sha256:${name}`);
    }
    return removed;
  }
}

/**
 * What to run: each service's `build` (once each, in order), else for a Node app `npm ci` when a lockfile exists
 * and `npm run build` when package.json has that script; nothing for a container app (its Dockerfile builds).
 */
export function buildCommandsFor(spec: AppSpec, dir: string): string[] {
  // In a container app the Dockerfile is the build: nothing of it runs on this machine.
  if (spec.runtime === 'docker') return [];
  const explicit = [...new Set(Object.values(spec.services).flatMap((s) => (s.build ? [s.build] : [])))];
  if (explicit.length > 0) return explicit;
  const packagePath = join(dir, 'package.json');
  if (!existsSync(packagePath)) return [];
  const commands: string[] = [];
  if (existsSync(join(dir, 'package-lock.json')) || existsSync(join(dir, 'npm-shrinkwrap.json'))) {
    commands.push('npm ci');
  }
  const pkg = JSON.parse(readFileSync(packagePath, 'utf8')) as { scripts?: Record<string, string> };
  if (pkg.scripts?.build) commands.push('npm run build');
  return commands;
}

/** Rules from `.gitignore` and `.berthignore` at the top of the source (nested ignore files are not read). */
function ignoreRulesOf(sourceDir: string): Ignore {
  const rules = ignore().add(ALWAYS_IGNORED);
  for (const file of ['.gitignore', '.berthignore']) {
    const path = join(sourceDir, file);
    if (existsSync(path)) rules.add(readFileSync(path, 'utf8'));
  }
  return rules;
}

async function copyTree(sourceRoot: string, targetRoot: string, rules: Ignore): Promise<void> {
  async function copyDir(dir: string): Promise<void> {
    const target = join(targetRoot, relative(sourceRoot, dir));
    await mkdir(target, { recursive: true });
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const from = join(dir, entry.name);
      const rel = relative(sourceRoot, from);
      if (rules.ignores(entry.isDirectory() ? `${rel}/` : rel)) continue;
      if (entry.isDirectory()) await copyDir(from);
      else if (entry.isSymbolicLink()) await symlink(readlinkSync(from), join(targetRoot, rel));
      else if (entry.isFile()) await copyFile(from, join(targetRoot, rel));
    }
  }
  await copyDir(sourceRoot);
}

/** sha256 over every path (sorted), its kind and mode, and its content or link target. */
export async function digestTree(root: string): Promise<string> {
  const hash = createHash('sha256');
  async function walk(dir: string): Promise<void> {
    const entries = (await readdir(dir)).sort();
    for (const name of entries) {
      const path = join(dir, name);
      const rel = relative(root, path);
      const stat = await lstat(path);
      if (stat.isDirectory()) {
        hash.update(`d\0${rel}\0`);
        await walk(path);
      } else if (stat.isSymbolicLink()) {
        hash.update(`l\0${rel}\0${readlinkSync(path)}\0`);
      } else if (stat.isFile()) {
        hash.update(`f\0${rel}\0${(stat.mode & 0o111) !== 0 ? 'x' : '-'}\0${stat.size}\0`);
        hash.update(await readFile(path));
      }
    }
  }
  await walk(root);
  return hash.digest('hex');
}

function runBuildCommand(
  command: string,
  cwd: string,
  env: Record<string, string>,
  timeoutMs = DEFAULT_BUILD_TIMEOUT_MS,
): Promise<{ code: number; output: string; reason: string }> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    const append = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
    };
    child.stdout.on('data', append);
    child.stderr.on('data', append);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({
        code: 127,
        output: `${output}${error.message}\n`,
        reason: `could not run: ${error.message}`,
      });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const reason = timedOut
        ? `timed out after ${Math.round(timeoutMs / 1000)}s`
        : signal
          ? `was killed by ${signal}`
          : `exited with code ${code}`;
      resolve({ code: timedOut ? 124 : (code ?? 1), output, reason });
    });
  });
}

function tailLines(text: string, count: number): string {
  const lines = text.trimEnd().split('\n');
  return lines.slice(-count).join('\n');
}
