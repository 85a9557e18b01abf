import type { PublishedDhcpState } from '../store/records';
import type { HookFailureRecord } from '../store/records';
import type { Leader } from '../store/records';

/** One node's health as status shows it (issue 13). */
export interface NodeHealthStatus {
  name: string;
  /** Its agent runs (its liveness key exists). */
  running: boolean;
  /** passing: every check passes (or it has none); failing; unknown: it published no health. */
  health: 'passing' | 'failing' | 'unknown';
  /** When `health` last changed, as the node published it. */
  since: string | null;
  failing: Array<{ check: string; detail: string | null; since: string }>;
  /** The priority it runs with (issue 14), null when it published none. */
  priority?: number | null;
  /** Its cordon, null when it has none. */
  cordon?: NodeCordon | null;
}

/** An operator keeps the VIP off this node (vipd cordon): strictly, or unless no other node can take it. */
export interface NodeCordon {
  strict: boolean;
  by: string;
  reason: string | null;
  since: string;
}

function cordonText(cordon: NodeCordon): string {
  return `cordoned${cordon.strict ? ' (strict)' : ''} by ${cordon.by}${cordon.reason ? `: ${cordon.reason}` : ''}`;
}

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
  spec: { address: string | null; mode: 'static' | 'dhcp'; interface: string; hwaddr?: string };
  status: {
    held: boolean;
    /** The address clients reach: the VIP, or in DHCP mode the leased address. */
    address: string | null;
    holder: string | null;
    holderIP: string | null;
    hwaddr: string | null;
    since: string | null;
    term: number | null;
    message: string;
    /** DHCP mode: the lease as the holder last saw it. */
    dhcp?: Omit<PublishedDhcpState, 'hwaddr' | 'requestedIP'>;
    /** SHA-256 of the cluster CA, colon hex: what clients pin. */
    caFingerprint?: string;
    /** Why clients may distrust the served certificate (e.g. no IP SAN for the VIP), or null. */
    certificateWarning?: string | null;
    /** A node gave the VIP up because a required acquire hook failed; kept until that node's hooks succeed. */
    lastHookFailure?: HookFailureRecord;
    /** Every registered node's health checks, when read from the cluster (issue 13). */
    nodes?: NodeHealthStatus[];
  };
}

export interface ManagementAddressInput {
  cluster: string;
  /** Static: the VIP. DHCP: the configured requested IP, if any. */
  address: string | null;
  mode: 'static' | 'dhcp';
  interface: string;
  leader: Leader | null;
  /** DHCP mode: the VIP's own MAC and the holder's published lease. */
  hwaddr?: string | null;
  dhcp?: PublishedDhcpState | null;
  /** The newest unresolved required-hook failure (src/hooks/runner.ts). */
  hookFailure?: HookFailureRecord | null;
  /** Every registered node's health (issue 13). */
  nodes?: NodeHealthStatus[];
}

function failingText(node: NodeHealthStatus): string {
  return node.failing.map((entry) => `check ${entry.check} failing${entry.detail ? ` (${entry.detail})` : ''}`).join(', ') || 'checks not passed yet';
}

