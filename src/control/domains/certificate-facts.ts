// What the control plane reads from an issued chain: serial, issuer, validity, the ARI identifier; key match.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { ariCertId } from '../../domain/certificate.js';

export interface CertificateFacts {
  /** Lower-case hex, as `openssl x509 -serial` prints it (without a sign byte). */
  serial: string;
  /** The issuer's common name, or its whole distinguished name when it has none. */
  issuer: string;
  notBefore: number;
  notAfter: number;
  /** RFC 9773's identifier; undefined when the leaf has no authority key identifier. */
  ariCertId: string | undefined;
}

/** The leaf (first certificate) of a PEM chain. */
export function leafPem(chainPem: string): string {
  const end = chainPem.indexOf('-----END CERTIFICATE-----');
  if (end === -1) throw new Error('no certificate in the chain');
  return `${chainPem.slice(chainPem.indexOf('-----BEGIN CERTIFICATE-----'), end)}-----END CERTIFICATE-----\n`;
}

export function certificateFacts(chainPem: string): CertificateFacts {
  const pem = leafPem(chainPem);
  const leaf = new X509Certificate(pem);
  const serial = leaf.serialNumber.toLowerCase();
  const issuer = /(?:^|\n)CN=([^\n]+)/.exec(leaf.issuer)?.[1] ?? leaf.issuer.replace(/\n/g, ', ');
  const keyId = authorityKeyId(leaf.raw);
  // The DER integer's content octets: a leading zero byte when the high bit is set (RFC 9773 §4.1).
  const even = serial.length % 2 === 0 ? serial : `0${serial}`;
  const serialDer = Buffer.from(Number.parseInt(even.slice(0, 2), 16) >= 0x80 ? `00${even}` : even, 'hex');
  return {
    serial,
    issuer,
    notBefore: Date.parse(leaf.validFrom),
    notAfter: Date.parse(leaf.validTo),
    ariCertId: keyId === undefined ? undefined : ariCertId(keyId, serialDer),
  };
}

/** True when `keyPem` is the private key of the chain's leaf. */
export function keyMatches(chainPem: string, keyPem: string): boolean {
  return new X509Certificate(leafPem(chainPem)).checkPrivateKey(createPrivateKey(keyPem));
}

/** One DER element: its tag, and where its content starts and ends in the buffer. */
interface Element {
  tag: number;
  start: number;
  end: number;
}

function elementAt(der: Buffer, offset: number, limit: number): Element {
  if (offset + 2 > limit) throw new Error('truncated DER');
  const tag = der[offset]!;
  let length = der[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4 || start + bytes > limit) throw new Error('unsupported DER length');
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[start + i]!;
    start += bytes;
  }
  if (start + length > limit) throw new Error('truncated DER');
  return { tag, start, end: start + length };
}

function childrenOf(der: Buffer, parent: Element): Element[] {
  const children: Element[] = [];
  for (let offset = parent.start; offset < parent.end; ) {
    const child = elementAt(der, offset, parent.end);
    children.push(child);
    offset = child.end;
  }
  return children;
}

const AUTHORITY_KEY_IDENTIFIER = Buffer.from([0x55, 0x1d, 0x23]); // 2.5.29.35

/**
 * The key identifier of a certificate's Authority Key Identifier extension (RFC 5280 §4.2.1.1), read from its DER:
 * Certificate → tbsCertificate → [3] extensions → the extension with OID 2.5.29.35 → its OCTET STRING → the
 * SEQUENCE's [0] keyIdentifier. Node's X509Certificate does not expose it.
 */
export function authorityKeyId(der: Buffer): Buffer | undefined {
  const certificate = elementAt(der, 0, der.length);
  const tbs = childrenOf(der, certificate)[0];
  if (tbs === undefined) return undefined;
  const extensions = childrenOf(der, tbs).find((e) => e.tag === 0xa3);
  if (extensions === undefined) return undefined;
  for (const extensionList of childrenOf(der, extensions)) {
    for (const extension of childrenOf(der, extensionList)) {
      const [id, ...rest] = childrenOf(der, extension);
      if (id === undefined || !der.subarray(id.start, id.end).equals(AUTHORITY_KEY_IDENTIFIER)) continue;
      const value = rest.find((e) => e.tag === 0x04);
      if (value === undefined) return undefined;
      const keyId = childrenOf(der, elementAt(der, value.start, value.end)).find((e) => e.tag === 0x80);
      return keyId === undefined ? undefined : Buffer.from(der.subarray(keyId.start, keyId.end));
    }
  }
  return undefined;
}
