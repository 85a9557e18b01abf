import { X509Certificate } from 'node:crypto';
import type { Config } from '../config/config';
import type { EtcdStore } from '../store/etcd-store';
import { readHookFailure } from '../store/hook-history';
import { securityKeys, type ClusterKeys } from '../store/keys';
import { parseLeader, parseStored, type ClusterSettings, type PublishedDhcpState } from '../store/records';
import { describeManagementAddress, type ManagementAddress } from './management-address';

/** Reads everything the management address shows from etcd: holder, settings, DHCP lease. */
export async function readManagementAddress(store: EtcdStore, keys: ClusterKeys, config: Config): Promise<ManagementAddress> {
  const [leader, settings, dhcp, ca, hookFailure] = await Promise.all([
    store.get(keys.leader),
    store.get(keys.settings),
    store.get(keys.dhcp),
    store.get(securityKeys(keys).ca),
    readHookFailure(store, keys),
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
  });
  if (caCertificate) view.status.caFingerprint = new X509Certificate(caCertificate).fingerprint256;
  return view;
}
