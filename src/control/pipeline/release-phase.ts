// Heroku's release phase: commands run in the built artifact, with the app's environment, before it takes traffic.
import { BerthError } from '../../domain/errors.js';
import type { AppSpec } from '../../domain/spec.js';
import type { ReleasePhase } from '../deploy/deployer.js';
import { type JobResult, runJob, succeeded } from './job-runner.js';

/** What the pipeline needs of the secrets module. */
export interface PipelineSecrets {
  /** Throws `not_found` naming the missing ones. */
  resolve(app: string, names: readonly string[]): Record<string, string>;
  configVars(app: string): Record<string, string>;
}

export interface CommandReleasePhaseOptions {
  secrets: PipelineSecrets;
  scrub(text: string): string;
  /** PATH, HOME, ... */
  baseEnv: Record<string, string>;
}

/** Lines of output kept in the error of a failed release phase. */
const OUTPUT_TAIL_LINES = 40;

/** A release-phase command that did not succeed: which one and how it ended, for callers to decide on. */
export class ReleasePhaseFailed extends BerthError {
  readonly command: string;
  readonly result: JobResult;

  constructor(command: string, result: JobResult, output: string) {
    super('release_failed', `release phase failed: \`${command}\` ${result.reason}`, {
      issues: [
        { path: 'release', message: output.trimEnd().split('\n').slice(-OUTPUT_TAIL_LINES).join('\n') },
      ],
    });
    this.command = command;
    this.result = result;
  }
}

export class CommandReleasePhase implements ReleasePhase {
  readonly #options: CommandReleasePhaseOptions;

  constructor(options: CommandReleasePhaseOptions) {
    this.#options = options;
  }

  /**
   * The environment of a release-phase command: what the app's instances get (config vars and the secrets its
   * services name) plus the pipeline's secrets, since migrations need the database URL.
   */
  env(spec: AppSpec): Record<string, string> {
    const names = new Set([
      ...Object.values(spec.services).flatMap((s) => s.secrets),
      ...spec.pipeline.secrets,
    ]);
    return {
      ...this.#options.baseEnv,
      ...this.#options.secrets.configVars(spec.app),
      ...this.#options.secrets.resolve(spec.app, [...names]),
      BERTH_APP: spec.app,
      BERTH_RELEASE_PHASE: '1',
    };
  }

  async run(
    spec: AppSpec,
    artifactDir: string,
    commands: string[],
    onOutput?: (text: string) => void,
    signal?: AbortSignal,
  ): Promise<string> {
    const env = this.env(spec);
    let output = '';
    for (const command of commands) {
      output += `$ ${command}\n`;
      const result = await runJob({
        command,
        cwd: artifactDir,
        env,
        timeoutMs: spec.pipeline.timeoutMs,
        scrub: this.#options.scrub,
        onOutput: (text) => {
          output += text;
          onOutput?.(text);
        },
        ...(signal === undefined ? {} : { signal }),
      });
      if (!succeeded(result)) throw new ReleasePhaseFailed(command, result, output);
    }
    return output;
  }
}
