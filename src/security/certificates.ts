import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import { InputError } from '../config/schema-check';
import type { IssuedCertificate, ServingCertificateRequest } from './ca';
import { isPermissionDenied } from '../store/access';
import type { KeyValue } from '../store/kv';
import type { SecurityKeys } from '../store/keys';
import { SERVER_CIPHERS, SERVER_MIN_TLS } from './tls-policy';

/** What a user uploads: PEM text, as Harvester's ssl-certificates setting takes it. */
export interface CertificateUpload {
  certificate: string;
  privateKey: string;
  caChain?: string | undefined;
}

/** What may be shown about a certificate: never the key. */
export interface CertificateSummary {
  source: 'uploaded' | 'generated';
  subject: string;
  issuer: string;
  fingerprint: string;
  notBefore: string;
  notAfter: string;
  dnsNames: string[];
  ipAddresses: string[];
  /** Set when the certificate is served but clients may complain (e.g. no IP SAN for the VIP). */
  warning: string | null;
}

export interface CertificateTarget {
  vip: string;
  fqdn: string | null;
  now?: Date;
}

export interface ValidatedCertificate {
  summary: CertificateSummary;
  /** Leaf first, then intermediates and the CA chain, normalised PEM. */
  chain: string;
  privateKey: string;
}

/** Accepts uploads; the API server needs only this. */
export interface CertificateUploader {
  upload(upload: CertificateUpload): Promise<CertificateSummary>;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function parseCertificates(text: string, field: string): X509Certificate[] {
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new InputError(field, 'must hold a PEM certificate (-----BEGIN CERTIFICATE-----)');
  return blocks.map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch {
      throw new InputError(field, `certificate ${index + 1} is not a valid PEM certificate`);
    }
  });
}

function parsePrivateKey(text: string): KeyObject {
  try {
    // An empty passphrase makes an encrypted key fail here instead of prompting.
    return createPrivateKey({ key: text, format: 'pem', passphrase: '' });
  } catch {
    // Never quote the input: it is a secret.
    throw new InputError('privateKey', 'must be an unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1)');
  }
}

function splitAltNames(certificate: X509Certificate): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const entry of (certificate.subjectAltName ?? '').split(', ')) {
    if (entry.startsWith('DNS:')) dnsNames.push(entry.slice(4));
    else if (entry.startsWith('IP Address:')) ipAddresses.push(entry.slice(11).toLowerCase());
  }
  return { dnsNames, ipAddresses };
}

export function summarize(
  certificate: X509Certificate,
  source: CertificateSummary['source'],
  warning: string | null,
): CertificateSummary {
  return {
    source,
    subject: certificate.subject.replace(/\n/g, ', '),
    issuer: certificate.issuer.replace(/\n/g, ', '),
    fingerprint: certificate.fingerprint256,
    notBefore: new Date(certificate.validFrom).toISOString(),
    notAfter: new Date(certificate.validTo).toISOString(),
    ...splitAltNames(certificate),
    warning,
  };
}

/**
 * Checks an uploaded certificate before any node serves it. Throws InputError naming the
 * field for anything that would break HTTPS; a missing VIP IP SAN is only a warning, since
 * people who use the FQDN never see it.
 */
export function validateCertificateUpload(upload: CertificateUpload, target: CertificateTarget): ValidatedCertificate {
  const now = target.now ?? new Date();
  const [leaf, ...intermediates] = parseCertificates(upload.certificate, 'certificate');
  if (!leaf) throw new InputError('certificate', 'must hold a PEM certificate');
  const caChain = upload.caChain !== undefined ? parseCertificates(upload.caChain, 'caChain') : [];
  const key = parsePrivateKey(upload.privateKey);
  if (!leaf.checkPrivateKey(key)) throw new InputError('privateKey', 'does not match the certificate');

  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (now < notBefore) throw new InputError('certificate', `is not valid yet (valid from ${notBefore.toISOString()})`);
  if (now > notAfter) throw new InputError('certificate', `expired on ${notAfter.toISOString()}`);

  const names = splitAltNames(leaf);
  if (target.fqdn && leaf.checkHost(target.fqdn, { subject: 'never' }) === undefined) {
    const listed = names.dnsNames.length > 0 ? names.dnsNames.join(', ') : 'no DNS names';
    throw new InputError('certificate', `does not cover the cluster FQDN ${target.fqdn} (it lists ${listed})`);
  }

  const others = [...intermediates, ...caChain];
  if (others.length > 0 && !others.some((issuer) => leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey))) {
    throw new InputError(upload.caChain !== undefined ? 'caChain' : 'certificate', 'does not contain the issuer of the certificate');
  }

  const warning =
    leaf.checkIP(target.vip) === undefined
      ? `the certificate does not list the VIP ${target.vip} as an IP SAN: clients that connect to https://${bracketed(target.vip)} will see a name mismatch`
      : null;
  const chain = [leaf, ...others].map((certificate) => certificate.toString().trim()).join('\n') + '\n';
  const privateKey = key.export({ type: 'pkcs8', format: 'pem' }).toString();
  return { summary: summarize(leaf, 'uploaded', warning), chain, privateKey };
}

