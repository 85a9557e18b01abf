import { createHash, randomBytes, timingSafeEqual, X509Certificate } from 'node:crypto';
import { InputError } from '../config/schema-check';
import type { KeyValue } from '../store/kv';
import type { SecurityKeys } from '../store/keys';

/** read and admin are API bearer tokens; a join token only lets a new node join (POST /v1/join). */
export type TokenRole = 'read' | 'admin' | 'join';
export const TOKEN_ROLES: readonly TokenRole[] = ['read', 'admin', 'join'];

/** What is known about a token, safe to show: there is no secret in it. */
export interface TokenRecord {
  id: string;
  role: TokenRole;
  description: string;
  created: string;
  /** null: never expires. */
  expires: string | null;
  /** Join tokens: how many joins it allows (null: any number until it expires). Absent on API tokens. */
  uses?: number | null;
  /** Join tokens: joins it has let through so far. */
  used?: number;
  /** The node whose CLI made it: `vipd node remove` deletes a removed node's tokens with it. */
  createdOn?: string;
}

interface StoredToken extends TokenRecord {
  /** SHA-256 of the secret, hex. A slow hash buys nothing for 256 random bits. */
  hash: string;
}

export interface CreatedToken {
  /** The bearer token, shown once: only its hash is stored. A join token is prefixed with the CA's hash (see joinToken). */
  token: string;
  record: TokenRecord;
}

export interface CreateTokenRequest {
  role: TokenRole;
  description?: string;
  /** Lifetime in ms; null for a token that never expires (not for join tokens). Default 24 h. */
  ttlMs?: number | null;
  /** Join tokens only: how many joins it allows; null or absent: any number until it expires. */
  uses?: number | null;
  /** The node making it. */
  createdOn?: string;
}

/** What the API server needs: who is calling, or null for any kind of bad token. */
export interface TokenVerifier {
  verify(token: string): Promise<TokenRecord | null>;
}

