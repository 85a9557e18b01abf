import net from 'node:net';
import { bytesToIp, ipToBytes } from './ip';

export interface NeighborAdvertisement {
  sourceMac: Buffer;
  target: string;
  override: boolean;
  solicited: boolean;
  router: boolean;
  targetMac: Buffer | null;
}

const ETHERTYPE_IPV6 = 0x86dd;
const ETHERNET_HEADER_LENGTH = 14;
const IPV6_HEADER_LENGTH = 40;
const NEXT_HEADER_ICMPV6 = 58;
const ICMPV6_NEIGHBOR_ADVERTISEMENT = 136;
const NA_LENGTH = 24; // RFC 4861 §4.4: type, code, checksum, flags/reserved, target
const ICMPV6_NEIGHBOR_SOLICITATION = 135;
const NS_LENGTH = 24; // RFC 4861 §4.3: type, code, checksum, reserved, target
const OPTION_TARGET_LINK_LAYER = 2;
// RFC 4861 §7.1.2: hop limit 255 proves the sender is on-link.
const NDP_HOP_LIMIT = 255;
const FLAG_ROUTER = 0x80;
const FLAG_SOLICITED = 0x40;
const FLAG_OVERRIDE = 0x20;

// RFC 2464 §7: ff02::1 maps to 33:33 + its low 32 bits.
const ALL_NODES_MAC = Buffer.from('333300000001', 'hex');
const ALL_NODES_IP = ipToBytes('ff02::1');

