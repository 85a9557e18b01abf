import { hostname } from 'node:os';
import { InputError } from '../config/schema-check';
import { parseLeader, type Leader, type MoveRequest } from '../store/records';
import { storedFromWatch, type EtcdStore } from '../store/etcd-store';
import type { ClusterKeys } from '../store/keys';
import { Membership } from '../store/membership';

/** A move that cannot be made, with the reason (the API answers 409 with it). */
export class MoveRefusedError extends Error {}

/**
 * Asks the holder to hand the VIP to `to` and waits until `to` holds it. The holder removes
 * the VIP before giving up the key, and only `to` may take it, so the VIP is never on two
 * nodes and the target takes it at once.
 */
export async function requestMove(
  store: EtcdStore,
  keys: ClusterKeys,
  to: string,
  options: { timeoutMs: number; requestedBy?: string },
): Promise<{ from: Leader | null; to: Leader }> {
  const membership = new Membership(store, keys);
  const [nodes, live] = await Promise.all([membership.listNodes(), membership.liveNodeNames()]);
  if (!nodes.some((node) => node.name === to)) {
    const known = nodes.map((node) => node.name).join(', ') || 'none';
    throw new MoveRefusedError(`unknown node "${to}" (registered nodes: ${known})`);
  }
  if (!live.has(to)) throw new MoveRefusedError(`node "${to}" is not healthy: its agent is not running`);
  const from = parseLeader(await store.get(keys.leader));
  if (from?.node === to) return { from, to: from };
  if (!from) throw new MoveRefusedError('no node holds the VIP, so there is nothing to move; it will be taken by a healthy node');

  const lease = await store.grantLease(Math.max(2, Math.ceil(options.timeoutMs / 1000)));
  const request: MoveRequest = { to, requestedBy: options.requestedBy ?? `vipd move on ${hostname()}`, requestedAt: new Date().toISOString() };
  // Watched, not polled: polling would load etcd and this node during the very move it waits for.
  const watcher = await store.watchKey(keys.leader);
  try {
    const taken = new Promise<Leader>((resolve) => {
      watcher.on('put', (kv) => {
        const leader = parseLeader(storedFromWatch(kv));
        if (leader?.node === to && leader.term !== from.term) resolve(leader);
      });
    });
    await store.put(keys.moveRequest, JSON.stringify(request), lease.id);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), options.timeoutMs)));
    // The watch may have started after the target took the key: read it once as well.
    const current = parseLeader(await store.get(keys.leader));
    const leader = current?.node === to && current.term !== from.term ? current : await Promise.race([taken, timedOut]);
    clearTimeout(timer);
    if (leader) return { from, to: leader };
    throw new MoveRefusedError(`"${to}" did not take the VIP within ${options.timeoutMs}ms`);
  } finally {
    await watcher.cancel().catch(() => undefined);
  }
}

/** Checks a move target name before anything is written. */
export function checkMoveTarget(to: string): void {
  if (!/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/.test(to)) {
    throw new InputError('--to', `"${to}" is not a node name`);
  }
}
