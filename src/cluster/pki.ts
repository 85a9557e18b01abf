// @peculiar/x509 resolves its parts through tsyringe, which needs the Reflect metadata API first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, webcrypto, X509Certificate } from 'node:crypto';
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { basename, dirname, join } from 'node:path';
// ca.ts also installs WebCrypto as x509's provider; importing it keeps that in one place.
import type { CaMaterial } from '../security/ca';

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
const BACKDATE_MS = 5 * 60 * 1000;
/** etcd certificates are not rotated yet: they live as long as the CA allows, up to this. */
const ETCD_CERT_DAYS = 5 * 365;

export type CertificateUse = 'server' | 'client';

export interface CertificateRequest {
  commonName: string;
  /** The subject's public key, SPKI PEM: the private key never leaves the node that made it. */
  publicKeyPem: string;
  uses: CertificateUse[];
  /** IP addresses and DNS names; only for server certificates. */
  altNames?: string[];
}

export interface KeyPair {
  publicKeyPem: string;
  privateKeyPem: string;
}

/** SHA-256 of the CA certificate's DER, lower-case hex without colons: what a join token carries. */
export function caHash(certificatePem: string): string {
  return new X509Certificate(certificatePem).fingerprint256.replace(/:/g, '').toLowerCase();
}

export async function generateKeyPair(): Promise<KeyPair> {
  const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
  const spki = await webcrypto.subtle.exportKey('spki', keys.publicKey);
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return {
    publicKeyPem: x509.PemConverter.encode(spki, 'PUBLIC KEY'),
    privateKeyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'),
  };
}

/** Issues the etcd peer, server and client certificates of the cluster's embedded store. */
export class ClusterIssuer {
  private constructor(
    readonly caPem: string,
    private readonly ca: x509.X509Certificate,
    private readonly signingKey: webcrypto.CryptoKey,
  ) {}

  static async fromMaterial(material: CaMaterial): Promise<ClusterIssuer> {
    const pkcs8 = createPrivateKey(material.privateKey).export({ type: 'pkcs8', format: 'der' });
    const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, KEY_ALGORITHM, false, ['sign']);
    return new ClusterIssuer(material.certificate, new x509.X509Certificate(material.certificate), signingKey);
  }

  async issue(request: CertificateRequest, now = new Date()): Promise<string> {
    const der = createPublicKey(request.publicKeyPem).export({ type: 'spki', format: 'der' });
    const publicKey = await webcrypto.subtle.importKey('spki', der, KEY_ALGORITHM, true, ['verify']);
    const usages = request.uses.map((use) => (use === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth));
    const names = (request.altNames ?? []).map((value) => ({ type: isIP(value) ? ('ip' as const) : ('dns' as const), value }));
    const certificate = await x509.X509CertificateGenerator.create({
      subject: `CN=${request.commonName}, O=vipd`,
      issuer: this.ca.subject,
      publicKey,
      signingKey: this.signingKey,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(Math.min(now.getTime() + ETCD_CERT_DAYS * DAY_MS, this.ca.notAfter.getTime())),
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension(usages),
        ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : []),
        await x509.AuthorityKeyIdentifierExtension.create(this.ca.publicKey),
      ],
    });
    return certificate.toString('pem') + '\n';
  }
}

/** The files of one node's etcd PKI directory. */
export function pkiPaths(pkiDir: string) {
  return {
    ca: join(pkiDir, 'ca.pem'),
    serverCert: join(pkiDir, 'etcd-server.pem'),
    serverKey: join(pkiDir, 'etcd-server-key.pem'),
    peerCert: join(pkiDir, 'etcd-peer.pem'),
    peerKey: join(pkiDir, 'etcd-peer-key.pem'),
    clientCert: join(pkiDir, 'etcd-client.pem'),
    clientKey: join(pkiDir, 'etcd-client-key.pem'),
  };
}

/** The cluster key's file, beside this node's etcd PKI (0600); only signing nodes have one. */
export function clusterKeyPath(pkiDir: string): string {
  return join(pkiDir, 'cluster.key');
}

/** This node's HTTPS certificate, issued at join for a node that cannot sign its own. */
export function servingCertificatePaths(pkiDir: string): { cert: string; key: string } {
  return { cert: join(pkiDir, 'api.pem'), key: join(pkiDir, 'api-key.pem') };
}

/** Writes through a temporary file with mode 0600, so a key is never readable by others, not even briefly. */
export function writePrivateFile(path: string, contents: string, mode = 0o600): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  writeFileSync(temporary, contents, { mode });
  chmodSync(temporary, mode);
  renameSync(temporary, path);
}
