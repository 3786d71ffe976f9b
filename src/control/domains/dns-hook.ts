// DNS-01 through a command the operator gives (`--acme-dns-hook`): it sets or clears one TXT record and returns.
import { spawn } from 'node:child_process';
import { AcmeFailure } from './acme-issuer.js';

/** How long a hook may take: DNS providers' APIs answer in seconds; propagation waits belong in the hook. */
export const DNS_HOOK_TIMEOUT_MS = 300_000;

/** The TXT record name of a host's DNS-01 challenge: `_acme-challenge.<host without "*.">` (RFC 8555 §8.4). */
export function challengeRecordName(host: string): string {
  return `_acme-challenge.${host.startsWith('*.') ? host.slice(2) : host}`;
}

/**
 * Runs `/bin/sh -c <command>` with `BERTH_ACME_ACTION` (`set` or `clear`), `BERTH_ACME_DOMAIN` (the host, `*.`
 * included), `BERTH_ACME_NAME` (the record, `_acme-challenge.example.com`) and `BERTH_ACME_VALUE` (the TXT value).
 * `set` must return once the CA can see the record (a provider's propagation wait belongs in the hook). A non-zero
 * exit, or no exit within the timeout, fails the order with the end of the hook's output as the reason.
 */
export function runDnsHook(
  command: string,
  action: 'set' | 'clear',
  host: string,
  value: string,
  timeoutMs = DNS_HOOK_TIMEOUT_MS,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        BERTH_ACME_ACTION: action,
        BERTH_ACME_DOMAIN: host,
        BERTH_ACME_NAME: challengeRecordName(host),
        BERTH_ACME_VALUE: value,
      },
    });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-2000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(hookFailure(action, `cannot run it: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else {
        const how =
          signal === 'SIGKILL' ? `was killed after ${timeoutMs / 1000}s` : `exited with ${code ?? signal}`;
        reject(hookFailure(action, `${how}${output.trim() === '' ? '' : `: ${output.trim()}`}`));
      }
    });
  });
}

function hookFailure(action: string, detail: string): AcmeFailure {
  return new AcmeFailure({ type: 'berth:dnsHook', detail: `the DNS hook (${action}) ${detail}` });
}
