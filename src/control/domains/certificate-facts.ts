// What the control plane reads from an issued chain: serial, issuer, validity, the ARI identifier; key match.
import { createPrivateKey, webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { ariCertId } from '../../domain/certificate.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

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
  const keyId = new x509.X509Certificate(pem).getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId;
  // The DER integer's content octets: a leading zero byte when the high bit is set (RFC 9773 §4.1).
  const even = serial.length % 2 === 0 ? serial : `0${serial}`;
  const serialDer = Buffer.from(Number.parseInt(even.slice(0, 2), 16) >= 0x80 ? `00${even}` : even, 'hex');
  return {
    serial,
    issuer,
    notBefore: Date.parse(leaf.validFrom),
    notAfter: Date.parse(leaf.validTo),
    ariCertId: keyId === undefined ? undefined : ariCertId(Buffer.from(keyId, 'hex'), serialDer),
  };
}

/** True when `keyPem` is the private key of the chain's leaf. */
export function keyMatches(chainPem: string, keyPem: string): boolean {
  return new X509Certificate(leafPem(chainPem)).checkPrivateKey(createPrivateKey(keyPem));
}
