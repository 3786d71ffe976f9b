// `berth autoscale status APP`: per autoscaled service, each metric's observed value, target and implied count.
import type { Command } from 'commander';
import type { AutoscaleChange, ServiceAutoscaleStatus } from '../../domain/autoscale-types.js';
import type { CliContext } from '../context.js';
import { printJson, printTable } from '../output.js';

const UNITS: Record<string, string> = { requestsPerMinute: ' rpm', cpuPercent: '%', memoryPercent: '%' };
const NAMES: Record<string, string> = {
  requestsPerMinute: 'requests/min',
  cpuPercent: 'cpu',
  memoryPercent: 'memory',
};

function formatValue(metric: string, value: number | null): string {
  if (value === null) return '-';
  return `${Math.round(value * 10) / 10}${UNITS[metric] ?? ''}`;
}

function formatChange(kind: string, change: AutoscaleChange | null, now: number): string | null {
  if (!change) return null;
  const ago = Math.max(0, Math.round((now - change.at) / 1000));
  return `  last ${kind}: ${change.from} → ${change.to}, ${ago}s ago (${change.reason})`;
}

/** Prints one service's status: the policy, a table of metrics, the verdict and the last changes. */
export function printAutoscaleStatus(app: string, statuses: readonly ServiceAutoscaleStatus[]): void {
  if (statuses.length === 0) {
    process.stdout.write(`${app} has no autoscaled service (add autoscale: to a service in berth.yaml)\n`);
    return;
  }
  for (const s of statuses) {
    const { policy, decision } = s;
    process.stdout.write(
      `${app}/${s.service}: ${decision.current} desired, ${decision.running} healthy; ` +
        `policy min ${policy.min} max ${policy.max}, cooldowns out ${policy.scaleOutCooldownMs / 1000}s ` +
        `in ${policy.scaleInCooldownMs / 1000}s, window ${s.windowMs / 1000}s, tolerance ±${s.tolerance * 100}%\n`,
    );
    printTable(
      ['metric', 'observed', 'target', 'implies', 'vote'],
      decision.metrics.map((m) => [
        `${NAMES[m.metric] ?? m.metric}/instance`,
        formatValue(m.metric, m.observed),
        formatValue(m.metric, m.target),
        m.implied ?? '-',
        m.vote.replace('_', ' '),
      ]),
    );
    for (const step of decision.steps) {
      const state = step.state ?? 'no such alarm';
      process.stdout.write(
        `  step: +${step.add} while alarm ${step.alarm} is in ALARM (now ${state})${step.implied === null ? '' : ` → ${step.implied}`}\n`,
      );
    }
    const verdict =
      decision.action === 'none'
        ? `stays at ${decision.current}: ${decision.reason}`
        : `${decision.action.replace('_', ' ')} ${decision.current} → ${decision.desired}: ${decision.reason}`;
    process.stdout.write(`  decision: ${verdict}\n`);
    for (const line of [
      formatChange('scale-out', s.lastScaleOut, s.evaluatedAt),
      formatChange('scale-in', s.lastScaleIn, s.evaluatedAt),
    ]) {
      if (line) process.stdout.write(`${line}\n`);
    }
  }
}

export function registerAutoscale(program: Command, context: CliContext): void {
  const autoscale = program.command('autoscale').description('see what the autoscaler decides, and why');
  autoscale
    .command('status')
    .description('per metric: observed value, target, the count it implies, and why the count is what it is')
    .argument('<app>', 'the app')
    .option('--json', 'print as JSON')
    .action(async (app: string, options: { json?: boolean }) => {
      const statuses = await context
        .client()
        .request<ServiceAutoscaleStatus[]>('GET', `/v1/apps/${encodeURIComponent(app)}/autoscale`);
      if (options.json) return printJson(statuses);
      printAutoscaleStatus(app, statuses);
    });
}
