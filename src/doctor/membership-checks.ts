/**
 * Checks on what the nodes registered in etcd: one subnet, one MTU, and in DHCP mode the
 * reservation. Pure functions over facts gathered elsewhere, so they are tested directly.
 */
import { isIPv4 } from 'node:net';
import type { NodeRecord } from '../store/records';
import { bytesToIp, ipToBytes } from '../holding/codecs/ip';
import { sameSubnet } from '../holding/codecs/subnet';
import type { ManagementAddress } from '../status/management-address';
import { reservationFor } from '../holding/dhcp-reservation';
import { check, skip, type CheckResult } from './report';

export interface OwnAddress {
  address: string;
  prefixLength: number;
}

/** What this node's management interface looks like, or null when it does not exist. */
export interface LocalInterface {
  name: string;
  mtu: number;
  /** Its addresses, link-local and the VIP itself excluded. */
  addresses: OwnAddress[];
}

/** The address whose subnet everything must share: the VIP, or in DHCP mode the requested or leased IP. */
export interface ReferenceAddress {
  address: string;
  what: string;
}

/** "192.0.2.0/24" for 192.0.2.11 with prefix 24. */
export function subnetText(address: string, prefixLength: number): string {
  const bytes = ipToBytes(address);
  for (let bit = prefixLength; bit < bytes.length * 8; bit += 1) bytes[bit >> 3] &= ~(0x80 >> (bit & 7));
  return `${bytesToIp(bytes)}/${prefixLength}`;
}

/** This node's management address: the one whose subnet holds the reference, or the first IPv4 one. */
export function ownManagementAddress(local: LocalInterface, reference: ReferenceAddress | null): OwnAddress | null {
  if (reference) return local.addresses.find((entry) => sameSubnet(entry.address, reference.address, entry.prefixLength)) ?? null;
  return local.addresses.find((entry) => isIPv4(entry.address)) ?? null;
}

/** "the only registered node", "both registered nodes", "all 3 registered nodes". */
export function allNodes(count: number, noun = 'registered nodes'): string {
  if (count === 1) return `the only ${noun.replace(/s$/, '')}`;
  return count === 2 ? `both ${noun}` : `all ${count} ${noun}`;
}

function nodeList(nodes: NodeRecord[]): string {
  return nodes.map((node) => `${node.name} (${node.ip})`).join(', ');
}

/** Check 1: the VIP and every registered node's management IP in this node's management subnet. */
export function checkSubnet(input: {
  cluster: string;
  local: LocalInterface | null;
  interfaceName: string;
  reference: ReferenceAddress | null;
  nodes: NodeRecord[];
}): CheckResult {
  const name = 'subnet';
  const { local, reference, nodes } = input;
  if (!local) {
    return check(name, 'fail', `there is no interface "${input.interfaceName}" on this node`, 'set node.interface to the interface that carries the management network');
  }
  const own = ownManagementAddress(local, reference);
  const listed = local.addresses.map((entry) => `${entry.address}/${entry.prefixLength}`).join(', ') || 'none';
  if (!own) {
    return reference
      ? check(
          name,
          'fail',
          `the ${reference.what} ${reference.address} is not inside the subnet of any address on ${local.name} (${listed})`,
          `give ${local.name} an address in the ${reference.what}'s subnet, or fix vip.address`,
        )
      : check(name, 'fail', `${local.name} has no IPv4 address (${listed})`, `DHCP mode needs an IPv4 address on ${local.name}, in the VIP's segment`);
  }
  const subnet = subnetText(own.address, own.prefixLength);
  if (nodes.length === 0) return skip(name, `no node has registered in etcd yet (this node's subnet is ${subnet})`);
  const outside = nodes.filter((node) => !sameSubnet(node.ip, own.address, own.prefixLength));
  const where = reference ? `the ${reference.what}'s subnet on this node` : "this node's management subnet";
  if (outside.length > 0) {
    const names = outside.map((node) => node.name).join(', ');
    return check(
      name,
      'fail',
      `${nodeList(outside)} ${outside.length === 1 ? 'is' : 'are'} outside ${subnet}, ${where}`,
      `the VIP and every management IP must share one subnet on one layer-2 segment: fix the address or netmask of ${names}, ` +
        `or remove a registration left by a node that is gone (etcdctl del /vipd/${input.cluster}/nodes/NAME)`,
    );
  }
  const otherMask = nodes.filter((node) => node.prefixLength !== own.prefixLength);
  if (otherMask.length > 0) {
    const masks = otherMask.map((node) => `${node.name} /${node.prefixLength}`).join(', ');
    return check(
      name,
      'warn',
      `${allNodes(nodes.length, 'nodes')} ${nodes.length === 1 ? 'is' : 'are'} in ${subnet}, but their netmasks differ from this node's /${own.prefixLength}: ${masks}`,
      'give every management interface the same netmask; a node with a narrower one cannot reach the others directly',
    );
  }
  const vip = reference ? `the ${reference.what} ${reference.address} and ` : '';
  return check(name, 'ok', `${vip}${allNodes(nodes.length)} ${nodes.length === 1 ? 'is' : 'are'} in ${subnet}`);
}

