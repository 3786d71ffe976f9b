// `berth deploy` and `berth rollback`: read the spec, build the artifact, run the release phase, hand the release
// to the app manager. Split into build and release so a pipeline can build first and release on promote.
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, isAbsolute, join, relative, resolve } from 'node:path';
import type { ApplyResult, DeployResult } from '../../domain/api-types.js';
import { BerthError } from '../../domain/errors.js';
import { appNameFrom, releaseCommandsOf, specFromProcfile } from '../../domain/heroku.js';
import { pemProblem } from '../../domain/route-table.js';
import { type AppSpec, parseSpec } from '../../domain/spec.js';
import type { AppManager } from '../app-manager.js';
import type { ReleaseImages } from '../images/release-images.js';
import { unpinnedImages } from '../kube/kube-manifests.js';
import type { Artifact, ArtifactBuilder } from './artifact-builder.js';

/** A built, not yet released, app: what `Deployer.release` makes live. */
export interface PreparedRelease {
  spec: AppSpec;
  artifact: Artifact;
  /** Heroku's release phase: the Procfile's `release:` and app.json `scripts.postdeploy`, in that order. */
  releaseCommands: string[];
}

/** Runs release-phase commands in an artifact; throws (`release_failed`) when one fails, so nothing changes. */
export interface ReleasePhase {
  run(
    spec: AppSpec,
    artifactDir: string,
    commands: string[],
    onOutput?: (text: string) => void,
  ): Promise<string>;
}

/** Optional collaborators of the deployer. */
export interface DeployerOptions {
  releasePhase?: ReleasePhase;
  /**
   * Names of the app's secrets. A Procfile-only app gets them all, as a Heroku app gets every config var; an app
   * with a berth.yaml names the ones each service needs.
   */
  appSecrets?: (app: string) => string[];
  /** Provisions the add-ons a spec declares (`addons:`) before its release, so their URLs are in it. */
  addons?: { ensureDeclared(spec: AppSpec, actor: string): Promise<void> };
  /** Builds, pushes and resolves the images of container apps; without it such apps are refused. */
  images?: ReleaseImages;
}

export interface BuildOptions {
  /** The spec file in the directory; default `berth.yaml`. Without one, a Procfile alone describes the app. */
  specFile?: string;
  /** The app's name when the spec comes from a Procfile (default: from the directory's name). */
  app?: string;
  /**
   * How errors name the spec file: by its path, for a directory on this machine (`berth deploy`), or by its name
   * in the directory (default), for a tree that only exists in a scratch copy (a git push).
   */
  fileNames?: 'path' | 'name';
  /** Build output as it comes (the pipeline streams it); it is also in the artifact's `output`. */
  onOutput?: (text: string) => void;
  /**
   * The release goes to a Kubernetes target: images pinned by digest go as they are (as `berth deploy --target`
   * sends them), so no Docker engine is needed on this machine for them.
   */
  toCluster?: boolean;
}

export class Deployer {
  readonly #apps: AppManager;
  readonly #builder: ArtifactBuilder;
  readonly #options: DeployerOptions;

  constructor(apps: AppManager, builder: ArtifactBuilder, options: DeployerOptions = {}) {
    this.#apps = apps;
    this.#builder = builder;
    this.#options = options;
  }

  /**
   * Builds `directory` (its `berth.yaml`, or `specFile` in it) into an artifact and deploys it as a new release.
   * A bad spec, a failed build or a failed release phase creates no release and changes nothing that runs.
   */
  async deploy(directory: string, actor: string, specFile = 'berth.yaml'): Promise<DeployResult> {
    const prepared = await this.build(directory, { specFile, fileNames: 'path' });
    const { result, releaseOutput } = await this.release(prepared, actor);
    const output =
      releaseOutput === '' ? prepared.artifact.output : `${prepared.artifact.output}${releaseOutput}`;
    return {
      ...result,
      build: {
        digest: prepared.artifact.digest,
        commands: [...prepared.artifact.commands, ...prepared.releaseCommands],
        output,
      },
    };
  }

