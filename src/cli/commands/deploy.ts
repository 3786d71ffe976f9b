// `berth deploy [dir]`, `berth apply -f file`, `berth rollback`, `berth releases`: releases and live deploy progress.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import type { DeployResult, ServiceStatus } from '../../domain/api-types.js';
import { canaryWeight, type Deployment, describeWindows } from '../../domain/deployment.js';
import { BerthError } from '../../domain/errors.js';
import type { AppSpec } from '../../domain/spec.js';
import { formatDuration, parseDuration } from '../../lib/duration.js';
import type { ApiClient } from '../client.js';
import type { CliContext } from '../context.js';
import { formatTime, printJson, printTable, UsageError } from '../output.js';

interface FollowOptions {
  wait: boolean;
  timeout: string;
  json?: boolean;
}

interface CanaryOptions {
  promote?: boolean;
  abort?: boolean;
}

export function registerDeploy(program: Command, context: CliContext): void {
  const followOptions = (command: Command): Command =>
    command
      .option('--no-wait', 'return once the release is made, without following the deployment')
      .option('--timeout <duration>', 'how long to follow the deployment', '5m')
      .option('--json', 'print the result as JSON');

  followOptions(
    program
      .command('deploy')
      .description(
        'build a directory into a release and roll it out, health-gated, with automatic rollback; ' +
          '`deploy status APP` explains the current deployment; --promote/--abort APP act on a running canary',
      )
      .argument('[dir]', 'the app directory (with berth.yaml)', '.')
      .argument('[app]', 'with `status`: the app')
      .option(
        '--target <name>',
        'deploy to this Kubernetes target (`berth targets add`) instead of this machine',
      )
      .option('--promote', "the app's running canary: its next step now (the argument is the app)")
      .option(
        '--abort',
        "the app's running canary: every request back to the old release, new instances stopped",
      ),
  ).action(
    async (
      dir: string,
      app: string | undefined,
      options: FollowOptions & CanaryOptions & { target?: string },
    ) => {
      const client = context.client();
      if (options.promote || options.abort) {
        if (options.promote && options.abort)
          throw new UsageError('--promote and --abort exclude each other');
        const name = await appArgument(dir);
        const deployment = await client.canary(name, options.promote ? 'promote' : 'abort');
        if (options.json) return printJson(deployment);
        const decision = deployment.canary?.last;
        process.stdout.write(
          options.abort
            ? `${name}: canary v${deployment.toRelease} aborted; every request goes to v${deployment.fromRelease} again\n`
            : deployment.state === 'canary'
              ? `${name}: v${deployment.toRelease} now gets ${canaryWeight(deployment.canary!)}% of requests\n`
              : `${name}: v${deployment.toRelease} promoted past its last step; v${deployment.fromRelease} drains\n`,
        );
        if (decision) process.stdout.write(`  ${describeWindows(decision)}\n`);
        return;
      }
      if (dir === 'status' && app !== undefined) {
        const view = await client.currentDeployment(app);
        if (options.json) return printJson(view);
        for (const line of explainDeployment(view.deployment, view.status.services))
          process.stdout.write(`${line}\n`);
        return;
      }
      if (app !== undefined) throw new UsageError(`unexpected argument ${app}`);
      const directory = resolve(dir);
      if (!existsSync(directory) || !statSync(directory).isDirectory())
        throw new UsageError(`${dir}: not a directory`);
      await report(client, await client.deploy(directory, undefined, options.target), options);
    },
  );

  followOptions(
    program
      .command('apply')
      .description('deploy the app a spec file describes (its directory is the source)')
      .option('-f, --file <path>', 'the app spec', 'berth.yaml'),
  ).action(async (options: FollowOptions & { file: string }) => {
    const path = resolve(options.file);
    if (!existsSync(path)) throw new BerthError('invalid_spec', `${options.file}: no such file`);
    const client = context.client();
    await report(client, await client.deploy(dirname(path), basename(path)), options);
  });

  followOptions(
    program
      .command('rollback')
      .description('deploy an earlier release again (as a new release), through the same health-gated path')
      .argument('<app>', 'the app')
      .argument('[release]', 'e.g. v3 (default: the release before the current one)'),
  ).action(async (app: string, release: string | undefined, options: FollowOptions) => {
    const version = release === undefined ? undefined : parseRelease(release);
    const client = context.client();
    await report(client, await client.rollback(app, version), options);
  });

  program
    .command('releases')
    .description("list an app's releases and how their deployments ended")
    .argument('<app>', 'the app')
    .option('--json', 'print as JSON')
    .action(async (app: string, options: { json?: boolean }) => {
      const releases = await context.client().releases(app);
      if (options.json) return printJson(releases);
      printTable(
        ['release', 'created', 'artifact', 'image', 'deployment', 'description'],
        releases.map((r) => [
          `v${r.version}`,
          formatTime(r.createdAt),
          r.artifactDigest?.slice(0, 19) ?? '-',
          imageDigests(r.spec),
          r.deployment?.state ?? '-',
          r.description,
        ]),
      );
    });
}

