/**
 * Layer-2 checks: every registered node answers ARP (IPv6: neighbour solicitation) on this
 * node's segment from its registered MAC, and exactly one MAC, the holder's, answers for the
 * VIP. The probing is raw frames; the verdicts are pure functions of what answered.
 */
import { readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import type { NodeRecord } from '../store/records';
import { decodeArpFrame, encodeArpFrame } from '../holding/codecs/arp';
import { formatMac } from '../holding/codecs/mac';
import { decodeNeighborAdvertisement, encodeDadNeighborSolicitation } from '../holding/codecs/ndp';
import type { InterfaceAddress, InterfaceInfo } from '../holding/netlink';
import { ETHERTYPE_ARP, ETHERTYPE_IPV6, PacketSocket } from '../holding/raw-socket';
import { check, skip, type CheckResult } from './report';

/** For each asked address, the MACs that claimed it. */
export type Answers = Map<string, Set<string>>;

export interface SolicitOptions {
  interfaceName: string;
  ownMac: Buffer;
  /** Sender address of ARP requests; 0.0.0.0 (a probe) when this node has no IPv4 address. */
  ownIPv4: string | null;
  targets: string[];
  /** How long to wait for each round of answers. */
  roundMs: number;
  /** Rounds in all: later rounds ask again only the addresses nobody answered for yet. */
  rounds: number;
}

const BROADCAST = Buffer.from('ffffffffffff', 'hex');
const ZERO_MAC = Buffer.alloc(6);

function solicitation(options: SolicitOptions, target: string): Buffer {
  if (!isIPv4(target)) return encodeDadNeighborSolicitation(options.ownMac, target);
  return encodeArpFrame({
    destinationMac: BROADCAST,
    sourceMac: options.ownMac,
    operation: 'request',
    senderMac: options.ownMac,
    senderIp: options.ownIPv4 ?? '0.0.0.0',
    targetMac: ZERO_MAC,
    targetIp: target,
  });
}

/** The address a frame claims and the MAC claiming it: ARP replies and announcements, or NAs. */
function claimIn(frame: Buffer): { ip: string; mac: string } | null {
  const arp = decodeArpFrame(frame);
  if (arp) {
    const claims = arp.operation === 'reply' || arp.senderIp === arp.targetIp;
    return claims && arp.senderIp !== '0.0.0.0' ? { ip: arp.senderIp, mac: formatMac(arp.senderMac) } : null;
  }
  const na = decodeNeighborAdvertisement(frame);
  return na ? { ip: na.target, mac: formatMac(na.targetMac ?? na.sourceMac) } : null;
}

/**
 * Asks the segment who has each target (ARP request, or an RFC 4862 DAD solicitation that
 * any owner answers) and collects every MAC that answers within the rounds. All targets
 * share one socket per family, so the whole check takes rounds × roundMs.
 */
export async function solicit(options: SolicitOptions): Promise<Answers> {
  const answers: Answers = new Map(options.targets.map((target) => [target, new Set<string>()]));
  if (options.targets.length === 0) return answers;
  const own = formatMac(options.ownMac);
  const sockets = new Map<number, PacketSocket>();
  const socketFor = (target: string): PacketSocket => {
    const etherType = isIPv4(target) ? ETHERTYPE_ARP : ETHERTYPE_IPV6;
    let socket = sockets.get(etherType);
    if (!socket) {
      socket = PacketSocket.open(options.interfaceName, etherType);
      sockets.set(etherType, socket);
    }
    return socket;
  };
  try {
    for (const target of options.targets) socketFor(target);
    for (let round = 0; round < options.rounds; round += 1) {
      const silent = options.targets.filter((target) => answers.get(target)!.size === 0);
      if (round > 0 && silent.length === 0) break;
      for (const target of silent) socketFor(target).send(solicitation(options, target));
      const deadline = Date.now() + options.roundMs;
      for (;;) {
        // Drain after every wait, the last one too: on a loaded machine the wait can overrun the deadline.
        for (const socket of sockets.values()) {
          for (let frame = socket.receive(); frame; frame = socket.receive()) {
            const claim = claimIn(frame);
            if (claim && claim.mac !== own) answers.get(claim.ip)?.add(claim.mac);
          }
        }
        if (Date.now() >= deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    }
  } finally {
    for (const socket of sockets.values()) socket.close();
  }
  return answers;
}

function readSysctl(path: string): number {
  try {
    return Number(readFileSync(`/proc/sys/${path}`, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

/** The kernel uses the larger of the "all" and per-interface arp_ignore. */
export function arpIgnore(interfaceName: string): number {
  return Math.max(readSysctl('net/ipv4/conf/all/arp_ignore'), readSysctl(`net/ipv4/conf/${interfaceName}/arp_ignore`));
}

/**
 * Which MACs this node itself answers for an address with. Frames we send never reach our
 * own kernel, so probing cannot hear this node: it is read from its addresses instead.
 * IPv4 answers for any local address (arp_ignore 0), with the management interface's MAC;
 * a macvlan answers with its own; IPv6 answers only for the receiving interface's addresses.
 */
export function localAnswerers(input: {
  address: string;
  managementInterface: string;
  interfaces: InterfaceInfo[];
  addresses: InterfaceAddress[];
  arpIgnore: number;
}): string[] {
  const management = input.interfaces.find((link) => link.name === input.managementInterface);
  if (!management) return [];
  const macs = new Set<string>();
  for (const entry of input.addresses.filter((candidate) => candidate.address === input.address)) {
    const link = input.interfaces.find((candidate) => candidate.index === entry.interfaceIndex);
    if (!link) continue;
    if (link.index === management.index) macs.add(management.mac);
    else if (link.kind === 'macvlan') macs.add(link.mac);
    else if (isIPv4(input.address) && input.arpIgnore === 0) macs.add(management.mac);
  }
  return [...macs];
}

function protocolName(ip: string): string {
  return isIPv4(ip) ? 'ARP' : 'neighbour solicitation';
}

/** Check 2: every other registered node answers on this segment, from its registered MAC. */
export function checkLayer2(input: {
  selfName: string;
  ownIp: string | null;
  interfaceName: string;
  nodes: NodeRecord[];
  live: Set<string>;
  answers: Answers;
  roundMs: number;
  rounds: number;
}): CheckResult {
  const name = 'layer2';
  const others = input.nodes.filter((node) => node.name !== input.selfName && node.ip !== input.ownIp);
  if (others.length === 0) return skip(name, 'no other node has registered: nothing to ask');
  const silent: string[] = [];
  const wrong: string[] = [];
  for (const node of others) {
    const macs = [...(input.answers.get(node.ip) ?? [])];
    const registered = node.mac.toLowerCase();
    if (macs.length === 0) {
      const running = input.live.has(node.name) ? 'its agent is running' : 'its agent is not running';
      silent.push(`${node.name} (${node.ip}) did not answer ${protocolName(node.ip)} within ${input.rounds}×${input.roundMs} ms (${running})`);
    } else if (macs.length > 1) {
      wrong.push(`${node.name}'s IP ${node.ip} answers from ${macs.length} MACs: ${macs.map((mac) => (mac === registered ? `${mac} (registered)` : mac)).join(', ')}`);
    } else if (macs[0] !== registered) {
      wrong.push(`${node.name}'s IP ${node.ip} answers from ${macs[0]}, not its registered ${registered}`);
    }
  }
  if (silent.length > 0 || wrong.length > 0) {
    const hints: string[] = [];
    if (silent.length > 0) {
      hints.push(
        `put every node's management interface on this node's layer-2 segment (same bridge/VLAN as ${input.interfaceName}); ` +
          'check cabling, VLAN tags and firewalls that drop ARP; remove registrations of nodes that are gone for good',
      );
    }
    if (wrong.length > 0) hints.push('another host uses that IP, or the node changed NICs: find the other MAC, and restart the node\'s agent to register again');
    return check(name, 'fail', [...silent, ...wrong].join('; '), hints.join('; '));
  }
  const protocols = [...new Set(others.map((node) => protocolName(node.ip)))].join(' and ');
  const names = others.map((node) => node.name).join(', ');
  return check(name, 'ok', others.length === 1 ? `${names} answers ${protocols} on ${input.interfaceName} from its registered MAC` : `${names} answer ${protocols} on ${input.interfaceName} from their registered MACs`);
}

/** Check 3: the VIP answers from exactly one MAC, the holder's. */
export function checkVipAnswers(input: {
  vip: string | null;
  /** Why there is no VIP to ask for (DHCP mode without a lease). */
  noVipReason?: string;
  holder: string | null;
  expectedMac: string | null;
  answering: Iterable<string>;
  /** MAC to node name, for the detail; the VIP's own MAC (DHCP) too. */
  owners: Map<string, string>;
  roundMs: number;
}): CheckResult {
  const name = 'vip-answers';
  if (!input.vip) return skip(name, input.noVipReason ?? 'no VIP address to ask for');
  const macs = [...new Set([...input.answering].map((mac) => mac.toLowerCase()))].sort();
  const expected = input.expectedMac?.toLowerCase() ?? null;
  const label = (mac: string): string => {
    const owner = input.owners.get(mac);
    const holder = mac === expected && input.holder ? `${input.holder}, the holder` : null;
    const parts = [holder ?? owner].filter((part): part is string => Boolean(part));
    return parts.length > 0 ? `${mac} (${parts.join(', ')})` : mac;
  };
  const asked = `${protocolName(input.vip)} for ${input.vip}`;
  if (!input.holder) {
    if (macs.length === 0) return check(name, 'warn', `no node holds the VIP, and nothing answers ${asked}`, 'start the agents; vipd status says why no node holds the VIP');
    return check(name, 'fail', `no node holds the VIP, but ${macs.map(label).join(', ')} answer${macs.length === 1 ? 's' : ''} ${asked}`, 'remove the VIP from the host with that MAC: clients reach it instead of the cluster');
  }
  if (macs.length === 0) {
    return check(
      name,
      'fail',
      `${input.holder} holds the VIP, but nothing answered ${asked} within ${input.roundMs} ms`,
      `check ${input.holder}: vipd status, its agent's log, and firewalls that drop ARP on it`,
    );
  }
  if (macs.length > 1) {
    return check(
      name,
      'fail',
      `the VIP answers from ${macs.length === 2 ? 'two' : macs.length} MACs: ${macs.map(label).join(', ')}`,
      'remove the VIP from every host but the holder (a static address, a keepalived or kube-vip left running, an address on lo): clients flip between them',
    );
  }
  const [only] = macs;
  if (expected && only !== expected) {
    return check(name, 'fail', `the VIP answers from ${label(only!)}, not the holder ${input.holder}'s ${expected}`, 'another host claims the VIP: remove it there');
  }
  return check(name, 'ok', `only ${label(only!)} answers ${asked}`);
}
