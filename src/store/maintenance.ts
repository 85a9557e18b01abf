/**
 * Cordons and priorities (issue 14): what operators say about which node should hold the VIP.
 * Cordons are kept without a lease, so they outlive the node's agent and its restarts.
 */
import type { EtcdStore } from './etcd-store';
import { recordAdminEvent } from './history';
import type { ClusterKeys } from './keys';
import { Membership } from './membership';
import { parseCordonRecord, parsePriorityRecord, type CordonRecord, type PriorityRecord } from './records';

/** An action on a node that is not registered: the CLI exits 2, the API answers 404. */
export class UnknownNodeError extends Error {}

async function requireRegistered(store: EtcdStore, keys: ClusterKeys, node: string): Promise<void> {
  const nodes = await new Membership(store, keys).listNodes();
  if (!nodes.some((record) => record.name === node)) {
    throw new UnknownNodeError(`unknown node "${node}" (registered nodes: ${nodes.map((record) => record.name).join(', ') || 'none'})`);
  }
}

/** Every cordon, by node name; a damaged record counts as a plain cordon (the safe side). */
export async function readCordons(store: EtcdStore, keys: ClusterKeys): Promise<Map<string, CordonRecord>> {
  const result = new Map<string, CordonRecord>();
  for (const entry of await store.getPrefix(keys.cordonsPrefix)) {
    const node = entry.key.slice(keys.cordonsPrefix.length);
    result.set(node, parseCordonRecord(entry.value) ?? { node, strict: false, by: 'unknown', reason: 'damaged record', time: '' });
  }
  return result;
}

export async function readCordon(store: EtcdStore, keys: ClusterKeys, node: string): Promise<CordonRecord | null> {
  const stored = await store.get(keys.cordon(node));
  return stored ? (parseCordonRecord(stored.value) ?? { node, strict: false, by: 'unknown', reason: 'damaged record', time: '' }) : null;
}

export async function readPriorities(store: EtcdStore, keys: ClusterKeys): Promise<Map<string, PriorityRecord>> {
  const result = new Map<string, PriorityRecord>();
  for (const entry of await store.getPrefix(keys.prioritiesPrefix)) {
    const record = parsePriorityRecord(entry.value);
    if (record) result.set(entry.key.slice(keys.prioritiesPrefix.length), record);
  }
  return result;
}

export function describeCordon(record: CordonRecord): string {
  return `cordoned${record.strict ? ' (strict)' : ''} by ${record.by}${record.reason ? `: ${record.reason}` : ''}`;
}

/** Cordons `node` (again, if the strictness changes); the history records it. Returns false if it was cordoned so already. */
export async function cordonNode(store: EtcdStore, keys: ClusterKeys, node: string, options: { strict: boolean; by: string; reason?: string | null }): Promise<boolean> {
  await requireRegistered(store, keys, node);
  const before = await readCordon(store, keys, node);
  if (before && before.strict === options.strict) return false;
  const record: CordonRecord = { node, strict: options.strict, by: options.by, reason: options.reason ?? null, time: new Date().toISOString() };
  await store.put(keys.cordon(node), JSON.stringify(record));
  await recordAdminEvent(store, keys, { node, action: 'cordon', message: describeCordon(record), time: record.time });
  return true;
}

/** Returns false if the node was not cordoned. */
export async function uncordonNode(store: EtcdStore, keys: ClusterKeys, node: string, by: string): Promise<boolean> {
  await requireRegistered(store, keys, node);
  if (!(await readCordon(store, keys, node))) return false;
  await store.delete(keys.cordon(node));
  await recordAdminEvent(store, keys, { node, action: 'uncordon', message: `uncordoned by ${by}`, time: new Date().toISOString() });
  return true;
}

/** Sets the priority `node` runs with; its agent follows at once. Recorded unless it is the agent publishing its config. */
export async function setPriority(store: EtcdStore, keys: ClusterKeys, node: string, priority: number, source: string): Promise<void> {
  const record: PriorityRecord = { node, priority, source, time: new Date().toISOString() };
  if (source === 'config') {
    // An agent publishes its configured priority at every start: unchanged, the record (and
    // the time it was set) stays as it is.
    const current = parsePriorityRecord((await store.get(keys.priority(node)))?.value ?? '');
    if (current && current.priority === priority && current.source === source) return;
  }
  if (source !== 'config') await requireRegistered(store, keys, node);
  await store.put(keys.priority(node), JSON.stringify(record));
  if (source !== 'config') await recordAdminEvent(store, keys, { node, action: 'priority', message: `priority set to ${priority} by ${source}`, time: record.time });
}
