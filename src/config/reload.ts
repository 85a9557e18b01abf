import { isDeepStrictEqual } from 'node:util';
import type { Config } from './config';

/** What a reload (SIGHUP) may change while the agent runs; everything else needs a restart. */
export const RELOADABLE: ReadonlyArray<keyof Config> = ['logLevel', 'hooks', 'health', 'announce', 'preference'];

/** Resolved names that differ from the file's, so a refusal names the field as written. */
const FILE_NAMES: Record<string, string> = {
  'etcd.electionTimeoutMs': 'etcd.electionTimeout',
  'election.leaseTtlSeconds': 'election.leaseTTL',
  'election.leaseRenewIntervalMs': 'election.leaseTTL',
  'election.renewIntervalMs': 'election.renewInterval',
  'election.holdTimeoutMs': 'election.holdTimeout',
  'election.fencingMarginMs': 'election.fencingMargin',
  'takeover.probeWindowMs': 'takeover.probeWindow',
  'takeover.maxProbeWaitMs': 'takeover.maxProbeWait',
  'vip.releaseOnStop': 'vip.dhcp.releaseOnStop',
};

/** The first path at which two values differ, dotted (etcd.endpoints[1]), or null when equal. */
function firstDifference(a: unknown, b: unknown, path: string): string | null {
  if (isDeepStrictEqual(a, b)) return null;
  if (a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    if (Array.isArray(a) && Array.isArray(b) && a.length !== b.length) return path;
    const record = (value: object): Record<string, unknown> => value as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    for (const key of keys) {
      const found = firstDifference(record(a)[key], record(b)[key], Array.isArray(a) ? `${path}[${key}]` : path ? `${path}.${key}` : key);
      if (found) return found;
    }
  }
  return path;
}

/**
 * Why `next` cannot replace `running` in place, naming the first field that would have to
 * change (the cluster, the node's name or interface, the VIP, etcd, the election's timing, the
 * API, the node's credentials), or null when every change is reloadable.
 */
export function unreloadableChange(running: Config, next: Config): string | null {
  for (const key of Object.keys(running) as Array<keyof Config>) {
    if (RELOADABLE.includes(key)) continue;
    const path = firstDifference(running[key], next[key], key);
    if (path === null) continue;
    const field = FILE_NAMES[path] ?? path;
    return `${field} cannot change while the agent runs; restart it (systemctl restart vipd) to apply this change`;
  }
  return null;
}

/** The reloadable sections that differ, for the log and the history: "hooks, preference". */
export function reloadedSections(running: Config, next: Config): string[] {
  return RELOADABLE.filter((key) => !isDeepStrictEqual(running[key], next[key])).map((key) => (key === 'logLevel' ? 'log.level' : key === 'preference' ? 'node.priority/election.preempt' : key));
}
