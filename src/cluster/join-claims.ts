import type { EtcdStore, StoredValue } from '../store/etcd-store';
import type { ClusterKeys } from '../store/keys';
import { JoinRefused } from './join-protocol';

/** What a claim key holds: which join took the name or IP, and when. */
interface Claim {
  node: string;
  ip: string;
  at: string;
}

/**
 * A claim whose node never got registered (its join failed half-way, or the serving agent
 * died) is stale after this long; a join takes at most ~30 s (ARP probe, etcd member add).
 */
export const CLAIM_STALE_MS = 5 * 60 * 1000;

function parseClaim(value: string): Claim | null {
  try {
    const claim = JSON.parse(value) as Partial<Claim>;
    return typeof claim.node === 'string' && typeof claim.ip === 'string' && typeof claim.at === 'string' ? (claim as Claim) : null;
  } catch {
    return null;
  }
}

/**
 * Claims the node name and the management IP in one etcd transaction (each claim key, and
 * the node's registration, must not exist: create_revision == 0), so of two joins racing for
 * either, exactly one wins. The loser gets a 409 naming the field. Resolves with a function
 * that gives both back, for a join that fails after this.
 */
export async function claimNameAndIp(store: EtcdStore, keys: ClusterKeys, name: string, ip: string, now: () => number = Date.now): Promise<() => Promise<void>> {
  const value = JSON.stringify({ node: name, ip, at: new Date(now()).toISOString() } satisfies Claim);
  const entries = [
    { key: keys.nameClaim(name), value },
    { key: keys.ipClaim(ip), value },
  ];
  for (let attempt = 0; attempt < 3; attempt++) {
    const result = await store.putAllIfAbsent(entries, [keys.node(name)]);
    if (result.ok) return async () => await releaseClaims(store, keys, name, ip);
    let cleared = false;
    for (const existing of result.existing) {
      if (existing.key === keys.node(name)) {
        throw new JoinRefused('conflict', `node.name: "${name}" is already registered; choose another name with --node-name, or remove that node first with \`vipd node remove ${name}\``);
      }
      if (await isStale(store, keys, existing, now)) {
        cleared = (await store.deleteIfUnchanged(existing.key, existing.modRevision)) || cleared;
        continue;
      }
      const holder = parseClaim(existing.value)?.node ?? 'another node';
      if (existing.key === keys.nameClaim(name)) {
        throw new JoinRefused('conflict', `node.name: "${name}" is claimed by another join or node (at ${parseClaim(existing.value)?.ip ?? 'an unknown IP'}); choose another name with --node-name`);
      }
      throw new JoinRefused('conflict', `node.interface: the management IP ${ip} is claimed by node "${holder}"`);
    }
    // Every blocker was stale: cleared by us or by a racer; try again.
    void cleared;
  }
  throw new JoinRefused('conflict', `node.name: "${name}" or the management IP ${ip} is being claimed by several joins at once; try again`);
}

/** Stale: no node registered under the claim (or, for an IP, that node has moved), and old enough not to be a join in flight. */
async function isStale(store: EtcdStore, keys: ClusterKeys, existing: StoredValue, now: () => number): Promise<boolean> {
  const claim = parseClaim(existing.value);
  if (!claim) return true;
  const registered = await store.get(keys.node(claim.node));
  if (registered) {
    if (existing.key === keys.nameClaim(claim.node)) return false;
    const ip = (JSON.parse(registered.value) as { ip?: unknown }).ip;
    if (ip === claim.ip) return false;
  }
  return now() - Date.parse(claim.at) > CLAIM_STALE_MS;
}

/** Gives back a node's claims, each only if it still names that node. */
export async function releaseClaims(store: EtcdStore, keys: ClusterKeys, name: string, ip: string | null): Promise<void> {
  for (const key of [keys.nameClaim(name), ...(ip ? [keys.ipClaim(ip)] : [])]) {
    const existing = await store.get(key);
    if (existing && parseClaim(existing.value)?.node === name) await store.deleteIfUnchanged(key, existing.modRevision);
  }
}
