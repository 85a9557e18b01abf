import { parseAdminEvent, parseHealthEvent, type AdminEvent, type HealthEvent, type MoveEvent } from './records';
import type { EtcdStore } from './etcd-store';
import type { ClusterKeys } from './keys';

/** The history keeps this many moves; older ones are deleted by whoever writes a new one. */
export const HISTORY_LIMIT = 200;
/** And this many health verdicts, trimmed the same way. */
export const HEALTH_HISTORY_LIMIT = 200;

/** Deletes the oldest keys under `prefix` (keys sort oldest first) beyond `limit`. */
async function trim(store: EtcdStore, prefix: string, limit: number): Promise<void> {
  const stored = await store.getPrefix(prefix);
  if (stored.length <= limit) return;
  const sorted = stored.map((entry) => entry.key).sort();
  const firstKept = sorted[sorted.length - limit];
  if (firstKept) await store.deleteRange(prefix, firstKept);
}

/** Records a move under its term, then trims the history to HISTORY_LIMIT entries. */
export async function recordMove(store: EtcdStore, keys: ClusterKeys, event: MoveEvent): Promise<void> {
  await store.put(keys.event(event.term ?? 0), JSON.stringify(event));
  await trim(store, keys.eventsPrefix, HISTORY_LIMIT);
}

/** The newest `limit` records under a prefix, oldest first, in key order; what `parse` refuses is left out. */
async function listNewest<T>(store: EtcdStore, prefix: string, parse: (value: string) => T | null, limit: number): Promise<T[]> {
  const stored = await store.getPrefix(prefix);
  return stored
    .sort((a, b) => (a.key < b.key ? -1 : 1))
    .flatMap((entry) => {
      const record = parse(entry.value);
      return record ? [record] : [];
    })
    .slice(-limit);
}

/** The most recent moves, oldest first. */
export async function listMoves(store: EtcdStore, keys: ClusterKeys, limit = HISTORY_LIMIT): Promise<MoveEvent[]> {
  return await listNewest(store, keys.eventsPrefix, (value) => {
    try {
      return JSON.parse(value) as MoveEvent;
    } catch {
      return null;
    }
  }, limit);
}

let eventSequence = 0;

/** Stores a node's event under its time (a key from `keyFor`), then trims the prefix to `limit` entries. */
async function recordNodeEvent(
  store: EtcdStore,
  event: { node: string; time: string },
  keyFor: (timeMs: number, node: string, sequence: number) => string,
  prefix: string,
  limit: number,
): Promise<void> {
  const timeMs = Date.parse(event.time);
  // The sequence keeps two events of one node in one millisecond apart.
  eventSequence = (eventSequence + 1) % 1_000_000;
  await store.put(keyFor(Number.isNaN(timeMs) ? Date.now() : timeMs, event.node, eventSequence), JSON.stringify(event));
  await trim(store, prefix, limit);
}

/** Records a node's new health verdict under its time, then trims to HEALTH_HISTORY_LIMIT entries. */
export async function recordHealthEvent(store: EtcdStore, keys: ClusterKeys, event: HealthEvent): Promise<void> {
  await recordNodeEvent(store, event, (timeMs, node, sequence) => keys.healthEvent(timeMs, node, sequence), keys.healthEventsPrefix, HEALTH_HISTORY_LIMIT);
}

/** And this many operators' actions (issue 14). */
export const ADMIN_HISTORY_LIMIT = 200;

/** Records an operator's action on a node under its time, then trims to ADMIN_HISTORY_LIMIT entries. */
export async function recordAdminEvent(store: EtcdStore, keys: ClusterKeys, event: AdminEvent): Promise<void> {
  await recordNodeEvent(store, event, (timeMs, node, sequence) => keys.adminEvent(timeMs, node, sequence), keys.adminEventsPrefix, ADMIN_HISTORY_LIMIT);
}

export async function listAdminEvents(store: EtcdStore, keys: ClusterKeys, limit = ADMIN_HISTORY_LIMIT): Promise<AdminEvent[]> {
  return await listNewest(store, keys.adminEventsPrefix, parseAdminEvent, limit);
}

/** The most recent health verdicts of every node, oldest first; damaged records are left out. */
export async function listHealthEvents(store: EtcdStore, keys: ClusterKeys, limit = HEALTH_HISTORY_LIMIT): Promise<HealthEvent[]> {
  return await listNewest(store, keys.healthEventsPrefix, parseHealthEvent, limit);
}