function bracketed(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

interface StoredUpload {
  version: 1;
  certificate: string;
  privateKey: string;
  uploaded: string;
}

/** Where a node's own HTTPS certificate comes from: the cluster CA (a signing node) or its join. */
export interface ServingIssuer {
  issueServingCertificate(request: ServingCertificateRequest): Promise<IssuedCertificate>;
  caFingerprint(): string;
}

/**
 * A node without the cluster key cannot sign: it serves the certificate the cluster CA gave
 * it at join (names: the VIP, its IP and name, the FQDN), read from its data dir.
 */
export class CertificateIssuedAtJoin implements ServingIssuer {
  constructor(private readonly paths: { cert: string; key: string }) {}

  async issueServingCertificate(): Promise<IssuedCertificate> {
    const chain = readFileSync(this.paths.cert, 'utf8');
    return { chain, privateKey: readFileSync(this.paths.key, 'utf8'), notAfter: new Date(new X509Certificate(chain).validTo) };
  }

  caFingerprint(): string {
    const blocks = readFileSync(this.paths.cert, 'utf8').match(PEM_CERTIFICATE) ?? [];
    return new X509Certificate(blocks[blocks.length - 1] ?? '').fingerprint256;
  }
}

export interface ServingCertificatesOptions {
  kv: KeyValue;
  keys: SecurityKeys;
  ca: ServingIssuer;
  node: { name: string; ip: string };
  vip: string;
  fqdn: string | null;
  /** How often to re-read the uploaded certificate, in case a watch event was missed. */
  pollMs?: number;
  /** Re-issue the generated certificate when less than this is left. */
  renewBeforeMs?: number;
  logger?: Logger;
  now?: () => Date;
}

interface Served {
  key: string;
  cert: string;
  summary: CertificateSummary;
  /** The etcd value this came from, to tell whether a re-read changed anything. */
  storedValue: string | null;
}

/**
 * The certificate this node's HTTPS server presents: the uploaded one when there is a valid
 * one in etcd, otherwise one issued by the cluster CA. Every node follows etcd and swaps its
 * server's secure context in place, so an upload takes effect without a restart.
 */
export class ServingCertificates implements CertificateUploader {
  private generated: { key: string; cert: string; notAfter: Date; summary: CertificateSummary } | null = null;
  private served: Served | null = null;
  private readonly servers = new Set<TlsServer>();
  private pollTimer: NodeJS.Timeout | undefined;
  private stopWatch: (() => void) | undefined;
  private refreshing: Promise<void> | null = null;
  /** Why the uploaded certificate in etcd is not served, shown as the warning. */
  private uploadProblem: string | null = null;
  private readonly now: () => Date;

  /** The address clients dial: fixed in static mode, the leased one in DHCP mode. */
  private vip: string;

  constructor(private readonly options: ServingCertificatesOptions) {
    this.now = options.now ?? (() => new Date());
    this.vip = options.vip;
  }

  /** DHCP mode: the served address changed, so the generated certificate must name the new one. */
  async setVip(vip: string): Promise<void> {
    if (vip === this.vip) return;
    this.vip = vip;
    this.generated = null;
    this.served = null;
    await this.refresh();
  }

  /** Issues the generated certificate and reads the uploaded one; call before tlsOptions(). */
  async start(): Promise<void> {
    await this.refresh();
    if (this.options.kv.watch) {
      this.stopWatch = await this.options.kv.watch(this.options.keys.uploadedCertificate, () => void this.refresh());
    }
    this.pollTimer = setInterval(() => void this.refresh(), this.options.pollMs ?? 30_000);
    this.pollTimer.unref();
  }

  stop(): void {
    clearInterval(this.pollTimer);
    this.stopWatch?.();
    this.servers.clear();
  }

  /** The key and chain to pass to https.createServer (or Fastify's `https` option). */
  tlsOptions(): { key: string; cert: string } {
    if (!this.served) throw new Error('ServingCertificates.start() has not finished');
    return { key: this.served.key, cert: this.served.cert };
  }

  /** From now on, a changed certificate is put into this server without a restart. */
  attach(server: TlsServer): void {
    this.servers.add(server);
  }

  status(): CertificateSummary {
    if (!this.served) throw new Error('ServingCertificates.start() has not finished');
    return this.served.summary;
  }

  async upload(upload: CertificateUpload): Promise<CertificateSummary> {
    const checked = validateCertificateUpload(upload, { vip: this.vip, fqdn: this.options.fqdn, now: this.now() });
    const stored: StoredUpload = {
      version: 1,
      certificate: checked.chain,
      privateKey: checked.privateKey,
      uploaded: this.now().toISOString(),
    };
    try {
      await this.options.kv.put(this.options.keys.uploadedCertificate, JSON.stringify(stored));
    } catch (error) {
      if (!isPermissionDenied(error)) throw error;
      // 503: the same request through a signing node's own address works.
      throw Object.assign(new Error('this node may not store certificates (it does not hold the cluster key): upload through a signing node\'s address, or move the VIP to one'), { statusCode: 503 });
    }
    await this.refresh();
    return checked.summary;
  }

  /** Re-reads etcd and swaps the served certificate if it changed; safe to call at any time. */
  refresh(): Promise<void> {
    // One refresh at a time; a call during one waits for it and then runs again.
    const previous = this.refreshing ?? Promise.resolve();
    const next = previous.then(() => this.refreshOnce()).catch((error: Error) => {
      this.options.logger?.warn({ err: error.message }, 'could not refresh the serving certificate');
    });
    this.refreshing = next;
    return next;
  }

  private async refreshOnce(): Promise<void> {
    let stored: string | null;
    try {
      stored = await this.options.kv.get(this.options.keys.uploadedCertificate);
    } catch (error) {
      // Keep serving what we have; with nothing yet, serve the generated one until etcd answers.
      if (this.served) throw error;
      this.options.logger?.warn({ err: (error as Error).message }, 'cannot read the uploaded certificate; serving the generated one');
      stored = null;
    }
    if (this.served && stored === this.served.storedValue && !this.servedNeedsReplacing()) return;
    const next = stored !== null ? this.fromUpload(stored) : null;
    const chosen = next ?? (await this.fromGenerated(stored));
    const changed = !this.served || this.served.cert !== chosen.cert;
    this.served = chosen;
    if (changed) {
      for (const server of this.servers) server.setSecureContext({ key: chosen.key, cert: chosen.cert, ciphers: SERVER_CIPHERS, minVersion: SERVER_MIN_TLS });
      this.options.logger?.info(
        { source: chosen.summary.source, fingerprint: chosen.summary.fingerprint, notAfter: chosen.summary.notAfter },
        'serving certificate changed',
      );
    }
  }

  private fromUpload(storedValue: string): Served | null {
    let stored: StoredUpload;
    try {
      stored = JSON.parse(storedValue) as StoredUpload;
    } catch {
      this.uploadProblem = 'the uploaded certificate in etcd is unreadable; upload it again';
      this.options.logger?.error('the uploaded certificate in etcd is unreadable; serving the generated one');
      return null;
    }
    try {
      const checked = validateCertificateUpload(
        { certificate: stored.certificate, privateKey: stored.privateKey },
        { vip: this.vip, fqdn: this.options.fqdn, now: this.now() },
      );
      return { key: checked.privateKey, cert: checked.chain, summary: checked.summary, storedValue };
    } catch (error) {
      // E.g. it expired since the upload: fall back rather than serve what clients reject.
      this.uploadProblem = `the uploaded certificate is not served: ${(error as Error).message}`;
      this.options.logger?.warn({ problem: (error as Error).message }, 'uploaded certificate not usable; serving the generated one');
      return null;
    }
  }

  private async fromGenerated(storedValue: string | null): Promise<Served> {
    if (!this.generated || this.expiresSoon(this.generated.notAfter)) {
      const issued = await this.options.ca.issueServingCertificate({
        nodeName: this.options.node.name,
        nodeIp: this.options.node.ip,
        vip: this.vip,
        fqdn: this.options.fqdn,
        now: this.now(),
      });
      const leaf = new X509Certificate(issued.chain);
      this.generated = {
        key: issued.privateKey,
        cert: issued.chain,
        notAfter: issued.notAfter,
        summary: summarize(leaf, 'generated', null),
      };
    }
    const warning = storedValue !== null ? this.uploadProblem : null;
    return {
      key: this.generated.key,
      cert: this.generated.cert,
      summary: { ...this.generated.summary, warning },
      storedValue,
    };
  }

  /** A generated certificate is renewed early; an uploaded one is dropped once it has expired. */
  private servedNeedsReplacing(): boolean {
    if (!this.served) return true;
    const notAfter = new Date(this.served.summary.notAfter);
    return this.served.summary.source === 'generated' ? this.expiresSoon(notAfter) : this.now() > notAfter;
  }

  private expiresSoon(notAfter: Date): boolean {
    return notAfter.getTime() - this.now().getTime() < (this.options.renewBeforeMs ?? 30 * 24 * 60 * 60 * 1000);
  }
}
