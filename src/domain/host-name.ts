// Host names an app may claim (berth.yaml routes, `berth domains add`): DNS syntax, IP literals, reserved names.
import net from 'node:net';

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Special-use top-level names (RFC 6761, RFC 6762, RFC 7686, RFC 8375, RFC 9476, ICANN's `.internal`): no public CA
 * issues a certificate for them, so a route on one could never be served with a trusted certificate. `localhost`
 * is the exception Berth serves itself, with its local CA.
 */
const RESERVED: Record<string, string> = {
  test: 'reserved for testing (RFC 6761)',
  example: 'reserved for documentation (RFC 6761)',
  invalid: 'reserved as never valid (RFC 6761)',
  local: 'multicast DNS on the local link (RFC 6762)',
  onion: 'Tor onion services (RFC 7686)',
  alt: 'reserved for non-DNS name systems (RFC 9476)',
  internal: 'reserved for private networks (ICANN)',
  arpa: 'the infrastructure domain (reverse DNS, home.arpa: RFC 8375)',
};

/** `localhost` and its subdomains: served with Berth's local CA, never sent to an ACME CA. */
export function isLocalHost(host: string): boolean {
  const base = host.startsWith('*.') ? host.slice(2) : host;
  return base === 'localhost' || base.endsWith('.localhost');
}

/** `*.example.com`: matches the names one or more labels under `example.com`. */
export function isWildcard(host: string): boolean {
  return host.startsWith('*.');
}

/**
 * Why `host` cannot be an app's host, or undefined when it can. Lower-case DNS names (letters, digits, dashes;
 * labels of 1-63, 253 in all), optionally `*.` in front; not an IP address, not a single label, not a special-use
 * name; a wildcard needs two labels under it (`*.example.com`, not `*.com`). `localhost` names are always fine.
 */
export function hostNameProblem(host: string): string | undefined {
  if (host.length === 0) return 'empty';
  if (net.isIP(host.replace(/^\[|\]$/g, '')) !== 0)
    return 'an IP address, not a host name: routes and certificates need a DNS name';
  if (host !== host.toLowerCase()) return 'must be lower case';
  if (/[:/]/.test(host)) return 'a host name only: no scheme, port or path';
  if (host.length > 253) return 'longer than 253 characters';
  const wildcard = isWildcard(host);
  const labels = (wildcard ? host.slice(2) : host).split('.');
  for (const label of labels) {
    if (label === '*') return 'a wildcard must be the whole first label, as in *.example.com';
    if (label.length > 63) return `label "${label.slice(0, 20)}…" is longer than 63 characters`;
    if (!LABEL.test(label))
      return label === ''
        ? 'has an empty label (two dots, or a dot at an end)'
        : `label "${label}" may hold only letters, digits and dashes, not at its start or end`;
  }
  if (isLocalHost(host)) return undefined;
  const top = labels[labels.length - 1]!;
  if (/^\d+$/.test(top)) return 'the last label is all digits: not a DNS name';
  const reserved = RESERVED[top];
  if (reserved !== undefined)
    return `.${top} is ${reserved}: no public CA issues certificates for it; use a name under .localhost locally`;
  if (wildcard && labels.length < 2) return 'a wildcard needs two labels under it, as in *.example.com';
  if (labels.length < 2)
    return 'a single label is not a public DNS name; use NAME.localhost locally or a full name such as NAME.example.com';
  return undefined;
}