export function describeManagementAddress(input: ManagementAddressInput): ManagementAddress {
  const { leader, dhcp } = input;
  const annotations: Record<string, string> = {};
  if (leader) annotations[ANNOTATION_VIP_HOST] = leader.node;
  // Static: the MAC answering is the holder's, known only while someone holds the VIP.
  // DHCP: the VIP's own MAC, which the user needs for the reservation even before any lease.
  const hwaddr = input.mode === 'dhcp' ? (input.hwaddr ?? null) : (leader?.mac ?? null);
  if (hwaddr) annotations[ANNOTATION_HWADDR] = hwaddr;
  const requested = input.address ?? dhcp?.requestedIP ?? dhcp?.leasedIP ?? null;
  if (requested) annotations[ANNOTATION_REQUESTED_IP] = requested;
  const served = input.mode === 'static' ? input.address : (dhcp?.state === 'bound' ? dhcp.leasedIP : null);
  let message = leader ? `held by ${leader.node}` : 'no node holds the VIP';
  if (leader && input.mode === 'dhcp' && dhcp?.state !== 'bound') {
    message = `held by ${leader.node}, but not served: ${dhcp?.reason ?? 'waiting for a DHCP lease'}`;
  }
  if (input.hookFailure) message += `; ${input.hookFailure.node} gave the VIP up: ${input.hookFailure.reason}`;
  const holderHealth = leader ? input.nodes?.find((node) => node.name === leader.node) : undefined;
  if (holderHealth?.health === 'failing') {
    // The holder leaves only for a healthy running node (src/agent/health-gate.ts).
    const target = input.nodes?.some((node) => node.name !== leader!.node && node.running && node.health === 'passing');
    message += `; held while unhealthy (${failingText(holderHealth)}): ${target ? 'moving to a healthy node' : 'no running node is healthy to move it to'}`;
  }
  if (holderHealth?.cordon) {
    // A cordoned holder leaves for an uncordoned healthy node, and keeps the VIP while none runs (src/agent/preference.ts).
    const target = input.nodes?.some((node) => node.name !== leader!.node && node.running && node.health !== 'failing' && !node.cordon);
    message += `; held by a cordoned node (${cordonText(holderHealth.cordon)}): ${target ? 'moving to an uncordoned node' : 'no uncordoned healthy node is running'}`;
  }
  const strictOnly = !leader && input.nodes?.some((node) => node.running) && input.nodes.every((node) => !node.running || node.cordon?.strict);
  if (strictOnly) {
    // A strict cordon never takes the VIP, even as the last node alive (src/agent/preference.ts).
    const names = input.nodes!.filter((node) => node.running).map((node) => node.name);
    message += `; the only running ${names.length === 1 ? 'node is' : 'nodes are'} strictly cordoned (${names.join(', ')}) and never ${names.length === 1 ? 'takes' : 'take'} it: uncordon one (vipd uncordon NODE)`;
  }
  const view: ManagementAddress = {
    apiVersion: 'vipd.io/v1',
    kind: 'ManagementAddress',
    metadata: { name: 'management-address', cluster: input.cluster, annotations },
    spec: {
      address: input.address,
      mode: input.mode,
      interface: input.interface,
      ...(input.mode === 'dhcp' && input.hwaddr ? { hwaddr: input.hwaddr } : {}),
    },
    status: {
      held: leader !== null,
      address: served ?? null,
      holder: leader?.node ?? null,
      holderIP: leader?.ip ?? null,
      hwaddr,
      since: leader?.since ?? null,
      term: leader?.term ?? null,
      message,
    },
  };
  if (input.hookFailure) view.status.lastHookFailure = input.hookFailure;
  if (input.nodes) view.status.nodes = input.nodes;
  if (input.mode === 'dhcp' && dhcp) {
    const { hwaddr: _hwaddr, requestedIP: _requested, ...lease } = dhcp;
    view.status.dhcp = lease;
  }
  return view;
}

/** A short table a person takes in at a glance. */
export function formatManagementAddressTable(view: ManagementAddress, now = new Date()): string {
  const shown = view.status.address ?? view.spec.address ?? 'none leased yet';
  const rows: Array<[string, string]> = [['MANAGEMENT ADDRESS', `${shown} (${view.spec.mode})`]];
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
    if (view.status.hwaddr) rows.push(['MAC', view.status.hwaddr]);
  }
  const lease = view.status.dhcp;
  if (lease) {
    rows.push(['DHCP', lease.state === 'bound' ? `${lease.leasedIP} leased for ${lease.leaseSeconds}s, expires ${lease.expiresAt}` : `${lease.state}: ${lease.reason ?? 'waiting for a lease'}`]);
  }
  if (view.status.message !== (view.status.held ? `held by ${view.status.holder}` : 'no node holds the VIP')) rows.push(['NOTE', view.status.message]);
  for (const [index, node] of (view.status.nodes ?? []).entries()) {
    const health = node.health === 'passing' ? 'healthy' : node.health === 'unknown' ? 'health unknown' : `unhealthy: ${failingText(node)}`;
    const since = node.since && node.health !== 'unknown' ? ` since ${node.since}` : '';
    const preference = `${node.priority != null ? `, priority ${node.priority}` : ''}${node.cordon ? `, ${cordonText(node.cordon)}` : ''}`;
    rows.push([index === 0 ? 'NODES' : '', `${node.name}: ${node.running ? 'running' : 'not running'}, ${health}${since}${preference}${node.name === view.status.holder ? ' (holder)' : ''}`]);
  }
  rows.push(['CLUSTER', view.metadata.cluster]);
  if (view.status.caFingerprint) rows.push(['CA (SHA-256)', view.status.caFingerprint]);
  if (view.status.certificateWarning) rows.push(['TLS WARNING', view.status.certificateWarning]);
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n') + '\n';
}

function age(iso: string, now: Date): string {
  const seconds = Math.max(0, Math.round((now.getTime() - new Date(iso).getTime()) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${Math.round(seconds / 3600)}h`;
}

/**
 * When a node was last known alive, for one that is not alive now: the latest of its
 * registration, the moment its liveness key vanished (recorded by whichever API watched it)
 * and the last time it took the VIP (it was alive then). A departure can go unrecorded when
 * no watch was open at that moment; the history still tells the truth about a recent holder.
 */
export function lastSeenOf(node: { name: string; registeredAt?: string }, departedAt: string | undefined, moves: ReadonlyArray<{ to: string | null; time: string }>): string | null {
  let latest: string | null = node.registeredAt ?? null;
  const consider = (time: string | undefined): void => {
    if (time && !Number.isNaN(Date.parse(time)) && (latest === null || Date.parse(time) > Date.parse(latest))) latest = time;
  };
  consider(departedAt);
  for (const move of moves) if (move.to === node.name) consider(move.time);
  return latest;
}
