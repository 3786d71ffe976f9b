// Release images: built from the app's Dockerfile (or taken from `image:`), tagged with the release's content
// digest, pushed to the registry, recorded by digest; pulled back when missing; pruned when no release needs them.
import { BerthError } from '../../domain/errors.js';
import type { AppSpec, RegistrySpec, ServiceSpec } from '../../domain/spec.js';
import type { Logger } from '../../lib/logger.js';
import { buildContext } from '../docker/build-context.js';
import {
  DOCKER_INSTALL_HINT,
  type DockerEngine,
  type ProgressMessage,
  type RegistryAuth,
  splitReference,
} from '../docker/docker-engine.js';
import type { LocalRegistry } from './local-registry.js';

/** Repositories of release images in Berth's registry: `<registry>/berth/<app>/<service>`. */
const REPOSITORY_PREFIX = 'berth/';

export interface ReleaseImagesOptions {
  engine: DockerEngine;
  registry: LocalRegistry;
  log: Logger;
  /** The app's secrets (a registry password is one): throws `not_found` naming a missing one. */
  secrets?: { resolve(app: string, names: readonly string[]): Record<string, string> };
  /** The registry an app's current release names, to log in for a pull. */
  registryOf?: (app: string) => RegistrySpec | undefined;
}

/** Where a release's images go: the repository root and the login for it. */
interface Destination {
  /** `host[:port]/berth/<app>` (Berth's registry) or `<url>/<app>`. */
  root: string;
  auth: RegistryAuth | undefined;
  local: boolean;
}

/** What a build of a release's images made: the spec with each image resolved to its digest, and the output. */
export interface BuiltImages {
  spec: AppSpec;
  /** Per service: `registry/berth/app/service@sha256:…`. */
  images: Record<string, string>;
  output: string;
  /** What ran, as docker commands: `docker build -f Dockerfile .`, `docker push …`. */
  commands: string[];
}

export class ReleaseImages {
  readonly #engine: DockerEngine;
  readonly #registry: LocalRegistry;
  readonly #log: Logger;
  readonly #options: ReleaseImagesOptions;

  constructor(options: ReleaseImagesOptions) {
    this.#engine = options.engine;
    this.#registry = options.registry;
    this.#log = options.log;
    this.#options = options;
  }

