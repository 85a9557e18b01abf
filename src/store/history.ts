import type { MoveEvent } from './records';
import type { EtcdStore } from './etcd-store';
import type { ClusterKeys } from './keys';


/** The history keeps this many moves; older ones are deleted by whoever writes a new one. */
export const HISTORY_LIMIT = 200;

/** Records a move under its term, then trims the history to HISTORY_LIMIT entries. */
export async function recordMove(store: EtcdStore, keys: ClusterKeys, event: MoveEvent): Promise<void> {
  await store.put(keys.event(event.term ?? 0), JSON.stringify(event));
  const stored = await store.getPrefix(keys.eventsPrefix);
  if (stored.length <= HISTORY_LIMIT) return;
  const sorted = stored.map((entry) => entry.key).sort();
  const firstKept = sorted[sorted.length - HISTORY_LIMIT];
  if (firstKept) await store.deleteRange(keys.eventsPrefix, firstKept);
}

/** The most recent moves, oldest first. */
export async function listMoves(store: EtcdStore, keys: ClusterKeys, limit = HISTORY_LIMIT): Promise<MoveEvent[]> {
  const stored = await store.getPrefix(keys.eventsPrefix);
  const events = stored
    .sort((a, b) => (a.key < b.key ? -1 : 1))
    .flatMap((entry) => {
      try {
        return [JSON.parse(entry.value) as MoveEvent];
      } catch {
        return [];
      }
    });
  return events.slice(-limit);
}
