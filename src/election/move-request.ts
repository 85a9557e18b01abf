import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { InputError } from '../config/schema-check';
import { unhealthyTargetReason } from '../health/cluster';
import { parseLeader, type Leader, type MoveRequest } from '../store/records';
import { storedFromWatch, type EtcdStore } from '../store/etcd-store';
import type { ClusterKeys } from '../store/keys';
import { readCordon, describeCordon } from '../store/maintenance';
import { Membership } from '../store/membership';

/** A move that cannot be made, with the reason (the API answers 409 with it). */
export class MoveRefusedError extends Error {}

/** The answer to a planned move: accepted (the holder is being asked), or done already. */
export interface MoveAccepted {
  /** Also in the handoff's reason, so the event history and the hooks name it. */
  id: string;
  state: 'accepted' | 'done';
  from: string;
  to: string;
  /** The term of the holder the VIP leaves. */
  term: number;
  requestedAt: string;
}

/** A move the holder has been asked for (or needs nothing: the target holds the VIP already). */
export interface PreparedMove {
  from: Leader;
  to: string;
  /** True when `to` holds the VIP already: there is nothing to ask. */
  done: boolean;
}

/** Checks that `to` may take the VIP now; throws MoveRefusedError with the reason if not. */
export async function prepareMove(store: EtcdStore, keys: ClusterKeys, to: string): Promise<PreparedMove> {
  const membership = new Membership(store, keys);
  const [nodes, live] = await Promise.all([membership.listNodes(), membership.liveNodeNames()]);
  if (!nodes.some((node) => node.name === to)) {
    const known = nodes.map((node) => node.name).join(', ') || 'none';
    throw new MoveRefusedError(`unknown node "${to}" (registered nodes: ${known})`);
  }
  if (!live.has(to)) throw new MoveRefusedError(`node "${to}" is not healthy: its agent is not running`);
  const from = parseLeader(await store.get(keys.leader));
  // Its checks must pass: an unhealthy node is not eligible and would not take the VIP (issue 13).
  const unhealthy = from?.node === to ? null : await unhealthyTargetReason(store, keys, to);
  if (unhealthy) throw new MoveRefusedError(unhealthy);
  const cordon = from?.node === to ? null : await readCordon(store, keys, to);
  if (cordon) throw new MoveRefusedError(`node "${to}" is ${describeCordon(cordon)}; uncordon it first (vipd uncordon ${to})`);
  if (!from) throw new MoveRefusedError('no node holds the VIP, so there is nothing to move; it will be taken by a healthy node');
  return { from, to, done: from.node === to };
}

/** Writes the request the holder acts on; it lives `timeoutMs` (at least 2 s) if nobody acts. */
export async function submitMove(store: EtcdStore, keys: ClusterKeys, request: MoveRequest, timeoutMs: number): Promise<void> {
  const lease = await store.grantLease(Math.max(2, Math.ceil(timeoutMs / 1000)));
  await store.put(keys.moveRequest, JSON.stringify(request), lease.id);
}

export function newMoveRequest(to: string, requestedBy: string): MoveRequest {
  return { id: randomBytes(4).toString('hex'), to, requestedBy, requestedAt: new Date().toISOString() };
}

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
  const prepared = await prepareMove(store, keys, to);
  const from = prepared.from;
  if (prepared.done) return { from, to: from };
  const request = newMoveRequest(to, options.requestedBy ?? `vipd move on ${hostname()}`);
  // Watched, not polled: polling would load etcd and this node during the very move it waits for.
  const watcher = await store.watchKey(keys.leader);
  try {
    const taken = new Promise<Leader>((resolve) => {
      watcher.on('put', (kv) => {
        const leader = parseLeader(storedFromWatch(kv));
        if (leader?.node === to && leader.term !== from.term) resolve(leader);
      });
    });
    await submitMove(store, keys, request, options.timeoutMs);
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
