import type { Watcher } from 'etcd3';
import { storedFromWatch, type EtcdStore } from '../store/etcd-store';
import type { ClusterKeys } from '../store/keys';
import { healthEventOf, parseAdminEvent, parseHealthRecord, type AdminEvent, type HealthEvent, type MoveEvent, type NodeHealthRecord, type PublishedDhcpState } from '../store/records';

/** A node's agent started (its liveness key appeared) or stopped (its lease ended). */
export interface NodeChange {
  node: string;
  healthy: boolean;
  time: string;
}

/** The DHCP lease of the VIP as its holder published it: bound, renewed, lost. */
export type LeaseChange = Omit<PublishedDhcpState, 'hwaddr' | 'requestedIP'> & { time: string };

/** A node's health checks turned it healthy or unhealthy, or the set of failing checks changed (issue 13). */
export type HealthChange = HealthEvent;

/** Everything `vipd events -w` and `vipd status -w` follow, one record per change. */
export type ClusterChange =
  | { type: 'move'; event: MoveEvent }
  | { type: 'node'; event: NodeChange }
  | { type: 'lease'; event: LeaseChange }
  | { type: 'health'; event: HealthChange }
  /** An operator's action on a node: cordon, uncordon, priority, reload (issue 14). */
  | { type: 'admin'; event: AdminEvent };

/**
 * The stored history as `vipd events` prints it: moves, health verdicts and operators'
 * actions, oldest first. Moves stay in term order; any other record goes before the first
 * move that is later than it.
 */
export function mergeHistory(moves: MoveEvent[], health: HealthEvent[], admin: AdminEvent[] = []): ClusterChange[] {
  const merged: ClusterChange[] = [];
  const others: ClusterChange[] = [
    ...health.map((event): ClusterChange => ({ type: 'health', event })),
    ...admin.map((event): ClusterChange => ({ type: 'admin', event })),
  ].sort((a, b) => Date.parse(a.event.time) - Date.parse(b.event.time));
  let next = 0;
  for (const event of moves) {
    while (next < others.length && Date.parse(others[next]!.event.time) <= Date.parse(event.time)) merged.push(others[next++]!);
    merged.push({ type: 'move', event });
  }
  merged.push(...others.slice(next));
  return merged;
}

/** A watch delivers whatever was written: a broken record is skipped, not thrown from an event handler. */
function tryParse<T>(value: string): T | null {
  try {
    return JSON.parse(value) as T;
  } catch {
    return null;
  }
}

export function leaseChangeOf(state: PublishedDhcpState): LeaseChange {
  const { hwaddr: _hwaddr, requestedIP: _requested, ...lease } = state;
  return { ...lease, time: state.updatedAt };
}

/**
 * Watches the history, the liveness keys and the published DHCP lease, and calls `listener`
 * once per change. Returns the function that stops watching.
 */
export async function watchClusterChanges(
  store: EtcdStore,
  keys: ClusterKeys,
  listener: (change: ClusterChange) => void,
): Promise<() => Promise<void>> {
  const watchers: Watcher[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(watchers.map((watcher) => watcher.cancel().catch(() => undefined)));
  };
  try {
    const moves = await store.watchPrefix(keys.eventsPrefix);
    watchers.push(moves);
    moves.on('put', (kv) => {
      const event = tryParse<MoveEvent>(storedFromWatch(kv).value);
      if (event) listener({ type: 'move', event });
    });
    const alive = await store.watchPrefix(keys.alivePrefix);
    watchers.push(alive);
    const node = (healthy: boolean) => (kv: Parameters<typeof storedFromWatch>[0]) =>
      listener({ type: 'node', event: { node: storedFromWatch(kv).key.slice(keys.alivePrefix.length), healthy, time: new Date().toISOString() } });
    alive.on('put', node(true));
    alive.on('delete', node(false));
    // A record is rewritten when any check flips or the agent restarts: only a change of verdict is a change.
    const health = await store.watchPrefix(keys.healthPrefix);
    watchers.push(health);
    const verdicts = new Map<string, string>();
    const verdictOf = (value: string): { record: NodeHealthRecord; verdict: string } | null => {
      const record = parseHealthRecord(value);
      if (!record) return null;
      return { record, verdict: `${record.healthy}|${record.failing.join(',')}` };
    };
    health.on('put', (kv) => {
      const read = verdictOf(storedFromWatch(kv).value);
      if (!read || verdicts.get(read.record.node) === read.verdict) return;
      verdicts.set(read.record.node, read.verdict);
      listener({ type: 'health', event: healthEventOf(read.record) });
    });
    // Where each node starts, so a refresh with the same verdict is not reported as a change.
    for (const entry of await store.getPrefix(keys.healthPrefix)) {
      const read = verdictOf(entry.value);
      if (read && !verdicts.has(read.record.node)) verdicts.set(read.record.node, read.verdict);
    }
    const admin = await store.watchPrefix(keys.adminEventsPrefix);
    watchers.push(admin);
    admin.on('put', (kv) => {
      const event = parseAdminEvent(storedFromWatch(kv).value);
      if (event) listener({ type: 'admin', event });
    });
    const dhcp = await store.watchKey(keys.dhcp);
    watchers.push(dhcp);
    dhcp.on('put', (kv) => {
      const state = tryParse<PublishedDhcpState>(storedFromWatch(kv).value);
      if (state) listener({ type: 'lease', event: leaseChangeOf(state) });
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return stop;
}
