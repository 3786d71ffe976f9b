// The app's secrets as its services get them: what each names, plus the URLs of the app's add-ons (attached to all).
import type { ReleaseSecrets } from '../app-manager.js';
import type { InstanceSecrets } from '../reconcile/reconciler.js';

type Secrets = ReleaseSecrets & InstanceSecrets;

/**
 * Heroku attaches an add-on's config var to every dyno; here an add-on's URL secret joins the secrets every
 * service of its app names. Through this one wrapper both the release path (the config hash covers the URL's
 * version, so a rotation or a new add-on rolls the services) and the reconciler (the value in each instance's
 * environment, scrubbed from its output) see it; neither knows add-ons exist.
 */
export class AttachedSecrets implements Secrets {
  readonly #secrets: Secrets;
  readonly #attached: (app: string) => readonly string[];

  constructor(secrets: Secrets, attached: (app: string) => readonly string[]) {
    this.#secrets = secrets;
    this.#attached = attached;
  }

  resolve(app: string, names: readonly string[]): Record<string, string> {
    return this.#secrets.resolve(app, this.#with(app, names));
  }

  versions(app: string, names: readonly string[]): Record<string, number> {
    return this.#secrets.versions(app, this.#with(app, names));
  }

  configVars(app: string): Record<string, string> {
    return this.#secrets.configVars(app);
  }

  #with(app: string, names: readonly string[]): string[] {
    const attached = this.#attached(app).filter((name) => !names.includes(name));
    return attached.length === 0 ? [...names] : [...names, ...attached].sort();
  }
}
