// @peculiar/x509 resolves its parts through tsyringe, which needs the Reflect metadata API first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, webcrypto, X509Certificate } from 'node:crypto';
import { chmodSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { basename, dirname, join } from 'node:path';
import type { KeyValue } from '../store/kv';

// Node's crypto verifies certificates but cannot issue them; x509 signs through WebCrypto.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
// Nodes' clocks differ a little; a certificate valid "from now" would fail on a node behind.
const BACKDATE_MS = 5 * 60 * 1000;

interface StoredCa {
  version: 1;
  certificate: string;
  privateKey: string;
}

export interface ServingCertificateRequest {
  nodeName: string;
  nodeIp: string;
  vip: string;
  fqdn: string | null;
  validityDays?: number;
  now?: Date;
}

export interface IssuedCertificate {
  /** The leaf followed by the CA certificate, as a TLS server sends it. */
  chain: string;
  privateKey: string;
  notAfter: Date;
}

export interface ClusterCaOptions {
  /** Used in the CA's name, so people can tell clusters' CAs apart. */
  cluster: string;
  /** Writes the CA key here with mode 0600; nothing is written without it. */
  keyCopyPath?: string;
  validityYears?: number;
  now?: Date;
}

/** The SHA-256 fingerprint of a PEM certificate, as colon-separated upper-case hex. */
export function certificateFingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

function toPem(der: ArrayBuffer, label: string): string {
  return x509.PemConverter.encode(der, label);
}

/**
 * The cluster's own certificate authority. Its key lives in etcd so any node can issue its
 * own serving certificate; every node trusts the one CA the first node created.
 */
export class ClusterCa {
  private constructor(
    readonly certificatePem: string,
    private readonly certificate: x509.X509Certificate,
    private readonly signingKey: webcrypto.CryptoKey,
  ) {}

  /** Reads the cluster's CA, creating it first if there is none; racing nodes agree on one. */
  static async loadOrCreate(kv: KeyValue, key: string, options: ClusterCaOptions): Promise<ClusterCa> {
    let stored = await kv.get(key);
    if (stored === null) {
      const candidate = await ClusterCa.generate(options);
      stored = await kv.putIfAbsent(key, JSON.stringify(candidate));
    }
    const parsed = ClusterCa.parseStored(stored, key);
    if (options.keyCopyPath) writePrivateFile(options.keyCopyPath, parsed.privateKey);
    return await ClusterCa.fromPem(parsed.certificate, parsed.privateKey);
  }

  static async fromPem(certificatePem: string, privateKeyPem: string): Promise<ClusterCa> {
    const pkcs8 = createPrivateKey(privateKeyPem).export({ type: 'pkcs8', format: 'der' });
    const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, KEY_ALGORITHM, false, ['sign']);
    return new ClusterCa(certificatePem, new x509.X509Certificate(certificatePem), signingKey);
  }

  private static parseStored(text: string, key: string): StoredCa {
    try {
      const value = JSON.parse(text) as Partial<StoredCa>;
      if (value.version === 1 && typeof value.certificate === 'string' && typeof value.privateKey === 'string') {
        return value as StoredCa;
      }
    } catch {
      // Reported below.
    }
    throw new Error(`the cluster CA stored at ${key} is unreadable; delete the key to create a new CA`);
  }

  private static async generate(options: ClusterCaOptions): Promise<StoredCa> {
    const now = options.now ?? new Date();
    const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
    const certificate = await x509.X509CertificateGenerator.createSelfSigned({
      name: `CN=vipd cluster CA ${options.cluster}, O=vipd`,
      keys,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(now.getTime() + (options.validityYears ?? 10) * 365 * DAY_MS),
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const privateKey = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
    return { version: 1, certificate: certificate.toString('pem'), privateKey: toPem(privateKey, 'PRIVATE KEY') };
  }

  caFingerprint(): string {
    return certificateFingerprint(this.certificatePem);
  }

  get notAfter(): Date {
    return this.certificate.notAfter;
  }

  /** A certificate for one node's HTTPS server, valid for the VIP, the node's IP and name, and the FQDN. */
  async issueServingCertificate(request: ServingCertificateRequest): Promise<IssuedCertificate> {
    const now = request.now ?? new Date();
    const notAfter = new Date(
      Math.min(now.getTime() + (request.validityDays ?? 90) * DAY_MS, this.certificate.notAfter.getTime()),
    );
    const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
    const certificate = await x509.X509CertificateGenerator.create({
      subject: `CN=${request.nodeName}, O=vipd`,
      issuer: this.certificate.subject,
      publicKey: keys.publicKey,
      signingKey: this.signingKey,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(subjectAltNames(request)),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(this.certificate.publicKey),
      ],
    });
    const privateKey = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
    return {
      chain: certificate.toString('pem') + '\n' + this.certificatePem.trim() + '\n',
      privateKey: toPem(privateKey, 'PRIVATE KEY'),
      notAfter,
    };
  }
}

function subjectAltNames(request: ServingCertificateRequest): Array<{ type: 'ip' | 'dns'; value: string }> {
  const names: Array<{ type: 'ip' | 'dns'; value: string }> = [];
  const seen = new Set<string>();
  for (const value of [request.vip, request.nodeIp, request.fqdn, request.nodeName]) {
    if (!value || seen.has(value)) continue;
    seen.add(value);
    names.push({ type: isIP(value) ? 'ip' : 'dns', value });
  }
  return names;
}

/** Writes through a temporary file so the key is never readable by others, not even briefly. */
function writePrivateFile(path: string, contents: string): void {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  writeFileSync(temporary, contents, { mode: 0o600 });
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
}
