import net from 'node:net';
import { bytesToIp, ipToBytes } from './ip';

export interface ArpFrame {
  destinationMac: Buffer;
  sourceMac: Buffer;
  operation: 'request' | 'reply';
  senderMac: Buffer;
  senderIp: string;
  targetMac: Buffer;
  targetIp: string;
}

const ETHERTYPE_ARP = 0x0806;
const ETHERTYPE_IPV4 = 0x0800;
const HTYPE_ETHERNET = 1;
const ETHERNET_HEADER_LENGTH = 14;
const ARP_LENGTH = 28; // RFC 826 packet for Ethernet/IPv4: 8 + 2*6 + 2*4
const ETHERNET_MIN_FRAME = 60; // 802.3 minimum without FCS
const OP_REQUEST = 1;
const OP_REPLY = 2;

const BROADCAST_MAC = Buffer.from('ffffffffffff', 'hex');
const ZERO_MAC = Buffer.alloc(6);

function checkMac(name: string, mac: Buffer): void {
  if (mac.length !== 6) throw new Error(`${name} must be 6 bytes, got ${mac.length}`);
}

function ipv4Bytes(name: string, ip: string): Buffer {
  if (!net.isIPv4(ip)) throw new Error(`${name} must be an IPv4 address, got ${JSON.stringify(ip)}`);
  return ipToBytes(ip);
}

/** Builds an Ethernet frame carrying an RFC 826 ARP packet, padded to 60 bytes. */
export function encodeArpFrame(f: ArpFrame): Buffer {
  checkMac('destinationMac', f.destinationMac);
  checkMac('sourceMac', f.sourceMac);
  checkMac('senderMac', f.senderMac);
  checkMac('targetMac', f.targetMac);
  const senderIp = ipv4Bytes('senderIp', f.senderIp);
  const targetIp = ipv4Bytes('targetIp', f.targetIp);

  const frame = Buffer.alloc(ETHERNET_MIN_FRAME);
  f.destinationMac.copy(frame, 0);
  f.sourceMac.copy(frame, 6);
  frame.writeUInt16BE(ETHERTYPE_ARP, 12);
  const a = ETHERNET_HEADER_LENGTH;
  frame.writeUInt16BE(HTYPE_ETHERNET, a);
  frame.writeUInt16BE(ETHERTYPE_IPV4, a + 2);
  frame[a + 4] = 6;
  frame[a + 5] = 4;
  frame.writeUInt16BE(f.operation === 'request' ? OP_REQUEST : OP_REPLY, a + 6);
  f.senderMac.copy(frame, a + 8);
  senderIp.copy(frame, a + 14);
  f.targetMac.copy(frame, a + 18);
  targetIp.copy(frame, a + 24);
  return frame;
}

/** Parses an Ethernet/IPv4 ARP frame; null for anything else. Returned buffers are copies. */
export function decodeArpFrame(frame: Buffer): ArpFrame | null {
  if (frame.length < ETHERNET_HEADER_LENGTH + ARP_LENGTH) return null;
  if (frame.readUInt16BE(12) !== ETHERTYPE_ARP) return null;
  const a = ETHERNET_HEADER_LENGTH;
  if (frame.readUInt16BE(a) !== HTYPE_ETHERNET || frame.readUInt16BE(a + 2) !== ETHERTYPE_IPV4) return null;
  if (frame[a + 4] !== 6 || frame[a + 5] !== 4) return null;
  const op = frame.readUInt16BE(a + 6);
  if (op !== OP_REQUEST && op !== OP_REPLY) return null;
  const copy = (start: number, length: number): Buffer => Buffer.from(frame.subarray(start, start + length));
  return {
    destinationMac: copy(0, 6),
    sourceMac: copy(6, 6),
    operation: op === OP_REQUEST ? 'request' : 'reply',
    senderMac: copy(a + 8, 6),
    senderIp: bytesToIp(frame.subarray(a + 14, a + 18)),
    targetMac: copy(a + 18, 6),
    targetIp: bytesToIp(frame.subarray(a + 24, a + 28)),
  };
}

/** Gratuitous ARP request: RFC 5227 §3 announcement (sender IP = target IP, target MAC zero). */
export function gratuitousArpRequest(mac: Buffer, ip: string): Buffer {
  return encodeArpFrame({
    destinationMac: BROADCAST_MAC,
    sourceMac: mac,
    operation: 'request',
    senderMac: mac,
    senderIp: ip,
    targetMac: ZERO_MAC,
    targetIp: ip,
  });
}

/** Gratuitous ARP reply: RFC 5944 §4.6 sets the target MAC to the sender's too. */
export function gratuitousArpReply(mac: Buffer, ip: string): Buffer {
  return encodeArpFrame({
    destinationMac: BROADCAST_MAC,
    sourceMac: mac,
    operation: 'reply',
    senderMac: mac,
    senderIp: ip,
    targetMac: mac,
    targetIp: ip,
  });
}

/** ARP probe, RFC 5227 §2.1.1: sender IP 0.0.0.0 so no neighbour caches are touched. */
export function arpProbe(mac: Buffer, ip: string): Buffer {
  return encodeArpFrame({
    destinationMac: BROADCAST_MAC,
    sourceMac: mac,
    operation: 'request',
    senderMac: mac,
    senderIp: '0.0.0.0',
    targetMac: ZERO_MAC,
    targetIp: ip,
  });
}