  /** The login for `registry` of `app`, its password read from the app's sealed secret. */
  #login(app: string, registry: RegistrySpec): RegistryAuth | undefined {
    if (registry.username === undefined || registry.passwordSecret === undefined) return undefined;
    const secrets = this.#options.secrets;
    if (!secrets) throw new BerthError('internal', 'registry logins need the secrets service');
    const password = secrets.resolve(app, [registry.passwordSecret])[registry.passwordSecret]!;
    return { username: registry.username, password, serveraddress: registry.url.split('/')[0]! };
  }

  async #destination(spec: AppSpec): Promise<Destination> {
    if (spec.registry !== undefined)
      return {
        root: `${spec.registry.url}/${spec.app}`,
        auth: this.#login(spec.app, spec.registry),
        local: false,
      };
    return {
      root: `${await this.#registry.address()}/${REPOSITORY_PREFIX}${spec.app}`,
      auth: undefined,
      local: true,
    };
  }

  /** Refuses, naming what to install, when an app needs containers and no engine answers. */
  async assertAvailable(app: string): Promise<void> {
    const probe = await this.#engine.probe();
    if (!probe.ok) {
      throw new BerthError(
        'runtime_failure',
        `${app} runs on the docker runtime, but ${probe.reason}: ${DOCKER_INSTALL_HINT}; or set "runtime: process" in berth.yaml to run it as processes`,
      );
    }
  }

  /**
   * Builds (or takes) each service's image, tags it with the release's content digest (`artifactDigest`), pushes
   * it and resolves the spec's images to the digests the registry gave. Output lines go to `onOutput` as they come.
   * A failed build or push throws `build_failed` with the output's tail; nothing is released.
   */
  async build(
    spec: AppSpec,
    contextDir: string,
    artifactDigest: string,
    onOutput: (text: string) => void = () => {},
  ): Promise<BuiltImages> {
    await this.assertAvailable(spec.app);
    // A missing registry password is refused here, before anything is built.
    const destination = await this.#destination(spec);
    let output = '';
    const commands: string[] = [];
    const say = (text: string): void => {
      output += text;
      onOutput(text);
    };
    const content = artifactDigest.replace(/^sha256:/, '');
    const services: Record<string, ServiceSpec> = {};
    const images: Record<string, string> = {};
    /** A Dockerfile shared by services is built once. */
    const built = new Map<string, string>();
    try {
      for (const [name, service] of Object.entries(spec.services)) {
        const repository = `${destination.root}/${name}`;
        let source: string;
        let tag: string;
        if (service.dockerfile !== undefined) {
          tag = content;
          source = built.get(service.dockerfile) ?? '';
          if (source === '') {
            commands.push(`docker build -f ${service.dockerfile} .`);
            say(`$ docker build -f ${service.dockerfile} . (${name})\n`);
            source = await this.#engine.buildImage(
              buildContext(contextDir),
              {
                dockerfile: service.dockerfile,
                tag: `${repository}:${tag}`,
                labels: { 'berth.app': spec.app },
              },
              (message) => say(progressLine(message)),
            );
            built.set(service.dockerfile, source);
          }
        } else if (service.image !== undefined) {
          say(`$ docker pull ${service.image} (${name}, if not on this machine)\n`);
          if ((await this.#engine.inspectImage(service.image)) === null)
            await this.#engine.pullImage(service.image, undefined, (message) => say(progressLine(message)));
          const info = await this.#engine.inspectImage(service.image);
          if (!info) throw new BerthError('build_failed', `${service.image}: not found after the pull`);
          source = info.Id;
          // The same image keeps the same tag: a redeploy of an unchanged `image:` is no change.
          tag = `image-${info.Id.replace(/^sha256:/, '')}`;
        } else {
          throw new BerthError('internal', `${spec.app}/${name}: no image and no Dockerfile`);
        }
        await this.#engine.tagImage(source, repository, tag);
        commands.push(`docker push ${repository}:${tag}`);
        say(`$ docker push ${repository}:${tag}\n`);
        const push = () =>
          this.#engine.pushImage(repository, tag, destination.auth, (message) => {
            if (message.status && message.id === undefined) say(`${message.status}\n`);
          });
        const digest = destination.local ? await this.#registry.use(push) : await push();
        images[name] = `${repository}@${digest}`;
        say(`${name}: ${images[name]}\n`);
        services[name] = { ...service, image: images[name]! };
      }
    } catch (error) {
      if (error instanceof BerthError && error.code === 'internal') throw error;
      const reason = (error as Error).message;
      throw new BerthError('build_failed', `image build failed: ${reason}`, {
        cause: error,
        issues: [{ path: 'build', message: tail(`${output}${reason}\n`, 40) }],
      });
    }
    return { spec: { ...spec, services }, images, output, commands };
  }

  /**
   * Makes sure `image` is on this machine: pulled from its registry when it is not (e.g. after `docker rmi`), with
   * the login of `app`'s registry when the image is there.
   */
  async ensure(image: string, app?: string): Promise<void> {
    if ((await this.#engine.inspectImage(image)) !== null) return;
    this.#log.info({ image }, 'pulling a release image that is not on this machine');
    if (await this.#isOurs(image)) {
      await this.#registry.use(() => this.#engine.pullImage(image));
      return;
    }
    const registry = app === undefined ? undefined : this.#options.registryOf?.(app);
    const auth =
      registry !== undefined && app !== undefined && image.startsWith(`${registry.url}/`)
        ? this.#login(app, registry)
        : undefined;
    await this.#engine.pullImage(image, auth);
  }

  /**
   * Deletes the release images no release in `keep` (image references with digests) needs, from the registry and
   * from this machine, then frees their storage. Returns the references removed.
   */
  async prune(keep: ReadonlySet<string>): Promise<string[]> {
    // Apps that never ran a container never started the registry: nothing to prune, nothing to start.
    if (!this.#registry.exists) return [];
    const registry = await this.#registry.address();
    const removed: string[] = [];
    for (const { repository, tag, digest } of await this.#registry.list(REPOSITORY_PREFIX)) {
      const ref = `${registry}/${repository}@${digest}`;
      if (keep.has(ref)) continue;
      await this.#registry.deleteManifest(repository, digest);
      // Untagged here too; an image a container still runs stays (the engine refuses, and that is right).
      await this.#engine.removeImage(`${registry}/${repository}:${tag}`).catch(() => false);
      removed.push(ref);
    }
    if (removed.length > 0) await this.#registry.collectGarbage();
    return removed;
  }

  async #isOurs(image: string): Promise<boolean> {
    const { repository } = splitReference(image);
    return repository.startsWith(`${await this.#registry.address()}/`);
  }
}

/** One line of build or pull output, as `docker build` prints it. */
function progressLine(message: ProgressMessage): string {
  if (message.stream !== undefined) return message.stream;
  if (message.error !== undefined) return `${message.error}\n`;
  if (message.status !== undefined && message.progress === undefined)
    return `${message.id ? `${message.id}: ` : ''}${message.status}\n`;
  return '';
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
