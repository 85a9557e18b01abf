// @peculiar/x509 resolves its parts through tsyringe, which needs the Reflect metadata API first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, webcrypto, X509Certificate } from 'node:crypto';
import { chmodSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { basename, dirname, join } from 'node:path';
import type { KeyValue } from '../store/kv';
import { openSecret, sealSecret, type SealedSecret } from './cluster-key';

// Node's crypto verifies certificates but cannot issue them; x509 signs through WebCrypto.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
// Nodes' clocks differ a little; a certificate valid "from now" would fail on a node behind.
const BACKDATE_MS = 5 * 60 * 1000;

/**
 * The CA record at security/ca. Version 2 seals the private key with the cluster key;
 * version 1 kept it in plain text and is still read (a cluster set up by hand, without
 * `vipd init`, has no cluster key).
 */
type StoredCa =
  | { version: 1; certificate: string; privateKey: string }
  | { version: 2; certificate: string; sealedKey: SealedSecret };

/** The CA's certificate and private key, in memory only. */
export interface CaMaterial {
  certificate: string;
  privateKey: string;
}

/** What opens a sealed CA key: the cluster key and the cluster's name. */
export interface CaSeal {
  clusterKey: Buffer;
  cluster: string;
}

const SEALED_NAME = 'cluster CA private key';

/** A node without the cluster key cannot sign: it is told so, not handed a cryptic error. */
export class CaLockedError extends Error {
  constructor() {
    super('the cluster CA\'s private key is sealed with the cluster key, which this node does not have: only signing nodes (vipd init, vipd join --cluster-key) issue certificates');
    this.name = 'CaLockedError';
  }
}

function parseCaRecord(text: string, key: string): StoredCa {
  try {
    const value = JSON.parse(text) as Partial<{ version: number; certificate: string; privateKey: string; sealedKey: Partial<SealedSecret> }>;
    if (typeof value.certificate === 'string') {
      if (value.version === 1 && typeof value.privateKey === 'string') return { version: 1, certificate: value.certificate, privateKey: value.privateKey };
      const sealed = value.sealedKey;
      if (value.version === 2 && sealed?.alg === 'A256GCM' && typeof sealed.iv === 'string' && typeof sealed.tag === 'string' && typeof sealed.data === 'string') {
        return { version: 2, certificate: value.certificate, sealedKey: { alg: 'A256GCM', iv: sealed.iv, tag: sealed.tag, data: sealed.data } };
      }
    }
  } catch {
    // Reported below.
  }
  throw new Error(`the cluster CA stored at ${key} is unreadable; delete the key to create a new CA`);
}

/** The record to store: sealed when a cluster key is given. */
export function encodeCaRecord(material: CaMaterial, seal: CaSeal | null): string {
  const record: StoredCa = seal
    ? { version: 2, certificate: material.certificate, sealedKey: sealSecret(seal.clusterKey, seal.cluster, SEALED_NAME, material.privateKey) }
    : { version: 1, certificate: material.certificate, privateKey: material.privateKey };
  return JSON.stringify(record);
}

/** Certificate and key from the stored record; CaLockedError when sealed and this node has no cluster key. */
export function decodeCaRecord(text: string, key: string, seal: CaSeal | null): CaMaterial {
  const record = parseCaRecord(text, key);
  if (record.version === 1) return { certificate: record.certificate, privateKey: record.privateKey };
  if (!seal) throw new CaLockedError();
  return { certificate: record.certificate, privateKey: openSecret(seal.clusterKey, seal.cluster, SEALED_NAME, record.sealedKey) };
}

/** Whether signing needs the cluster key (version 2); a version 1 record any node can use. */
export function isSealedCaRecord(text: string, key: string): boolean {
  return parseCaRecord(text, key).version === 2;
}

/** The CA certificate alone (public): what status, `vipd ca` and plain nodes read. */
export function caCertificateOf(text: string, key: string): string {
  return parseCaRecord(text, key).certificate;
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
  /** Seals a new CA's key, and opens a sealed one; null: a version 1 record (plain text). */
  clusterKey?: Buffer | null;
  /** Writes the CA key here with mode 0600; nothing is written without it. */
  keyCopyPath?: string;
  validityYears?: number;
  now?: Date;
}

/** The SHA-256 fingerprint of a PEM certificate, as colon-separated upper-case hex. */
export function certificateFingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/** The subject's CN: the etcd user a client certificate stands for under `--client-cert-auth`. Null when it has none. */
export function certificateCommonName(pem: string): string | null {
  const line = new X509Certificate(pem).subject.split('\n').find((part) => part.startsWith('CN='));
  return line ? line.slice(3) : null;
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
    const seal = options.clusterKey ? { clusterKey: options.clusterKey, cluster: options.cluster } : null;
    let stored = await kv.get(key);
    if (stored === null) stored = await kv.putIfAbsent(key, encodeCaRecord(await ClusterCa.generate(options), seal));
    const material = decodeCaRecord(stored, key, seal);
    if (options.keyCopyPath) writePrivateFile(options.keyCopyPath, material.privateKey);
    return await ClusterCa.fromPem(material.certificate, material.privateKey);
  }

  static async fromPem(certificatePem: string, privateKeyPem: string): Promise<ClusterCa> {
    const pkcs8 = createPrivateKey(privateKeyPem).export({ type: 'pkcs8', format: 'der' });
    const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, KEY_ALGORITHM, false, ['sign']);
    return new ClusterCa(certificatePem, new x509.X509Certificate(certificatePem), signingKey);
  }

  /** A new CA's certificate and key. */
  static async generate(options: { cluster: string; validityYears?: number; now?: Date }): Promise<CaMaterial> {
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
    return { certificate: certificate.toString('pem'), privateKey: toPem(privateKey, 'PRIVATE KEY') };
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
