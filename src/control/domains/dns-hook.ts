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
 * The hook's process-group leader. The hook runs in the background with stdin from /dev/null; a watcher reads
 * this shell's stdin, a pipe whose only write end the control plane holds, and kills the whole group (hook and
 * anything it started) at end of file: when the control plane is gone, even by SIGKILL, the hook is too.
 * (A background list's stdin is /dev/null unless redirected, hence fd 3.)
 */
const GROUP_LEADER = `exec 3<&0
( read _ignored <&3; kill -KILL 0 ) &
watcher=$!
/bin/sh -c "$BERTH_ACME_HOOK" </dev/null 3<&- &
wait $!
status=$?
kill $watcher 2>/dev/null
exit $status`;

/**
 * Runs `/bin/sh -c <command>` with `BERTH_ACME_ACTION` (`set` or `clear`), `BERTH_ACME_DOMAIN` (the host, `*.`
 * included), `BERTH_ACME_NAME` (the record, `_acme-challenge.example.com`) and `BERTH_ACME_VALUE` (the TXT value).
 * `set` must return once the CA can see the record (a provider's propagation wait belongs in the hook). A non-zero
 * exit, or no exit within the timeout, fails the order with the end of the hook's output as the reason. The hook
 * runs in a process group of its own that is killed whole at the timeout, or when this process dies.
 */
export function runDnsHook(
  command: string,
  action: 'set' | 'clear',
  host: string,
  value: string,
  timeoutMs = DNS_HOOK_TIMEOUT_MS,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', GROUP_LEADER], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      env: {
        ...process.env,
        BERTH_ACME_HOOK: command,
        BERTH_ACME_ACTION: action,
        BERTH_ACME_DOMAIN: host,
        BERTH_ACME_NAME: challengeRecordName(host),
        BERTH_ACME_VALUE: value,
      },
    });
    // Held open, never written: its end of file is what tells the group that this process is gone.
    child.stdin.on('error', () => {});
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-2000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(hookFailure(action, `cannot run it: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      child.stdin.destroy();
      if (code === 0 && !timedOut) resolve();
      else {
        const how = timedOut ? `was killed after ${timeoutMs / 1000}s` : `exited with ${code ?? signal}`;
        reject(hookFailure(action, `${how}${output.trim() === '' ? '' : `: ${output.trim()}`}`));
      }
    });
  });
}

/** SIGKILL to the hook's whole process group (its leader's pid); it may be gone already. */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function hookFailure(action: string, detail: string): AcmeFailure {
  return new AcmeFailure({ type: 'berth:dnsHook', detail: `the DNS hook (${action}) ${detail}` });
}