/**
 * The image digest a release runs (`sha256:` + 12 hex digits, the form `docker images --digests` shortens to), or
 * one per service when they differ; `-` for a release of processes.
 */
export function imageDigests(spec: AppSpec): string {
  const digests = new Map<string, string[]>();
  for (const [name, service] of Object.entries(spec.services)) {
    const at = service.image?.indexOf('@sha256:') ?? -1;
    if (service.image === undefined || at === -1) continue;
    const digest = service.image.slice(at + 1, at + 1 + 'sha256:'.length + 12);
    digests.set(digest, [...(digests.get(digest) ?? []), name]);
  }
  if (digests.size === 0) return '-';
  if (digests.size === 1) return [...digests.keys()][0]!;
  return [...digests].map(([digest, names]) => `${names.join(',')}=${digest}`).join(' ');
}

function parseRelease(text: string): number {
  const match = /^v?(\d+)$/.exec(text);
  if (!match) throw new UsageError(`${text}: expected a release such as v3`);
  return Number(match[1]);
}

/** Prints the release and build, then follows its deployment until it ends; exit code 1 unless it succeeded. */
async function report(client: ApiClient, result: DeployResult, options: FollowOptions): Promise<void> {
  const timeoutMs = parseTimeout(options.timeout);
  if (!options.json) {
    if (result.build && result.build.commands.length > 0) {
      process.stdout.write(
        `built ${result.build.digest.slice(0, 19)} with: ${result.build.commands.join(' && ')}\n`,
      );
    }
    if (!result.created) process.stdout.write(`${result.app}: no changes (v${result.release} is current)\n`);
    else {
      const what = result.description.startsWith('rollback') ? ` (${result.description})` : '';
      process.stdout.write(`${result.app}: release v${result.release}${what}\n`);
      for (const change of result.changes) process.stdout.write(`  ${change}\n`);
    }
  }
  if (result.deployment === null || !options.wait) {
    if (options.json) printJson(result);
    return;
  }
  const deployment = await follow(client, result, timeoutMs, !options.json);
  if (options.json) printJson({ ...result, deployment });
  else if (deployment.state === 'succeeded') {
    process.stdout.write(`v${deployment.toRelease} is live (${seconds(deployment)})\n`);
  } else if (deployment.state === 'in_progress' || deployment.state === 'canary') {
    process.stdout.write(
      `still deploying after ${options.timeout}; follow it with \`berth events ${result.app}\`\n`,
    );
  } else {
    process.stdout.write(
      `deployment ${deployment.state.replace('_', ' ')}${deployment.state === 'rolled_back' ? ` to v${deployment.fromRelease}` : ''}:\n${deployment.reason ?? ''}\n`,
    );
  }
  if (deployment.state !== 'succeeded') process.exitCode = 1;
}

/**
 * Polls the deployment, printing a line per service whenever its progress changes. On a Kubernetes target no
 * instance of the app is on this machine: the lines are the deployer's `deployment.progress` events instead.
 */
async function follow(
  client: ApiClient,
  result: DeployResult,
  timeoutMs: number,
  show: boolean,
): Promise<Deployment> {
  const id = result.deployment!;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  let lastDecision: number | undefined;
  let eventsAfter = result.eventsAfter;
  for (;;) {
    const { deployment, status } = await client.deployment(id);
    const involved = status.services.filter((s) => deployment.services.some((d) => d.name === s.name));
    if (show && involved.length === 0) {
      const events = await client.events({ app: deployment.app, after: eventsAfter, limit: 10_000 });
      for (const event of events) {
        const data = event.data as { deployment?: number; line?: string };
        if (event.kind === 'deployment.progress' && data.deployment === id && data.line !== undefined)
          process.stdout.write(`  ${data.line}\n`);
      }
      eventsAfter = events.at(-1)?.id ?? eventsAfter;
    }
    // The decision first: the step line that follows is its consequence.
    const decided = deployment.canary?.last;
    if (show && decided && decided.at !== lastDecision) {
      process.stdout.write(
        `  ${decided.verdict}: ${decided.reasons.join('; ')} (${describeWindows(decided)})\n`,
      );
      lastDecision = decided.at;
    }
    const line = involved.map((s) => progressOf(s, deployment)).join('  ') + canaryProgress(deployment);
    if (show && line !== last) process.stdout.write(`  ${line}\n`);
    last = line;
    // After a rollback, follow until the previous release is whole again.
    const settled =
      deployment.state !== 'in_progress' &&
      deployment.state !== 'canary' &&
      (deployment.state !== 'rolled_back' || status.converged);
    if (settled || Date.now() >= deadline) return deployment;
    await new Promise((r) => setTimeout(r, 150));
  }
}

