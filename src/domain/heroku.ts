// Heroku compatibility: a spec from a Procfile alone, release-phase commands, and sorting a Heroku config.
import { BerthError } from './errors.js';
import { parseProcfile } from './procfile.js';
import { type AppSpec, validateAppSpec } from './spec.js';

/** Heroku's process type that runs once per release, before the release takes traffic; never a service. */
export const RELEASE_PROCESS_TYPE = 'release';

/** An app name from a repository or directory name: `Shop_API.git` → `shop-api`. */
export function appNameFrom(text: string): string {
  const name = text
    .replace(/\.git$/, '')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63);
  if (name === '')
    throw new BerthError('invalid_request', `cannot make an app name from ${JSON.stringify(text)}`);
  return /^[a-z]/.test(name) ? name : `app-${name}`;
}

/**
 * The spec of an app that has only a Procfile, as Heroku runs it: every process type but `release` is a service
 * with one instance; `web` is routed from `<app>.localhost` and health-checked with the default check. Every
 * service gets `secrets` (the app's secrets: on Heroku every process sees every config var).
 * @throws BerthError `invalid_spec` for a malformed Procfile or one without any process to run.
 */
export function specFromProcfile(
  app: string,
  procfileText: string,
  secrets: readonly string[] = [],
): AppSpec {
  const { processes, issues } = parseProcfile(procfileText);
  if (issues.length > 0) {
    throw new BerthError(
      'invalid_spec',
      `Procfile has ${issues.length} error${issues.length > 1 ? 's' : ''}`,
      {
        issues,
      },
    );
  }
  const types = Object.keys(processes).filter((type) => type !== RELEASE_PROCESS_TYPE);
  if (types.length === 0) {
    throw new BerthError('invalid_spec', 'Procfile defines no process to run (only `release:` or nothing)');
  }
  const services: Record<string, { secrets?: string[] }> = {};
  for (const type of types) services[type] = secrets.length > 0 ? { secrets: [...secrets] } : {};
  return validateAppSpec(
    {
      app,
      routes: processes['web'] === undefined ? [] : [{ host: `${app}.localhost`, service: 'web' }],
      services,
    },
    { procfile: procfileText },
  );
}

/**
 * The release phase of an app, in order: the Procfile's `release:` command, then app.json `scripts.postdeploy`.
 * `appJsonText` that is not valid JSON is an `invalid_spec` error (Heroku refuses it too).
 */
export function releaseCommandsOf(
  procfileText: string | undefined,
  appJsonText: string | undefined,
): string[] {
  const commands: string[] = [];
  const release =
    procfileText === undefined ? undefined : parseProcfile(procfileText).processes[RELEASE_PROCESS_TYPE];
  if (release !== undefined) commands.push(release);
  if (appJsonText !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(appJsonText);
    } catch (cause) {
      throw new BerthError('invalid_spec', `app.json: ${(cause as Error).message}`, { cause });
    }
    const scripts = (parsed as { scripts?: unknown } | null)?.scripts;
    const postdeploy = (scripts as { postdeploy?: unknown } | null | undefined)?.postdeploy;
    if (typeof postdeploy === 'string' && postdeploy.trim() !== '') commands.push(postdeploy.trim());
    else if (isCommandObject(postdeploy)) commands.push(postdeploy.command.trim());
  }
  return commands;
}

function isCommandObject(value: unknown): value is { command: string } {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { command?: unknown }).command === 'string' &&
    (value as { command: string }).command.trim() !== ''
  );
}

/**
 * Reads a `heroku config --shell` / `.env` file: `KEY=value` lines, optional `export `, `#` comments, values in
 * single quotes (literal) or double quotes (with `\n`, `\"`, `\\` escapes).
 * @throws BerthError `invalid_request` naming each bad line.
 */
export function parseEnvFile(text: string, file = 'config.env'): Record<string, string> {
  const values: Record<string, string> = {};
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (match === null) {
      problems.push(`${file}:${index + 1}: expected KEY=value`);
      return;
    }
    const key = match[1]!;
    const value = match[2]!;
    if (value.startsWith("'") && value.endsWith("'") && value.length >= 2) values[key] = value.slice(1, -1);
    else if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) {
      values[key] = value.slice(1, -1).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    } else values[key] = value;
  });
  if (problems.length > 0) throw new BerthError('invalid_request', problems.join('; '));
  return values;
}

/**
 * Whether a Heroku config var is a secret: names that say so (`*_KEY`, `*_SECRET`, `*_TOKEN`, `*PASSWORD*`,
 * `DATABASE_URL`), and any URL that carries credentials (`redis://:pw@host`), whatever its name.
 */
export function looksSecret(name: string, value: string): boolean {
  const upper = name.toUpperCase();
  if (/(^|_)(KEY|SECRET|TOKEN)$/.test(upper) || upper.includes('PASSWORD') || upper.includes('PASSWD'))
    return true;
  if (upper === 'DATABASE_URL') return true;
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/@\s]*:[^/@\s]*@/i.test(value)) return true;
  return /^[a-z][a-z0-9+.-]*:\/\/[^/@\s:]+@/i.test(value) && upper.endsWith('_URL');
}

/** A Heroku config split into Berth config vars and secrets. */
export function splitHerokuConfig(values: Record<string, string>): {
  config: Record<string, string>;
  secrets: Record<string, string>;
} {
  const config: Record<string, string> = {};
  const secrets: Record<string, string> = {};
  for (const [name, value] of Object.entries(values)) {
    if (looksSecret(name, value)) secrets[name] = value;
    else config[name] = value;
  }
  return { config, secrets };
}
