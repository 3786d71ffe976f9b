// `berth proxy` (its keeper, workers and crashes), `berth proxy restart` (a handover to a new worker) and
// `berth proxy stop` (the proxy itself, once the control plane that would start it again is stopped).
import type { Command } from 'commander';
import { type ControlEndpoint, controlPaths } from '../../domain/data-dir.js';
import { BerthError } from '../../domain/errors.js';
import type { KeeperEntry, ProxyView } from '../../domain/proxy-keeper.js';
import { proxyPaths } from '../../domain/proxy-paths.js';
import { isRunning, readPidFile, signalRecorded } from '../../lib/process-identity.js';
import type { CliContext } from '../context.js';
import { formatAge, formatTime, printJson, printTable } from '../output.js';

export function registerProxy(program: Command, context: CliContext): void {
  const proxy = program
    .command('proxy')
    .description('the proxy: its keeper, its workers and what happened to them (`restart`: a new worker)')
    .option('--json', 'print as JSON')
    .action(async (options: { json?: boolean }) => {
      const view = await context.client().proxy();
      if (options.json) return printJson(view);
      printView(view);
    });
  proxy
    .command('restart')
    .description('hand the proxy over to a new worker: it accepts, the old one finishes its requests')
    .option('--json', 'print as JSON')
    .action(async (options: { json?: boolean }) => {
      const result = await context.client().restartProxy();
      if (options.json) return printJson(result);
      process.stdout.write(
        `proxy restarted: worker ${result.to} serving (ready in ${result.readyMs} ms); ` +
          `worker ${result.from} finishes its requests and exits\n`,
      );
    });
  proxy
    .command('stop')
    .description('stop the proxy (after `berth stop`: a running control plane would start it again)')
    .action(async () => {
      const dataDir = context.dataDir;
      const control = readPidFile<ControlEndpoint>(controlPaths(dataDir).endpoint);
      if (control !== undefined && isRunning(control)) {
        throw new BerthError(
          'conflict',
          `the control plane of ${dataDir} runs (pid ${control.pid}) and would start the proxy again: stop it first with \`berth stop\``,
        );
      }
      const pidFile = proxyPaths(dataDir).pidFile;
      const keeper = readPidFile(pidFile);
      // Only the very keeper this data directory recorded (pid, start time and command line), never a reused pid.
      const sent = signalRecorded(pidFile, 'SIGTERM');
      if (keeper === undefined || sent.outcome !== 'signalled') {
        process.stdout.write(`no proxy runs on the data directory ${dataDir}\n`);
        return;
      }
      // The keeper lets its workers finish the requests in flight (their drain time) before it exits.
      const deadline = Date.now() + PROXY_STOP_TIMEOUT_MS;
      while (isRunning(keeper)) {
        if (Date.now() > deadline)
          throw new BerthError('runtime_failure', `the proxy (keeper pid ${sent.pid}) is still stopping`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      process.stdout.write(
        `stopped the proxy (keeper pid ${sent.pid}); instances still running are no longer reachable through it (\`berth up\` starts it again)\n`,
      );
    });
}

/** The default drain time (10 s) with room for the keeper to end its workers. */
const PROXY_STOP_TIMEOUT_MS = 30_000;

function printView(view: ProxyView): void {
  const { health } = view;
  const keeper = health.keeper;
  const ports = `HTTP :${health.ports.http}, HTTPS :${health.ports.https}`;
  if (keeper === null) {
    process.stdout.write(
      `proxy ${health.pid} (${ports}) runs without a keeper: a crash refuses connections\n`,
    );
    return;
  }
  const now = Date.now();
  process.stdout.write(
    `keeper ${keeper.pid}, up ${formatAge(now - keeper.startedAt)}, ${view.managed ? 'started by the control plane' : 'run by its service manager'}; ${ports}\n`,
  );
  printTable(
    ['worker', 'state', 'since', 'admin'],
    keeper.workers.map((w) => [w.pid, w.state, formatAge(now - w.since), w.admin ? 'yes' : '']),
  );
  process.stdout.write(`${keeper.crashes} crashes, ${keeper.restarts} restarts since the keeper started\n`);
  const notable = keeper.journal.filter((e) => e.type !== 'worker_drained').slice(-5);
  for (const entry of notable) process.stdout.write(`  ${formatTime(entry.at)}  ${describe(entry)}\n`);
}

function describe(entry: KeeperEntry): string {
  switch (entry.type) {
    case 'worker_started':
      return entry.reason === 'start'
        ? `worker ${entry.pid} started (ready in ${entry.readyMs} ms)`
        : entry.reason === 'crash'
          ? `worker ${entry.pid} replaced ${entry.replaced}: serving ${entry.downMs} ms after the crash`
          : `worker ${entry.pid} took over from ${entry.replaced} (ready in ${entry.readyMs} ms)`;
    case 'worker_crashed':
      return `worker ${entry.pid} ${entry.signal ? `killed by ${entry.signal}` : `exited with code ${entry.code}`} after ${formatAge(entry.upMs)}`;
    case 'restart_failed':
      return `restart failed: ${entry.error}`;
    case 'worker_drained':
      return `worker ${entry.pid} drained in ${entry.ms} ms${entry.forced ? ' (forced)' : ''}`;
  }
}
