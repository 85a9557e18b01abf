import { X509Certificate } from 'node:crypto';
import type { Config } from '../config/config';
import { readClusterHealth } from '../health/cluster';
import type { EtcdStore } from '../store/etcd-store';
import { readCordons, readPriorities } from '../store/maintenance';
import { Membership } from '../store/membership';
import { readHookFailure } from '../store/hook-history';
import { securityKeys, type ClusterKeys } from '../store/keys';
import { parseLeader, parseStored, type ClusterSettings, type PublishedDhcpState } from '../store/records';
import { describeManagementAddress, type ManagementAddress, type NodeHealthStatus } from './management-address';

/** Reads everything the management address shows from etcd: holder, settings, DHCP lease. */
export async function readManagementAddress(store: EtcdStore, keys: ClusterKeys, config: Config): Promise<ManagementAddress> {
  const membership = new Membership(store, keys);
  const [leader, settings, dhcp, ca, hookFailure, nodes] = await Promise.all([
    store.get(keys.leader),
    store.get(keys.settings),
    store.get(keys.dhcp),
    store.get(securityKeys(keys).ca),
    readHookFailure(store, keys),
    readNodesHealth(store, keys, membership),
  ]);
  const security = securityKeys(keys);
  const caCertificate = parseStored<{ certificate: string }>(security.ca, ca?.value)?.certificate;
  const view = describeManagementAddress({
    cluster: config.cluster,
    address: config.vip.address,
    mode: config.vip.mode,
    interface: config.node.interface,
    leader: parseLeader(leader),
    hwaddr: parseStored<ClusterSettings>(keys.settings, settings?.value)?.hwaddr ?? (config.vip.mode === 'dhcp' ? config.vip.hwaddr : null),
    dhcp: config.vip.mode === 'dhcp' ? parseStored<PublishedDhcpState>(keys.dhcp, dhcp?.value) : null,
    hookFailure,
    nodes,
  });
  if (caCertificate) view.status.caFingerprint = new X509Certificate(caCertificate).fingerprint256;
  return view;
}

/** Every registered node's health checks beside whether its agent runs, by name. */
export async function readNodesHealth(store: EtcdStore, keys: ClusterKeys, membership = new Membership(store, keys)): Promise<NodeHealthStatus[]> {
  const [records, live, health, cordons, priorities] = await Promise.all([
    membership.listNodes(),
    membership.liveNodeNames(),
    readClusterHealth(store, keys),
    readCordons(store, keys),
    readPriorities(store, keys),
  ]);
  return records
    .map((record): NodeHealthStatus => {
      const published = health.get(record.name);
      const cordon = cordons.get(record.name);
      return {
        priority: priorities.get(record.name)?.priority ?? null,
        cordon: cordon ? { strict: cordon.strict, by: cordon.by, reason: cordon.reason, since: cordon.time } : null,
        name: record.name,
        running: live.has(record.name),
        health: !published ? 'unknown' : published.healthy ? 'passing' : 'failing',
        since: published?.since ?? null,
        failing: (published?.checks ?? []).filter((check) => !check.passing).map((check) => ({ check: check.name, detail: check.lastResult?.detail ?? null, since: check.since })),
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}