function progressOf(service: ServiceStatus, deployment: Deployment): string {
  const failures = deployment.services.find((d) => d.name === service.name)?.failures ?? 0;
  const parts = [`${service.healthy}/${service.desired} new healthy`];
  if (service.starting) parts.push(`${service.starting} starting`);
  if (service.unhealthy) parts.push(`${service.unhealthy} unhealthy`);
  if (service.outdated) parts.push(`${service.outdated} old`);
  if (service.draining) parts.push(`${service.draining} draining`);
  if (failures) parts.push(`${failures} failed`);
  return `${service.name}: ${parts.join(', ')}`;
}

/** ` · canary 25% (step 2/4)` while a canary shifts traffic; empty otherwise. */
function canaryProgress(deployment: Deployment): string {
  const canary = deployment.canary;
  if (canary === null || deployment.state !== 'canary') return '';
  const step = `canary ${canaryWeight(canary)}% (step ${canary.step + 1}/${canary.steps.length})`;
  return canary.windowStartedAt === null
    ? `  · ${step}, waiting for the new release to be healthy`
    : `  · ${step}`;
}

/** `berth deploy status APP`: what the deployment is doing and why, as `berth autoscale status` explains. */
export function explainDeployment(deployment: Deployment, services: readonly ServiceStatus[]): string[] {
  const lines = [
    `${deployment.app}: deployment ${deployment.id} (${deployment.strategy}) v${deployment.fromRelease ?? '-'} → v${deployment.toRelease}: ${deployment.state.replace('_', ' ')}`,
  ];
  const involved = services.filter((s) => deployment.services.some((d) => d.name === s.name));
  for (const service of involved) lines.push(`  ${progressOf(service, deployment)}`);
  const canary = deployment.canary;
  if (canary !== null) {
    lines.push(
      `  steps ${canary.steps.map((w, i) => (i === canary.step ? `[${w}%]` : `${w}%`)).join(' → ')}, ${formatDuration(canary.intervalMs)} each; at least ${canary.analysis.minRequests} requests per window`,
    );
    if (deployment.state === 'canary') {
      lines.push(
        canary.windowStartedAt === null
          ? '  waiting for the new release to be healthy before the first window'
          : `  window open since ${formatTime(canary.windowStartedAt)}; next analysis at ${formatTime(canary.windowStartedAt + canary.intervalMs)}${canary.holds > 0 ? ` (${canary.holds} hold${canary.holds === 1 ? '' : 's'} at this step)` : ''}`,
      );
    }
    const last = canary.last;
    if (last) {
      lines.push(
        `  last decision (${formatTime(last.at)}, by ${last.by}): ${last.verdict} at ${last.weight}%`,
      );
      for (const reason of last.reasons) lines.push(`    ${reason}`);
      lines.push(`    ${describeWindows(last)}`);
    }
  }
  if (deployment.reason) lines.push(`  reason: ${deployment.reason}`);
  return lines;
}

/** The app named on the command line, or by the `app:` of the directory's berth.yaml. */
async function appArgument(arg: string): Promise<string> {
  const path = resolve(arg, 'berth.yaml');
  if (existsSync(path)) {
    // The spec's parser (yaml, zod: ~0.1 s of CPU) loads only here; a deploy sends the directory, unparsed.
    const { parseSpec } = await import('../../domain/spec.js');
    return parseSpec(readFileSync(path, 'utf8'), { file: path }).app;
  }
  if (!/^[a-z0-9][a-z0-9-]*$/.test(arg))
    throw new UsageError(`${arg}: expected an app name or a directory with berth.yaml`);
  return arg;
}

function seconds(deployment: Deployment): string {
  return `${(((deployment.endedAt ?? Date.now()) - deployment.startedAt) / 1000).toFixed(1)}s`;
}

function parseTimeout(text: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    throw new UsageError(`--timeout: ${(error as Error).message}`);
  }
}
