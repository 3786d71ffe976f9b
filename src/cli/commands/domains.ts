// `berth domains …`: an app's hosts and their certificates (issuer, expiry, last attempt and the CA's problem).
import type { Command } from 'commander';
import type {
  AcmeProblem,
  CertificateRecord,
  DomainInfo,
  DomainsView,
  RenewResult,
} from '../../domain/certificate.js';
import type { CliContext } from '../context.js';
import { EXIT_FAILURE, formatAge, formatTime, printJson, printTable } from '../output.js';

const path = (app: string, host?: string): string =>
  `/v1/apps/${encodeURIComponent(app)}/domains${host === undefined ? '' : `/${encodeURIComponent(host)}`}`;

/** `urn:ietf:params:acme:error:connection (400): detail`, subproblems on their own lines. */
export function formatProblem(problem: AcmeProblem): string {
  const head = `${problem.type}${problem.status === undefined ? '' : ` (${problem.status})`}: ${problem.detail}`;
  return [head, ...(problem.subproblems ?? []).map((p) => `  ${formatProblem(p)}`)].join('\n');
}

function certificateState(domain: DomainInfo, now: number): string {
  if (domain.tls === 'local') return 'local CA';
  const cert = domain.certificate;
  if (cert === null) return 'pending';
  if (cert.state === 'active' && cert.notAfter !== null && cert.notAfter <= now) return 'expired';
  return cert.state;
}

function expiry(cert: CertificateRecord | null, now: number): string {
  if (cert?.notAfter == null) return '-';
  const left = cert.notAfter - now;
  return `${formatTime(cert.notAfter)} (${left > 0 ? `in ${formatAge(left)}` : `${formatAge(-left)} ago`})`;
}

function lastAttempt(cert: CertificateRecord | null, now: number): string {
  if (cert?.lastAttemptAt == null) return '-';
  return `${formatAge(now - cert.lastAttemptAt)} ago ${cert.lastError === null ? 'ok' : 'failed'}`;
}

export function registerDomains(program: Command, context: CliContext): void {
  const domains = program
    .command('domains')
    .description("an app's host names and their certificates (Let's Encrypt or another ACME CA)");

  domains
    .command('list')
    .argument('[app]', 'only this app')
    .description('every host with its certificate: state, issuer, expiry, last attempt and its error')
    .option('--json', 'print as JSON')
    .action(async (app: string | undefined, options: { json?: boolean }) => {
      const view = await context
        .client()
        .request<DomainsView>(
          'GET',
          `/v1/domains${app === undefined ? '' : `?app=${encodeURIComponent(app)}`}`,
        );
      if (options.json) return printJson(view);
      const now = Date.now();
      if (view.domains.length === 0) {
        process.stdout.write(app === undefined ? 'no app has a host\n' : `${app} has no host\n`);
        return;
      }
      printTable(
        ['host', 'app', 'source', 'certificate', 'issuer', 'expires', 'renews', 'last attempt'],
        view.domains.map((d) => [
          d.host,
          d.app,
          d.source === 'spec' ? 'berth.yaml' : 'added',
          certificateState(d, now),
          d.certificate?.issuer ?? '-',
          expiry(d.certificate, now),
          d.certificate?.renewAt == null
            ? '-'
            : `${formatTime(d.certificate.renewAt)}${d.certificate.renewalInfo ? ' (ARI)' : ''}`,
          lastAttempt(d.certificate, now),
        ]),
      );
      const failing = view.domains.filter((d) => d.certificate?.lastError != null);
      for (const d of failing) {
        const cert = d.certificate!;
        const next =
          cert.nextAttemptAt === null ? '' : `; next attempt in ${formatAge(cert.nextAttemptAt - now)}`;
        process.stdout.write(`\n${d.host}: ${formatProblem(cert.lastError!)}${next}\n`);
      }
      if (view.acme.directory === null)
        process.stdout.write(
          '\nACME is off (--acme-directory off): every host gets the local CA certificate\n',
        );
    });

  domains
    .command('add')
    .argument('<app>')
    .argument('<host>', 'a DNS name pointing at this machine, e.g. api.example.com')
    .description(
      "serve HOST like the app's first route (and get it a certificate); a host serves one app only",
    )
    .action(async (app: string, host: string) => {
      const added = await context.client().request<DomainInfo>('POST', path(app), { host });
      process.stdout.write(
        `${host} added to ${app}${added.tls === 'acme' ? '; its certificate is being ordered (berth domains list)' : ''}\n`,
      );
    });

  domains
    .command('remove')
    .argument('<app>')
    .argument('<host>')
    .description('stop serving a host added with `domains add` (berth.yaml hosts go with a deploy)')
    .action(async (app: string, host: string) => {
      await context.client().request('DELETE', path(app, host));
      process.stdout.write(`${host} removed from ${app}\n`);
    });

  domains
    .command('renew')
    .argument('<app>')
    .argument('<host>')
    .description(
      'order a new certificate now, whatever its renewal time; exits 1 with the CA problem if it fails',
    )
    .action(async (app: string, host: string) => {
      const result = await context.client().request<RenewResult>('POST', `${path(app, host)}/renew`, {});
      const cert = result.certificate;
      if (result.outcome === 'failed') {
        process.stderr.write(
          `error: ${host}: the order failed: ${formatProblem(cert.lastError!)}\n` +
            (cert.serial === null
              ? ''
              : `certificate ${cert.serial} keeps serving until ${formatTime(cert.notAfter!)}\n`),
        );
        process.exitCode = EXIT_FAILURE;
        return;
      }
      process.stdout.write(
        `${host}: certificate ${cert.serial} ${result.outcome} by ${cert.issuer}, valid until ${formatTime(cert.notAfter!)}\n`,
      );
    });

  domains
    .command('revoke')
    .argument('<app>')
    .argument('<host>')
    .option(
      '--reason <reason>',
      'unspecified, keyCompromise, superseded or cessationOfOperation',
      'unspecified',
    )
    .description('revoke the serving certificate at the CA and stop serving it; a new one is ordered at once')
    .action(async (app: string, host: string, options: { reason: string }) => {
      const cert = await context
        .client()
        .request<CertificateRecord>('POST', `${path(app, host)}/revoke`, { reason: options.reason });
      process.stdout.write(`${host}: certificate ${cert.serial} revoked; a new one is being ordered\n`);
    });
}
