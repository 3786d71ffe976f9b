// `berth deploy` and `berth rollback`: read the spec, build the artifact, and hand the release to the app manager.
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { DeployResult } from '../../domain/api-types.js';
import { BerthError } from '../../domain/errors.js';
import { parseSpec } from '../../domain/spec.js';
import type { AppManager } from '../app-manager.js';
import type { ArtifactBuilder } from './artifact-builder.js';

export class Deployer {
  readonly #apps: AppManager;
  readonly #builder: ArtifactBuilder;

  constructor(apps: AppManager, builder: ArtifactBuilder) {
    this.#apps = apps;
    this.#builder = builder;
  }

  /**
   * Builds `directory` (its `berth.yaml`, or `specFile` in it) into an artifact and deploys it as a new release.
   * A bad spec or a failed build creates no release and changes nothing that runs.
   */
  async deploy(directory: string, actor: string, specFile = 'berth.yaml'): Promise<DeployResult> {
    if (!isAbsolute(directory))
      throw new BerthError('invalid_request', `${directory}: must be an absolute path`);
    const specPath = join(directory, specFile);
    if (!existsSync(specPath)) {
      throw new BerthError('invalid_spec', `${specPath}: no such file; a deploy needs a berth.yaml`);
    }
    const procfilePath = join(directory, 'Procfile');
    const spec = parseSpec(readFileSync(specPath, 'utf8'), {
      file: specFile,
      ...(existsSync(procfilePath) ? { procfile: readFileSync(procfilePath, 'utf8') } : {}),
    });
    // Refuse before a long build rather than after it; apply checks again in its transaction.
    this.#apps.assertNotDeploying(spec.app);
    const artifact = await this.#builder.build(directory, spec);
    const result = this.#apps.apply(spec, artifact.dir, actor, { artifactDigest: artifact.digest });
    return {
      ...result,
      build: { digest: artifact.digest, commands: artifact.commands, output: artifact.output },
    };
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