/** RFC 8200 §8.1 / RFC 4443 §2.3 checksum over the IPv6 pseudo-header and the ICMPv6 message. */
function icmpv6Checksum(source: Uint8Array, destination: Uint8Array, message: Uint8Array): number {
  const pseudo = Buffer.alloc(40);
  pseudo.set(source, 0);
  pseudo.set(destination, 16);
  pseudo.writeUInt32BE(message.length, 32);
  pseudo[39] = NEXT_HEADER_ICMPV6;
  let sum = 0;
  const add = (bytes: Uint8Array): void => {
    for (let i = 0; i < bytes.length; i += 2) {
      sum += (bytes[i] << 8) | (i + 1 < bytes.length ? bytes[i + 1] : 0);
    }
  };
  add(pseudo);
  add(message);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * Unsolicited Neighbor Advertisement for a VIP (RFC 4861 §7.2.6): to all-nodes,
 * O=1 so caches update, S=0 because nobody asked, with the target link-layer option.
 */
export function encodeUnsolicitedNeighborAdvertisement(mac: Buffer, ip: string): Buffer {
  if (mac.length !== 6) throw new Error(`MAC address must be 6 bytes, got ${mac.length}`);
  if (!net.isIPv6(ip)) throw new Error(`NA target must be an IPv6 address, got ${JSON.stringify(ip)}`);
  const vip = ipToBytes(ip);

  const icmp = Buffer.alloc(NA_LENGTH + 8);
  icmp[0] = ICMPV6_NEIGHBOR_ADVERTISEMENT;
  icmp[4] = FLAG_OVERRIDE;
  vip.copy(icmp, 8);
  icmp[NA_LENGTH] = OPTION_TARGET_LINK_LAYER;
  icmp[NA_LENGTH + 1] = 1; // length in units of 8 octets
  mac.copy(icmp, NA_LENGTH + 2);
  return ipv6Frame(mac, ALL_NODES_MAC, vip, ALL_NODES_IP, icmp);
}

/** Ethernet + IPv6 header (hop limit 255) around an ICMPv6 message whose checksum is filled in here. */
function ipv6Frame(sourceMac: Buffer, destinationMac: Buffer, source: Buffer, destination: Buffer, icmp: Buffer): Buffer {
  icmp.writeUInt16BE(0, 2);
  icmp.writeUInt16BE(icmpv6Checksum(source, destination, icmp), 2);

  const ipv6 = Buffer.alloc(IPV6_HEADER_LENGTH);
  ipv6[0] = 0x60; // version 6, traffic class 0, flow label 0
  ipv6.writeUInt16BE(icmp.length, 4);
  ipv6[6] = NEXT_HEADER_ICMPV6;
  ipv6[7] = NDP_HOP_LIMIT;
  source.copy(ipv6, 8);
  destination.copy(ipv6, 24);

  const ethernet = Buffer.alloc(ETHERNET_HEADER_LENGTH);
  destinationMac.copy(ethernet, 0);
  sourceMac.copy(ethernet, 6);
  ethernet.writeUInt16BE(ETHERTYPE_IPV6, 12);

  return Buffer.concat([ethernet, ipv6, icmp]);
}

/**
 * Duplicate-address-detection probe (RFC 4862 §5.4.2): a Neighbor Solicitation from the
 * unspecified address to the target's solicited-node group, with no source link-layer
 * option (§5.4.2 forbids it). Any node that owns the target answers with an NA.
 */
export function encodeDadNeighborSolicitation(mac: Buffer, ip: string): Buffer {
  if (mac.length !== 6) throw new Error(`MAC address must be 6 bytes, got ${mac.length}`);
  if (!net.isIPv6(ip)) throw new Error(`NS target must be an IPv6 address, got ${JSON.stringify(ip)}`);
  const target = ipToBytes(ip);
  // RFC 4291 §2.7.1: ff02::1:ff00:0/104 plus the target's low 24 bits.
  const group = ipToBytes('ff02::1:ff00:0');
  target.copy(group, 13, 13, 16);
  // RFC 2464 §7: 33:33 plus the group's low 32 bits.
  const groupMac = Buffer.concat([Buffer.from([0x33, 0x33]), group.subarray(12, 16)]);
  const icmp = Buffer.alloc(NS_LENGTH);
  icmp[0] = ICMPV6_NEIGHBOR_SOLICITATION;
  target.copy(icmp, 8);
  return ipv6Frame(mac, groupMac, Buffer.alloc(16), group, icmp);
}

/**
 * Parses an Ethernet/IPv6 Neighbor Advertisement, applying the RFC 4861 §7.1.2
 * validity checks; null for anything else. Extension headers are not followed.
 */
export function decodeNeighborAdvertisement(frame: Buffer): NeighborAdvertisement | null {
  if (frame.length < ETHERNET_HEADER_LENGTH + IPV6_HEADER_LENGTH + NA_LENGTH) return null;
  if (frame.readUInt16BE(12) !== ETHERTYPE_IPV6) return null;
  const ip = frame.subarray(ETHERNET_HEADER_LENGTH);
  if (ip[0] >> 4 !== 6 || ip[6] !== NEXT_HEADER_ICMPV6 || ip[7] !== NDP_HOP_LIMIT) return null;
  const payloadLength = ip.readUInt16BE(4);
  if (payloadLength < NA_LENGTH || IPV6_HEADER_LENGTH + payloadLength > ip.length) return null;
  const source = ip.subarray(8, 24);
  const destination = ip.subarray(24, 40);
  const icmp = ip.subarray(IPV6_HEADER_LENGTH, IPV6_HEADER_LENGTH + payloadLength);
  if (icmp[0] !== ICMPV6_NEIGHBOR_ADVERTISEMENT || icmp[1] !== 0) return null;
  if (icmpv6Checksum(source, destination, icmp) !== 0) return null;

  const flags = icmp[4];
  const solicited = (flags & FLAG_SOLICITED) !== 0;
  const target = icmp.subarray(8, 24);
  if (target[0] === 0xff) return null; // target must not be multicast
  if (destination[0] === 0xff && solicited) return null; // multicast NA must have S=0

  let targetMac: Buffer | null = null;
  for (let offset = NA_LENGTH; offset < icmp.length; ) {
    if (offset + 2 > icmp.length) return null;
    const optionLength = icmp[offset + 1] * 8;
    if (optionLength === 0 || offset + optionLength > icmp.length) return null;
    if (icmp[offset] === OPTION_TARGET_LINK_LAYER && targetMac === null) {
      targetMac = Buffer.from(icmp.subarray(offset + 2, offset + 8));
    }
    offset += optionLength;
  }

  return {
    sourceMac: Buffer.from(frame.subarray(6, 12)),
    target: bytesToIp(target),
    override: (flags & FLAG_OVERRIDE) !== 0,
    solicited,
    router: (flags & FLAG_ROUTER) !== 0,
    targetMac,
  };
}