export const DEFAULT_TOKEN_TTL_MS = 24 * 60 * 60 * 1000;
const TOKEN_FORMAT = /^vipd_([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;
const JOIN_TOKEN_FORMAT = /^vipd-join:([0-9a-f]{64}):(vipd_[0-9a-f]{16}\.[A-Za-z0-9_-]{43})$/;

/**
 * A join token: `vipd-join:<sha256 of the cluster CA certificate, hex>:<bearer token>`. The
 * hash lets the joining node pick the cluster CA out of what an untrusted server presents,
 * as a kubeadm discovery token does; the bearer part is checked by the server, hashed.
 */
export function joinToken(caCertificatePem: string, bearer: string): string {
  const hash = new X509Certificate(caCertificatePem).fingerprint256.replace(/:/g, '').toLowerCase();
  return `vipd-join:${hash}:${bearer}`;
}

export function parseJoinToken(text: string): { caHash: string; bearer: string } | null {
  const match = JOIN_TOKEN_FORMAT.exec(text.trim());
  return match ? { caHash: match[1]!, bearer: match[2]! } : null;
}

/** Why a join token was refused; "expired" and "used-up" are told only to whoever knows the secret. */
export type JoinTokenCheck = { ok: true; record: TokenRecord } | { ok: false; reason: 'invalid' | 'expired' | 'used-up' };
/** The outcome of spending one use of a join token. */
export type JoinTokenSpend = { ok: true; record: TokenRecord } | { ok: false; reason: 'invalid' | 'expired' | 'used-up' };
/** Upper bound of --uses: more is "unlimited" in practice, and says so more honestly. */
export const MAX_TOKEN_USES = 1000;
// Concurrent joins spending one token retry their compare-and-swap this often before giving up.
const SPEND_ATTEMPTS = 20;
// Compared against when the id is unknown, so a miss costs the same as a wrong secret.
const DUMMY_HASH = Buffer.alloc(32);

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Parses --ttl: 30m, 24h, 7d, or "never". */
export function parseTokenTtl(text: string): number | null {
  if (text === 'never') return null;
  const match = /^([1-9][0-9]{0,5})(s|m|h|d)$/.exec(text);
  if (!match) throw new InputError('--ttl', `"${text}" is not a lifetime like 90s, 30m, 24h, 7d or "never"`);
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
}

/** Parses --uses: a count from 1 to MAX_TOKEN_USES, or "unlimited" (null). */
export function parseTokenUses(text: string): number | null {
  if (text === 'unlimited') return null;
  const count = /^[1-9][0-9]{0,3}$/.test(text) ? Number(text) : NaN;
  if (!(count <= MAX_TOKEN_USES)) throw new InputError('--uses', `"${text}" is not a number of joins from 1 to ${MAX_TOKEN_USES}, or "unlimited"`);
  return count;
}

/** A join token with a use limit that has been spent. */
export function isUsedUp(record: TokenRecord): boolean {
  return typeof record.uses === 'number' && (record.used ?? 0) >= record.uses;
}

export function isExpired(record: TokenRecord, now: Date): boolean {
  return record.expires !== null && now.getTime() >= new Date(record.expires).getTime();
}

/** API bearer tokens, kept in etcd as hashes. */
export class TokenStore implements TokenVerifier {
  constructor(
    private readonly kv: KeyValue,
    private readonly keys: SecurityKeys,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async create(request: CreateTokenRequest): Promise<CreatedToken> {
    if (!TOKEN_ROLES.includes(request.role)) throw new InputError('--role', 'must be "read", "admin" or "join"');
    // A join token names the CA; without one there is nothing to join yet.
    const caPem = request.role === 'join' ? await this.caCertificate() : null;
    const description = request.description ?? '';
    if (description.length > 200 || /[\u0000-\u001f\u007f]/.test(description)) {
      throw new InputError('--description', 'must be at most 200 characters, without control characters');
    }
    const ttlMs = request.ttlMs === undefined ? DEFAULT_TOKEN_TTL_MS : request.ttlMs;
    // A join token hands out a node certificate: one that never expires is a standing key to the cluster.
    if (request.role === 'join' && ttlMs === null) {
      throw new InputError('--ttl', 'a join token must expire: give a lifetime like 2h or 7d ("never" is only for read and admin tokens)');
    }
    const uses = request.uses ?? null;
    if (request.role !== 'join' && uses !== null) throw new InputError('--uses', 'only join tokens have a use limit');
    if (uses !== null && !(Number.isInteger(uses) && uses >= 1 && uses <= MAX_TOKEN_USES)) {
      throw new InputError('--uses', `must be a number of joins from 1 to ${MAX_TOKEN_USES}`);
    }
    const created = this.now();
    for (let attempt = 0; attempt < 3; attempt++) {
      const id = randomBytes(8).toString('hex');
      const secret = randomBytes(32).toString('base64url');
      const record: TokenRecord = {
        id,
        role: request.role,
        description,
        created: created.toISOString(),
        expires: ttlMs === null ? null : new Date(created.getTime() + ttlMs).toISOString(),
        ...(request.role === 'join' ? { uses, used: 0 } : {}),
        ...(request.createdOn ? { createdOn: request.createdOn } : {}),
      };
      const stored: StoredToken = { ...record, hash: hashSecret(secret).toString('hex') };
      const value = JSON.stringify(stored);
      // An id collision (64 random bits) would silently replace a token; putIfAbsent refuses it.
      if ((await this.kv.putIfAbsent(this.keys.token(id), value)) === value) {
        const bearer = `vipd_${id}.${secret}`;
        return { token: caPem ? joinToken(caPem, bearer) : bearer, record };
      }
    }
    throw new Error('could not find a free token id');
  }

  async list(): Promise<Array<TokenRecord & { expired: boolean; remaining?: number | null }>> {
    const now = this.now();
    const records: Array<TokenRecord & { expired: boolean; remaining?: number | null }> = [];
    for (const { value } of await this.kv.getPrefix(this.keys.tokensPrefix)) {
      const stored = parseStored(value);
      if (!stored) continue;
      const { hash: _hash, ...record } = stored;
      const remaining = record.role === 'join' ? (typeof record.uses === 'number' ? Math.max(0, record.uses - (record.used ?? 0)) : null) : undefined;
      records.push({ ...record, expired: isExpired(record, now), ...(remaining !== undefined ? { remaining } : {}) });
    }
    return records.sort((a, b) => a.created.localeCompare(b.created));
  }

  async delete(id: string): Promise<boolean> {
    if (!/^[0-9a-f]{16}$/.test(id)) return false;
    return await this.kv.delete(this.keys.token(id));
  }

  /** An API bearer token's record if it is valid now; null for a malformed, unknown, wrong, expired or join token. */
  async verify(token: string): Promise<TokenRecord | null> {
    const checked = await this.check(token);
    return checked.ok && checked.record.role !== 'join' ? checked.record : null;
  }

  /** A join token's bearer part (`vipd_…`): valid, or why not. */
  async checkJoin(bearer: string): Promise<JoinTokenCheck> {
    const checked = await this.check(bearer);
    if (checked.ok && checked.record.role !== 'join') return { ok: false, reason: 'invalid' };
    return checked;
  }

  /**
   * Spends one use of a join token, by id (the route checked its secret): a compare-and-swap
   * on the record's mod revision, so two joins racing for the last use cannot both have it.
   */
  async spendJoin(id: string): Promise<JoinTokenSpend> {
    if (!/^[0-9a-f]{16}$/.test(id)) return { ok: false, reason: 'invalid' };
    const key = this.keys.token(id);
    for (let attempt = 0; attempt < SPEND_ATTEMPTS; attempt++) {
      const current = await this.kv.getRevision(key);
      const stored = current ? parseStored(current.value) : null;
      if (!current || !stored || stored.role !== 'join') return { ok: false, reason: 'invalid' };
      if (isExpired(stored, this.now())) return { ok: false, reason: 'expired' };
      if (isUsedUp(stored)) return { ok: false, reason: 'used-up' };
      const spent: StoredToken = { ...stored, used: (stored.used ?? 0) + 1 };
      if (await this.kv.compareAndPut(key, JSON.stringify(spent), current.modRevision)) {
        const { hash: _hash, ...record } = spent;
        return { ok: true, record };
      }
    }
    throw new Error(`join token ${id}: too many concurrent joins spending it; try again`);
  }

  private async check(token: string): Promise<JoinTokenCheck> {
    const match = TOKEN_FORMAT.exec(token);
    if (!match) return { ok: false, reason: 'invalid' };
    const [, id, secret] = match as unknown as [string, string, string];
    const stored = parseStored(await this.kv.get(this.keys.token(id)));
    const expected = stored && /^[0-9a-f]{64}$/.test(stored.hash) ? Buffer.from(stored.hash, 'hex') : DUMMY_HASH;
    const matches = timingSafeEqual(hashSecret(secret), expected);
    if (!stored || !matches) return { ok: false, reason: 'invalid' };
    if (isExpired(stored, this.now())) return { ok: false, reason: 'expired' };
    if (isUsedUp(stored)) return { ok: false, reason: 'used-up' };
    const { hash: _hash, ...record } = stored;
    return { ok: true, record };
  }

  private async caCertificate(): Promise<string> {
    const stored = await this.kv.get(this.keys.ca);
    const certificate = stored ? (JSON.parse(stored) as { certificate?: unknown }).certificate : undefined;
    if (typeof certificate !== 'string') throw new InputError('--role', 'a join token needs the cluster CA, and this cluster has none yet');
    return certificate;
  }
}

function parseStored(value: string | null): StoredToken | null {
  if (value === null) return null;
  try {
    const stored = JSON.parse(value) as StoredToken;
    if (typeof stored.id !== 'string' || typeof stored.hash !== 'string' || !TOKEN_ROLES.includes(stored.role)) return null;
    return stored;
  } catch {
    return null;
  }
}
