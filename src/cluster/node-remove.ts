import { InputError } from '../config/schema-check';
import type { EtcdStore } from '../store/etcd-store';
import type { ClusterKeys } from '../store/keys';
import { Membership } from '../store/membership';
import { ETCD_PEER_PORT, urlFor } from './etcd-endpoints';
import { clusterSetupKeys } from '../store/keys';
import { type StoreInfo } from '../store/records';
import { releaseClaims } from './join-claims';
import { managesAccess, revokeNode } from '../store/access';
import { EtcdKeyValue } from '../store/kv';
import { securityKeys } from '../store/keys';
import { TokenStore } from '../security/tokens';

export interface RemovedNode {
  name: string;
  record: boolean;
  etcdMember: string | null;
  /** Its etcd user was deleted: its certificate is refused from now on. */
  revoked: boolean;
  /** The tokens made on it, deleted with it (a removed node may have been compromised). */
  tokens: string[];
}

/**
 * Removes a node from the cluster: its registration, liveness traces, its etcd user where
 * vipd manages etcd's access and, for the embedded store, its etcd member (found by name,
 * or by peer URL if it never started). A running node is refused unless forced: removing its
 * member would stop its etcd under it.
 */
export async function removeNode(store: EtcdStore, keys: ClusterKeys, name: string, options: { force: boolean; keepTokens?: boolean }): Promise<RemovedNode> {
  const membership = new Membership(store, keys);
  const [nodes, live, info] = await Promise.all([membership.listNodes(), membership.liveNodeNames(), store.get(clusterSetupKeys(keys).store)]);
  const storeInfo = info === null ? null : (JSON.parse(info.value) as StoreInfo);
  const embedded = storeInfo?.kind === 'embedded';
  const record = nodes.find((node) => node.name === name) ?? null;
  if (live.has(name) && !options.force) {
    throw new InputError('NAME', `node "${name}" is running (its agent holds a liveness key): stop its agent first, or pass --force`);
  }
  let member = null;
  if (embedded) {
    const members = await store.listMembers();
    const peerURL = record ? urlFor(record.ip, ETCD_PEER_PORT) : null;
    member = members.find((candidate) => candidate.name === name || (peerURL !== null && candidate.peerURLs.includes(peerURL))) ?? null;
    if (member && members.filter((candidate) => !candidate.isLearner).length <= 1 && !member.isLearner) {
      throw new InputError('NAME', `node "${name}" has the cluster's last voting etcd member: removing it would lose the cluster`);
    }
  }
  if (!record && !member) throw new InputError('NAME', `there is no node "${name}" in cluster (no registration, no etcd member)`);
  if (member) await store.removeMember(member.id);
  await store.delete(keys.node(name));
  // The name and IP its join claimed are free again for the next join.
  await releaseClaims(store, keys, name, record?.ip ?? null);
  await store.delete(keys.lastSeen(name));
  await store.delete(keys.health(name));
  if (options.force) await store.delete(keys.alive(name));
  // Last: the node's own certificate stops working here, and it must not be this command's.
  const revoked = managesAccess(storeInfo) ? await revokeNode(store, keys, name) : false;
  const tokens: string[] = [];
  if (!options.keepTokens) {
    const tokenStore = new TokenStore(new EtcdKeyValue(store), securityKeys(keys));
    for (const token of await tokenStore.list()) {
      if (token.createdOn === name && (await tokenStore.delete(token.id))) tokens.push(token.id);
    }
  }
  return { name, record: record !== null, etcdMember: member?.id ?? null, revoked, tokens };
}