  /** Reads the app's spec (berth.yaml, else the Procfile alone) and release phase from `directory`. */
  readSource(directory: string, options: BuildOptions = {}): { spec: AppSpec; releaseCommands: string[] } {
    if (!isAbsolute(directory))
      throw new BerthError('invalid_request', `${directory}: must be an absolute path`);
    const specFile = options.specFile ?? 'berth.yaml';
    const specPath = specPathIn(directory, specFile);
    const procfilePath = join(directory, 'Procfile');
    const procfile = existsSync(procfilePath) ? readFileSync(procfilePath, 'utf8') : undefined;
    const appJsonPath = join(directory, 'app.json');
    const appJson = existsSync(appJsonPath) ? readFileSync(appJsonPath, 'utf8') : undefined;
    let spec: AppSpec;
    if (existsSync(specPath)) {
      // `berth deploy` errors name the file as deployed, so the position can be opened as it is.
      const byPath = options.fileNames === 'path';
      spec = parseSpec(readFileSync(specPath, 'utf8'), {
        file: byPath ? specPath : specFile,
        context: { dockerfile: existsSync(join(directory, 'Dockerfile')) },
        ...(procfile === undefined ? {} : { procfile, procfileName: byPath ? procfilePath : 'Procfile' }),
      });
    } else if (procfile !== undefined && options.specFile === undefined) {
      const app = options.app ?? appNameFrom(basename(directory));
      spec = specFromProcfile(app, procfile, this.#options.appSecrets?.(app) ?? []);
    } else {
      throw new BerthError(
        'invalid_spec',
        `${specPath}: no such file; a deploy needs a berth.yaml (or a Procfile)`,
      );
    }
    return {
      spec: withOriginCas(spec, directory, specFile),
      releaseCommands: releaseCommandsOf(procfile, appJson),
    };
  }

  /** Reads and builds `directory` into an artifact; nothing is released. */
  async build(directory: string, options: BuildOptions = {}): Promise<PreparedRelease> {
    const { spec, releaseCommands } = this.readSource(directory, options);
    // Refuse before a long build rather than after it; apply checks again in its transaction.
    this.#apps.assertNotDeploying(spec.app);
    const images = this.#options.images;
    const asTheyAre = options.toCluster === true && unpinnedImages(spec).length === 0;
    if (spec.runtime === 'docker') {
      if (images === undefined) throw new BerthError('internal', 'this control plane runs no containers');
      if (!asTheyAre) await images.assertAvailable(spec.app);
      if (releaseCommands.length > 0) {
        throw new BerthError(
          'invalid_spec',
          `${spec.app} runs on the docker runtime, where a release phase (Procfile "release:", app.json postdeploy) is not run yet: run it in the image's command instead`,
        );
      }
    }
    const artifact = await this.#builder.build(directory, spec);
    if (spec.runtime !== 'docker' || images === undefined || asTheyAre) {
      if (artifact.output !== '') options.onOutput?.(artifact.output);
      return { spec, artifact, releaseCommands };
    }
    // The copy of the directory (minus ignored files) is the build context, and its digest tags the images.
    const built = await images.build(spec, artifact.dir, artifact.digest, options.onOutput);
    return {
      spec: built.spec,
      artifact: {
        ...artifact,
        output: `${artifact.output}${built.output}`,
        commands: [...artifact.commands, ...built.commands],
      },
      releaseCommands,
    };
  }

  /** Runs the release phase, then makes the built artifact the app's new release (and deployment). */
  async release(
    prepared: PreparedRelease,
    actor: string,
    onOutput?: (text: string) => void,
  ): Promise<{ result: ApplyResult; releaseOutput: string }> {
    const { spec, artifact, releaseCommands } = prepared;
    this.#apps.assertNotDeploying(spec.app);
    // Before the release phase (migrations need the database) and the release (its instances get the URLs).
    await this.#options.addons?.ensureDeclared(spec, actor);
    let releaseOutput = '';
    if (releaseCommands.length > 0) {
      if (!this.#options.releasePhase)
        throw new BerthError('internal', 'this control plane runs no release phase');
      releaseOutput = await this.#options.releasePhase.run(spec, artifact.dir, releaseCommands, onOutput);
    }
    const result = this.#apps.apply(spec, artifact.dir, actor, { artifactDigest: artifact.digest });
    return { result, releaseOutput };
  }

  /** Deploys release `version` (default: the one before the current) again, as a new release number. */
  rollback(app: string, actor: string, version?: number): DeployResult {
    const target = this.#apps.rollbackTarget(app, version);
    const result = this.#apps.apply(target.spec, target.sourceDir, actor, {
      ...(target.artifactDigest === null ? {} : { artifactDigest: target.artifactDigest }),
      kind: 'rollback',
      description: `rollback to v${target.version}`,
    });
    return { ...result, build: null };
  }
}

/**
 * The spec file `name` inside `directory`: a plain file name (no path), and a regular file that really is in the
 * directory (a symbolic link may not lead out of it), so a deploy cannot be pointed at any file the control plane
 * can read.
 */
function specPathIn(directory: string, name: string): string {
  if (name === '' || name === '.' || name === '..' || basename(name) !== name || /[\\/\0]/.test(name)) {
    throw new BerthError(
      'invalid_request',
      `${name}: the spec file must be a plain file name inside ${directory}`,
      {
        issues: [
          { path: 'file', message: 'must be a plain file name inside the directory, e.g. berth.yaml' },
        ],
      },
    );
  }
  const path = join(directory, name);
  if (!existsSync(path)) return path;
  const real = realpathSync(path);
  const inside = relative(realpathSync(directory), real);
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside) || !statSync(real).isFile()) {
    throw new BerthError(
      'invalid_request',
      `${path}: the spec file must be a regular file inside ${directory}`,
      {
        issues: [
          { path: 'file', message: 'must be a regular file inside the directory (not a link out of it)' },
        ],
      },
    );
  }
  return path;
}

/**
 * The spec with each origin's `ca:` file (a path in the app directory) read into it: the release carries the CA it
 * was made with, and the proxy never reads the app's files.
 */
function withOriginCas(spec: AppSpec, directory: string, specFile: string): AppSpec {
  if (spec.origins === undefined) return spec;
  const issues: { path: string; message: string }[] = [];
  const origins = Object.fromEntries(
    Object.entries(spec.origins).map(([name, origin]) => {
      if (origin.ca === undefined) return [name, origin];
      const path = resolve(directory, origin.ca);
      try {
        const pem = readFileSync(path, 'utf8');
        // Every certificate of the bundle must parse: a broken one would only show as "not trusted" later.
        const problem = pemProblem(pem);
        if (problem !== undefined) throw new Error(problem);
        return [name, { ...origin, caPem: pem }];
      } catch (error) {
        const reason =
          (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
        issues.push({ path: `origins.${name}.ca`, message: `${origin.ca}: ${reason}` });
        return [name, origin];
      }
    }),
  );
  if (issues.length > 0)
    throw new BerthError(
      'invalid_spec',
      `${specFile}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      {
        issues,
      },
    );
  return { ...spec, origins };
}
