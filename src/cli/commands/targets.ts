// `berth targets add|ls|rm`: the Kubernetes clusters Berth deploys to, and `berth export k8s APP` for GitOps.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { KubeTarget } from '../../domain/api-types.js';
import { yamlLibrary } from '../../lib/yaml-library.js';
import type { CliContext } from '../context.js';
import { formatTime, printJson, printTable, UsageError } from '../output.js';

export function registerTargets(program: Command, context: CliContext): void {
  const targets = program
    .command('targets')
    .description('Kubernetes clusters to deploy to (`berth deploy --target NAME`)');
  targets
    .command('add')
    .description('add (or replace) a target: a kubeconfig file, one of its contexts, a namespace')
    .argument('<name>', 'the name to deploy to, e.g. prod')
    .requiredOption('--kubeconfig <file>', 'the kubeconfig file (read by the control plane at each use)')
    .option('--context <context>', "the kubeconfig's context (default: its current one)")
    .option('--namespace <namespace>', "the namespace (default: the context's, else default)")
    .option('--json', 'print as JSON')
    .action(
      async (
        name: string,
        options: { kubeconfig: string; context?: string; namespace?: string; json?: boolean },
      ) => {
        const kubeconfig = resolve(options.kubeconfig);
        if (!existsSync(kubeconfig)) throw new UsageError(`${options.kubeconfig}: no such file`);
        const target = await context.client().request<KubeTarget>('POST', '/v1/targets', {
          name,
          kubeconfig,
          ...(options.context === undefined ? {} : { context: options.context }),
          ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
        });
        if (options.json) return printJson(target);
        process.stdout.write(
          `target ${target.name}: Kubernetes ${target.serverVersion}, namespace ${target.namespace}; deploy with \`berth deploy --target ${target.name}\`\n`,
        );
      },
    );
  targets
    .command('ls')
    .description('list targets')
    .option('--json', 'print as JSON')
    .action(async (options: { json?: boolean }) => {
      const list = await context.client().request<KubeTarget[]>('GET', '/v1/targets');
      if (options.json) return printJson(list);
      printTable(
        ['target', 'kubeconfig', 'context', 'namespace', 'server', 'added'],
        list.map((t) => [
          t.name,
          t.kubeconfig,
          t.context ?? '-',
          t.namespace,
          t.serverVersion,
          formatTime(t.createdAt),
        ]),
      );
    });
  targets
    .command('rm')
    .description('forget a target (nothing on the cluster is changed)')
    .argument('<name>', 'the target')
    .action(async (name: string) => {
      await context.client().request('DELETE', `/v1/targets/${encodeURIComponent(name)}`);
      process.stdout.write(`target ${name} removed\n`);
    });

  const exporter = program.command('export').description('print an app as manifests for another platform');
  exporter
    .command('k8s')
    .description("the app's current release as Kubernetes manifests (secrets as references only), for GitOps")
    .argument('<app>', 'the app')
    .option('--kube-version <version>', 'the server version to write API versions for', '1.33')
    .option('--namespace <namespace>', 'the namespace of every object', 'default')
    .action(async (app: string, options: { kubeVersion: string; namespace: string }) => {
      const query = new URLSearchParams({ kubeVersion: options.kubeVersion, namespace: options.namespace });
      const objects = await context
        .client()
        .request<unknown[]>('GET', `/v1/apps/${encodeURIComponent(app)}/export/k8s?${query}`);
      process.stdout.write(
        objects.map((o) => `---\n${yamlLibrary().stringify(o, { aliasDuplicateObjects: false })}`).join(''),
      );
    });
}
