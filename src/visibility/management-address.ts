import type { Leader } from '../election/election';

/** The Harvester/kube-vip annotation names users already query with jsonpath. */
export const ANNOTATION_VIP_HOST = 'kube-vip.io/vipHost';
export const ANNOTATION_HWADDR = 'kube-vip.io/hwaddr';
export const ANNOTATION_REQUESTED_IP = 'kube-vip.io/requestedIP';

/**
 * The management address as an object shaped like the Kubernetes Service in Harvester's
 * documentation, so the same jsonpath queries work against vipd.
 */
export interface ManagementAddress {
  apiVersion: 'vipd.io/v1';
  kind: 'ManagementAddress';
  metadata: { name: 'management-address'; cluster: string; annotations: Record<string, string> };
  spec: { address: string; mode: 'static' | 'dhcp'; interface: string };
  status: {
    held: boolean;
    holder: string | null;
    holderIP: string | null;
    hwaddr: string | null;
    since: string | null;
    term: number | null;
    message: string;
  };
}

export interface ManagementAddressInput {
  cluster: string;
  address: string;
  mode: 'static' | 'dhcp';
  interface: string;
  leader: Leader | null;
}

export function describeManagementAddress(input: ManagementAddressInput): ManagementAddress {
  const { leader } = input;
  const annotations: Record<string, string> = {};
  // kube-vip sets vipHost and hwaddr only while a node holds the VIP; so do we.
  if (leader) {
    annotations[ANNOTATION_VIP_HOST] = leader.node;
    annotations[ANNOTATION_HWADDR] = leader.mac;
  }
  annotations[ANNOTATION_REQUESTED_IP] = input.address;
  return {
    apiVersion: 'vipd.io/v1',
    kind: 'ManagementAddress',
    metadata: { name: 'management-address', cluster: input.cluster, annotations },
    spec: { address: input.address, mode: input.mode, interface: input.interface },
    status: {
      held: leader !== null,
      holder: leader?.node ?? null,
      holderIP: leader?.ip ?? null,
      hwaddr: leader?.mac ?? null,
      since: leader?.since ?? null,
      term: leader?.term ?? null,
      message: leader ? `held by ${leader.node}` : 'no node holds the VIP',
    },
  };
}

/** A short table a person takes in at a glance. */
export function formatManagementAddressTable(view: ManagementAddress, now = new Date()): string {
  const rows: Array<[string, string]> = [
    ['MANAGEMENT ADDRESS', `${view.spec.address} (${view.spec.mode})`],
  ];
  if (view.status.held) {
    const since = view.status.since ? `${view.status.since} (${age(view.status.since, now)} ago)` : '-';
    rows.push(
      ['HOLDER', `${view.status.holder} (${view.status.holderIP})`],
      ['MAC', view.status.hwaddr ?? '-'],
      ['SINCE', since],
      ['TERM', String(view.status.term)],
    );
  } else {
    rows.push(['HOLDER', 'none: no node holds the VIP']);
  }
  rows.push(['CLUSTER', view.metadata.cluster]);
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n') + '\n';
}

function age(iso: string, now: Date): string {
  const seconds = Math.max(0, Math.round((now.getTime() - new Date(iso).getTime()) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${Math.round(seconds / 3600)}h`;
}
