/**
 * The cluster's lasting state in etcd, and what may change about it across a fault. Faults
 * may move the VIP and restart agents; they must never lose or corrupt nodes, tokens,
 * settings, certificates or the history.
 */

export interface StateSnapshot {
  keys: Map<string, string>;
}

/** Keys that change in normal operation: who holds the VIP now, liveness, moves under way. */
const VOLATILE = ['leader', 'handoff', 'move-request', 'last-release', 'dhcp'];
// health/: rewritten at each agent start and when a check flips.
const VOLATILE_PREFIXES = ['alive/', 'last-seen/', 'health/'];
/** A node's registration is rewritten on every start; only this may differ. */
const NODE_FIELDS_THAT_CHANGE = ['registeredAt'];
/** Older events are trimmed by whoever records a new one (src/election/history.ts). */
const HISTORY_LIMIT = 200;

export function snapshotFrom(prefix: string, entries: Array<{ key: string; value: string }>): StateSnapshot {
  const keys = new Map<string, string>();
  for (const { key, value } of entries) {
    if (!key.startsWith(prefix)) continue;
    keys.set(key.slice(prefix.length), value);
  }
  return { keys };
}

/** `etcdctl get -w json`'s keys and values (base64 in its output). */
export function decodeKvs(out: string): Array<{ key: string; value: string }> {
  const parsed = JSON.parse(out) as { kvs?: Array<{ key: string; value?: string }> };
  return (parsed.kvs ?? []).map((kv) => ({
    key: Buffer.from(kv.key, 'base64').toString('utf8'),
    value: Buffer.from(kv.value ?? '', 'base64').toString('utf8'),
  }));
}

function isVolatile(key: string): boolean {
  return VOLATILE.includes(key) || VOLATILE_PREFIXES.some((prefix) => key.startsWith(prefix));
}

function parse(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return undefined;
  }
}

function withoutFields(value: unknown, fields: string[]): unknown {
  if (!value || typeof value !== 'object') return value;
  const copy = { ...(value as Record<string, unknown>) };
  for (const field of fields) delete copy[field];
  return copy;
}

/**
 * What was lost or changed between two snapshots, as sentences; empty when intact.
 * Events may be added (with growing terms) and trimmed from the old end, nothing else.
 */
export function compareState(before: StateSnapshot, after: StateSnapshot): string[] {
  const problems: string[] = [];
  const afterEvents = [...after.keys.keys()].filter((key) => key.startsWith('events/')).sort();
  const oldestKept = afterEvents.length >= HISTORY_LIMIT ? afterEvents[0]! : null;
  for (const [key, value] of before.keys) {
    if (isVolatile(key)) continue;
    const now = after.keys.get(key);
    if (key.startsWith('events/') && oldestKept !== null && key < oldestKept) continue;
    if (now === undefined) {
      problems.push(`${key} was lost`);
      continue;
    }
    if (now === value) continue;
    if (key.startsWith('nodes/')) {
      const a = JSON.stringify(withoutFields(parse(value), NODE_FIELDS_THAT_CHANGE));
      const b = JSON.stringify(withoutFields(parse(now), NODE_FIELDS_THAT_CHANGE));
      if (a === b && parse(now) !== undefined) continue;
    }
    problems.push(`${key} changed: ${abbreviate(value)} -> ${abbreviate(now)}`);
  }
  // New history entries: valid, and filed under their own term (the key orders the history).
  for (const key of afterEvents) {
    if (before.keys.has(key)) continue;
    const event = parse(after.keys.get(key)!) as { term?: unknown; reason?: unknown } | undefined;
    if (!event || typeof event.reason !== 'string') {
      problems.push(`${key} is not a valid history entry: ${abbreviate(after.keys.get(key)!)}`);
    } else if (Number(key.slice('events/'.length)) !== Number(event.term ?? 0)) {
      problems.push(`${key} holds the event of term ${String(event.term)}`);
    }
  }
  for (const key of after.keys.keys()) {
    if (isVolatile(key) || key.startsWith('events/') || before.keys.has(key)) continue;
    // A node that joins registers once; nothing else appears on its own.
    if (key.startsWith('nodes/')) continue;
    problems.push(`${key} appeared: ${abbreviate(after.keys.get(key)!)}`);
  }
  for (const key of after.keys.keys()) {
    if (key.startsWith('nodes/') || key === 'settings' || key.startsWith('security/tokens/')) {
      if (parse(after.keys.get(key)!) === undefined) problems.push(`${key} is not valid JSON`);
    }
  }
  return problems;
}

function abbreviate(value: string): string {
  const flat = value.replace(/\s+/g, ' ');
  return flat.length > 120 ? `${flat.slice(0, 117)}...` : flat;
}

/** The holder the leader key names, or null. */
export function leaderNode(snapshot: StateSnapshot): string | null {
  const value = snapshot.keys.get('leader');
  if (!value) return null;
  const record = parse(value) as { node?: unknown } | undefined;
  return typeof record?.node === 'string' ? record.node : null;
}

export interface TokenListing {
  id: string;
  role: string;
  description: string;
  created: string;
  expires: string | null;
}

/** Compares two `vipd token list -o json` results. */
export function compareTokens(before: TokenListing[], after: TokenListing[]): string[] {
  const key = (token: TokenListing) => JSON.stringify([token.id, token.role, token.description, token.created, token.expires]);
  const afterKeys = new Set(after.map(key));
  const beforeKeys = new Set(before.map(key));
  return [
    ...before.filter((token) => !afterKeys.has(key(token))).map((token) => `token ${token.id} is missing or changed in \`vipd token list\``),
    ...after.filter((token) => !beforeKeys.has(key(token))).map((token) => `token ${token.id} appeared in \`vipd token list\``),
  ];
}