/** Check 4: one MTU on every management interface; this node's is read live. */
export function checkMtu(input: { selfName: string; localMtu: number | null; nodes: NodeRecord[] }): CheckResult {
  const name = 'mtu';
  const byMtu = new Map<number, string[]>();
  const unknown: string[] = [];
  const seen = new Set<string>();
  const add = (node: string, mtu: number | null | undefined): void => {
    seen.add(node);
    if (typeof mtu !== 'number' || !Number.isFinite(mtu) || mtu <= 0) {
      unknown.push(node);
      return;
    }
    byMtu.set(mtu, [...(byMtu.get(mtu) ?? []), node]);
  };
  if (input.localMtu !== null) add(input.selfName, input.localMtu);
  for (const node of input.nodes) if (!seen.has(node.name)) add(node.name, node.mtu);
  if (byMtu.size === 0) return skip(name, unknown.length > 0 ? `no MTU known (registrations from an older vipd: ${unknown.join(', ')})` : 'no node has registered yet');
  const groups = [...byMtu.entries()].sort(([a], [b]) => a - b).map(([mtu, names]) => `${mtu} on ${names.join(', ')}`);
  if (byMtu.size > 1) {
    return check(
      name,
      'fail',
      `the management interfaces' MTU differs: ${groups.join('; ')}`,
      'set one MTU on every management interface (and the switch ports): a mismatch silently drops large frames, e.g. etcd and API responses',
    );
  }
  const [mtu] = [...byMtu.keys()];
  if (unknown.length > 0) {
    return check(name, 'warn', `MTU ${mtu} on ${byMtu.get(mtu!)!.join(', ')}; unknown on ${unknown.join(', ')} (registered by an older vipd)`, 'restart those agents so they register their MTU');
  }
  return check(name, 'ok', `MTU ${mtu} on ${allNodes(byMtu.get(mtu!)!.length, 'nodes')}`);
}

/** Check 7: in DHCP mode the server leased the requested IP, so the address never moves. */
export function checkDhcpReservation(view: ManagementAddress): CheckResult {
  const name = 'dhcp-reservation';
  if (view.spec.mode !== 'dhcp') return skip(name, 'static mode: no DHCP reservation involved');
  const requested = view.metadata.annotations['kube-vip.io/requestedIP'] ?? null;
  const hwaddr = view.metadata.annotations['kube-vip.io/hwaddr'] ?? null;
  const lease = view.status.dhcp;
  const leased = lease?.leasedIP ?? null;
  const reservation = hwaddr && requested ? reservationFor(view.metadata.cluster, hwaddr, requested) : null;
  const howTo = reservation?.dnsmasq ? `add a reservation to the DHCP server, e.g. dnsmasq: ${reservation.dnsmasq} (vipd dhcp reservation prints the others)` : 'run vipd dhcp reservation and add its line to the DHCP server';
  if (!leased || lease?.state !== 'bound') {
    const why = lease ? `${lease.state}${lease.reason ? `: ${lease.reason}` : ''}` : 'no holder has reported a lease';
    return check(name, 'warn', `no DHCP lease held (${why})${requested ? `; requested ${requested}` : ''}`, `check that the DHCP server answers on the VIP's segment; ${howTo}`);
  }
  if (!requested) return check(name, 'warn', `leased ${leased}, but no requested IP is known`, 'set vip.address to the IP the DHCP server reserves for the VIP');
  if (leased !== requested) {
    return check(
      name,
      'fail',
      `the DHCP server leased ${leased}, not the requested ${requested}: its reservation for ${hwaddr ?? 'the VIP MAC'} is missing or names another IP`,
      howTo,
    );
  }
  return check(name, 'ok', `leased ${leased} to ${hwaddr ?? 'the VIP MAC'}, as requested`);
}
