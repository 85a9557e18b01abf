import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { InputError } from '../config/schema-check';
import type { KeyValue } from './kv';
import type { SecurityKeys } from './security-keys';

export type TokenRole = 'read' | 'admin';
export const TOKEN_ROLES: readonly TokenRole[] = ['read', 'admin'];

/** What is known about a token, safe to show: there is no secret in it. */
export interface TokenRecord {
  id: string;
  role: TokenRole;
  description: string;
  created: string;
  /** null: never expires. */
  expires: string | null;
}

interface StoredToken extends TokenRecord {
  /** SHA-256 of the secret, hex. A slow hash buys nothing for 256 random bits. */
  hash: string;
}

export interface CreatedToken {
  /** The bearer token, shown once: only its hash is stored. */
  token: string;
  record: TokenRecord;
}

export interface CreateTokenRequest {
  role: TokenRole;
  description?: string;
  /** Lifetime in ms; null for a token that never expires. Default 24 h. */
  ttlMs?: number | null;
}

/** What the API server needs: who is calling, or null for any kind of bad token. */
export interface TokenVerifier {
  verify(token: string): Promise<TokenRecord | null>;
}

export const DEFAULT_TOKEN_TTL_MS = 24 * 60 * 60 * 1000;
const TOKEN_FORMAT = /^vipd_([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;
// Compared against when the id is unknown, so a miss costs the same as a wrong secret.
const DUMMY_HASH = Buffer.alloc(32);

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Parses --ttl: 30m, 24h, 7d, or "never". */
export function parseTokenTtl(text: string): number | null {
  if (text === 'never') return null;
  const match = /^([1-9][0-9]{0,5})(m|h|d)$/.exec(text);
  if (!match) throw new InputError('--ttl', `"${text}" is not a lifetime like 30m, 24h, 7d or "never"`);
  const unit = { m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
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
    if (!TOKEN_ROLES.includes(request.role)) throw new InputError('--role', 'must be "read" or "admin"');
    const description = request.description ?? '';
    if (description.length > 200 || /[\u0000-\u001f\u007f]/.test(description)) {
      throw new InputError('--description', 'must be at most 200 characters, without control characters');
    }
    const ttlMs = request.ttlMs === undefined ? DEFAULT_TOKEN_TTL_MS : request.ttlMs;
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
      };
      const stored: StoredToken = { ...record, hash: hashSecret(secret).toString('hex') };
      const value = JSON.stringify(stored);
      // An id collision (64 random bits) would silently replace a token; putIfAbsent refuses it.
      if ((await this.kv.putIfAbsent(this.keys.token(id), value)) === value) {
        return { token: `vipd_${id}.${secret}`, record };
      }
    }
    throw new Error('could not find a free token id');
  }

  async list(): Promise<Array<TokenRecord & { expired: boolean }>> {
    const now = this.now();
    const records: Array<TokenRecord & { expired: boolean }> = [];
    for (const { value } of await this.kv.getPrefix(this.keys.tokensPrefix)) {
      const stored = parseStored(value);
      if (!stored) continue;
      const { hash: _hash, ...record } = stored;
      records.push({ ...record, expired: isExpired(record, now) });
    }
    return records.sort((a, b) => a.created.localeCompare(b.created));
  }

  async delete(id: string): Promise<boolean> {
    if (!/^[0-9a-f]{16}$/.test(id)) return false;
    return await this.kv.delete(this.keys.token(id));
  }

  /** The token's record if it is valid now; null for a malformed, unknown, wrong or expired one. */
  async verify(token: string): Promise<TokenRecord | null> {
    const match = TOKEN_FORMAT.exec(token);
    if (!match) return null;
    const [, id, secret] = match as unknown as [string, string, string];
    const stored = parseStored(await this.kv.get(this.keys.token(id)));
    const expected = stored && /^[0-9a-f]{64}$/.test(stored.hash) ? Buffer.from(stored.hash, 'hex') : DUMMY_HASH;
    const matches = timingSafeEqual(hashSecret(secret), expected);
    if (!stored || !matches || isExpired(stored, this.now())) return null;
    const { hash: _hash, ...record } = stored;
    return record;
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
