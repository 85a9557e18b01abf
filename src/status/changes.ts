import type { Watcher } from 'etcd3';
import { storedFromWatch, type EtcdStore } from '../store/etcd-store';
import type { ClusterKeys } from '../store/keys';
import type { MoveEvent, PublishedDhcpState } from '../store/records';

/** A node's agent started (its liveness key appeared) or stopped (its lease ended). */
export interface NodeChange {
  node: string;
  healthy: boolean;
  time: string;
}

/** The DHCP lease of the VIP as its holder published it: bound, renewed, lost. */
export type LeaseChange = Omit<PublishedDhcpState, 'hwaddr' | 'requestedIP'> & { time: string };

/** Everything `vipd events -w` and `vipd status -w` follow, one record per change. */
export type ClusterChange =
  | { type: 'move'; event: MoveEvent }
  | { type: 'node'; event: NodeChange }
  | { type: 'lease'; event: LeaseChange };

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
