import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { InputError } from '../config/schema-check';

/**
 * The cluster key: 32 random bytes made by `vipd init`, kept in the data dir (0600) of the
 * nodes that sign (issue certificates, serve joins) and never in etcd. It seals the CA's
 * private key at rest, so an etcd client certificate or a copy of etcd's data alone does
 * not give the CA (k3s does the same with its server token).
 */
const PREFIX = 'vipd-key:';

/** A secret sealed with the cluster key, as it is stored in etcd (base64 fields). */
export interface SealedSecret {
  alg: 'A256GCM';
  iv: string;
  tag: string;
  data: string;
}
const KEY_BYTES = 32;

export function generateClusterKey(): string {
  return PREFIX + randomBytes(KEY_BYTES).toString('base64url');
}

/** Never quotes the text: it is a secret. */
export function parseClusterKey(text: string, field: string): Buffer {
  const trimmed = text.trim();
  const key = trimmed.startsWith(PREFIX) ? Buffer.from(trimmed.slice(PREFIX.length), 'base64url') : null;
  if (!key || key.length !== KEY_BYTES) {
    throw new InputError(field, `must be a cluster key as \`vipd init\` prints it (${PREFIX} followed by 43 base64url characters)`);
  }
  return key;
}

export function readClusterKeyFile(path: string, field = 'security.clusterKeyFile'): Buffer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new InputError(field, `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return parseClusterKey(text, field);
}

export function formatClusterKey(key: Buffer): string {
  return PREFIX + key.toString('base64url');
}

// One derived key per purpose and cluster (RFC 5869): the raw key is never used directly.
function derive(clusterKey: Buffer, cluster: string, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', clusterKey, Buffer.from(`vipd/${cluster}`), Buffer.from(purpose), 32));
}

/** AES-256-GCM; the key name rides in the additional data, so a sealed value cannot be moved to another record. */
export function sealSecret(clusterKey: Buffer, cluster: string, name: string, plaintext: string): SealedSecret {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', derive(clusterKey, cluster, 'seal'), iv);
  cipher.setAAD(Buffer.from(name));
  const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return { alg: 'A256GCM', iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
}

export class WrongClusterKeyError extends Error {
  constructor(what: string) {
    super(`the cluster key does not open ${what}: this node's key belongs to another cluster, or the record was altered`);
    this.name = 'WrongClusterKeyError';
  }
}

export function openSecret(clusterKey: Buffer, cluster: string, name: string, sealed: SealedSecret): string {
  try {
    const decipher = createDecipheriv('aes-256-gcm', derive(clusterKey, cluster, 'seal'), Buffer.from(sealed.iv, 'base64'));
    decipher.setAAD(Buffer.from(name));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    throw new WrongClusterKeyError(name);
  }
}

/**
 * What a joining node sends to show it holds the cluster key without sending it: an HMAC
 * of its name, so a proof made for one node cannot be replayed for another.
 */
export function signerProof(clusterKey: Buffer, cluster: string, node: string): string {
  return createHmac('sha256', derive(clusterKey, cluster, 'signer-proof')).update(node).digest('base64url');
}

export function checkSignerProof(clusterKey: Buffer, cluster: string, node: string, proof: string): boolean {
  const expected = Buffer.from(signerProof(clusterKey, cluster, node));
  const given = Buffer.from(proof);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
