import net from 'node:net';
import { bytesToIp, ipToBytes } from './ip';

/**
 * The DHCPv4 (RFC 2131) bytes vipd handles itself: it sends one message, the INIT-REBOOT
 * DHCPREQUEST that udhcpc does not make (src/holding/dhcp-init-reboot.ts), and reads the
 * DHCPACK or DHCPNAK that answers it. Pure: bytes in, bytes out.
 *
 * Reading accepts what a server may legally send: Ethernet hardware addresses only (htype 1,
 * hlen 6), options in 'file' and 'sname' when option overload (52) says so, repeated
 * options concatenated (RFC 3396 §5).
 */

export type DhcpMessageType = 'discover' | 'offer' | 'request' | 'decline' | 'ack' | 'nak' | 'release' | 'inform';

/** The fields vipd reads from a message. */
export interface DhcpMessage {
  op: 'request' | 'reply';
  xid: number;
  yourIp: string; // yiaddr
  clientMac: Buffer; // first 6 bytes of chaddr
  messageType: DhcpMessageType; // option 53, kept out of `options`
  /** Option code -> value. Never holds pad (0), end (255), overload (52) or message type (53). */
  options: Map<number, Buffer>;
}

/** Option codes vipd writes or reads (RFC 2132 section numbers alongside). */
export const DHCP_OPTION = {
  subnetMask: 1, // §3.3
  router: 3, // §3.5
  requestedIp: 50, // §9.1
  leaseTime: 51, // §9.2
  overload: 52, // §9.3
  messageType: 53, // §9.6
  serverId: 54, // §9.7
  parameterRequestList: 55, // §9.8
  message: 56, // §9.9
  renewalTime: 58, // §9.11 (T1)
  rebindingTime: 59, // §9.12 (T2)
  clientId: 61, // §9.14
} as const;

/** The options vipd reads from a reply; a field is absent when the option is absent or malformed. */
export interface DhcpOptionValues {
  subnetMask?: string;
  /** Seconds; 0xffffffff means infinite (RFC 2131 §3.3). */
  leaseSeconds?: number;
  serverId?: string;
  message?: string;
}

export interface DecodedDhcpFrame {
  sourceMac: Buffer;
  sourceIp: string;
  message: DhcpMessage;
}

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
export const ETHERTYPE_IPV4 = 0x0800;

const OP_BOOTREQUEST = 1;
const OP_BOOTREPLY = 2;
const HTYPE_ETHERNET = 1; // RFC 1700 hardware type
const HLEN_ETHERNET = 6;
const FLAG_BROADCAST = 0x8000; // RFC 2131 §2, figure 2: leftmost bit of 'flags'
const FIXED_LENGTH = 236; // RFC 2131 §2: op..file
const CHADDR_OFFSET = 28;
const SNAME_OFFSET = 44;
const SNAME_LENGTH = 64;
const FILE_OFFSET = 108;
const FILE_LENGTH = 128;
const MAGIC_COOKIE = Buffer.from([99, 130, 83, 99]); // RFC 2131 §3, RFC 2132 §2
const OPTIONS_OFFSET = FIXED_LENGTH + MAGIC_COOKIE.length;
const BOOTP_MINIMUM = 300; // RFC 951's 64-byte vendor area; RFC 2131 §2 requires servers to accept it
const OPTION_PAD = 0;
const OPTION_END = 255;

const MESSAGE_TYPES: readonly DhcpMessageType[] = [
  'discover', // 1
  'offer', // 2
  'request', // 3
  'decline', // 4
  'ack', // 5
  'nak', // 6
  'release', // 7
  'inform', // 8
];
const TYPE_REQUEST = 3;

const ETHERNET_HEADER_LENGTH = 14;
const IPV4_HEADER_LENGTH = 20;
const UDP_HEADER_LENGTH = 8;
const IP_PROTOCOL_UDP = 17;
const IPV4_TTL = 64;
const IPV4_MORE_FRAGMENTS = 0x2000;
const IPV4_FRAGMENT_OFFSET_MASK = 0x1fff;

const BROADCAST_MAC = Buffer.from('ffffffffffff', 'hex');
const ZERO_IP = Buffer.alloc(4);
const BROADCAST_IP = Buffer.from([255, 255, 255, 255]);

/** Options an INIT-REBOOT client asks for: mask, router, lease, server id, T1, T2. */
const INIT_REBOOT_PARAMETERS: readonly number[] = [
  DHCP_OPTION.subnetMask,
  DHCP_OPTION.router,
  DHCP_OPTION.leaseTime,
  DHCP_OPTION.serverId,
  DHCP_OPTION.renewalTime,
  DHCP_OPTION.rebindingTime,
];

/** Reads the options vipd uses; values with the wrong length for their RFC 2132 format are left out. */
export function decodeDhcpOptions(options: Map<number, Buffer>): DhcpOptionValues {
  const out: DhcpOptionValues = {};
  const ip = (code: number): string | undefined => {
    const v = options.get(code);
    return v !== undefined && v.length === 4 ? bytesToIp(v) : undefined;
  };
  const subnetMask = ip(DHCP_OPTION.subnetMask);
  if (subnetMask !== undefined) out.subnetMask = subnetMask;
  const serverId = ip(DHCP_OPTION.serverId);
  if (serverId !== undefined) out.serverId = serverId;
  const lease = options.get(DHCP_OPTION.leaseTime);
  if (lease !== undefined && lease.length === 4) out.leaseSeconds = lease.readUInt32BE(0);
  const message = options.get(DHCP_OPTION.message);
  // Some servers NUL-terminate the text; drop trailing NULs.
  if (message !== undefined && message.length >= 1) out.message = message.toString('latin1').replace(/\0+$/, '');
  return out;
}

/**
 * Walks one options area (RFC 2132 §2), appending values to `into` (RFC 3396 §5 concatenation).
 * `needEnd`: the area must contain the end option; otherwise its own end also ends it.
 * Returns false when an option runs past the area.
 */
function readOptionArea(area: Buffer, into: Map<number, Buffer[]>, needEnd: boolean): boolean {
  let offset = 0;
  while (offset < area.length) {
    const code = area[offset];
    if (code === OPTION_PAD) {
      offset += 1;
      continue;
    }
    if (code === OPTION_END) return true;
    if (offset + 2 > area.length) return false;
    const length = area[offset + 1];
    if (offset + 2 + length > area.length) return false;
    const value = area.subarray(offset + 2, offset + 2 + length);
    const list = into.get(code);
    if (list === undefined) into.set(code, [value]);
    else list.push(value);
    offset += 2 + length;
  }
  return !needEnd;
}

/**
 * Parses a DHCP message (the UDP payload). Null for anything that is not a well-formed
 * Ethernet-hardware DHCP message: short, bad op, htype/hlen not Ethernet, no magic cookie,
 * options running past the buffer, no end option, no or unknown message type (53).
 * Option overload (52) is honoured: per RFC 2131 §4.1 the 'file' field is read after
 * 'options', then 'sname'; options found there are merged into `options`.
 * Returned buffers are copies.
 */
export function decodeDhcpMessage(b: Buffer): DhcpMessage | null {
  if (b.length < OPTIONS_OFFSET) return null;
  if (!b.subarray(FIXED_LENGTH, OPTIONS_OFFSET).equals(MAGIC_COOKIE)) return null;
  const op = b[0];
  if (op !== OP_BOOTREQUEST && op !== OP_BOOTREPLY) return null;
  if (b[1] !== HTYPE_ETHERNET || b[2] !== HLEN_ETHERNET) return null;

  const collected = new Map<number, Buffer[]>();
  if (!readOptionArea(b.subarray(OPTIONS_OFFSET), collected, true)) return null;
  const overload = collected.get(DHCP_OPTION.overload);
  if (overload !== undefined) {
    collected.delete(DHCP_OPTION.overload);
    const value = Buffer.concat(overload);
    const mode = value.length === 1 ? value[0] : 0;
    // §9.3: 1 = 'file' holds options, 2 = 'sname', 3 = both. Anything else is ignored.
    if (mode === 1 || mode === 3) {
      if (!readOptionArea(b.subarray(FILE_OFFSET, FILE_OFFSET + FILE_LENGTH), collected, false)) return null;
    }
    if (mode === 2 || mode === 3) {
      if (!readOptionArea(b.subarray(SNAME_OFFSET, SNAME_OFFSET + SNAME_LENGTH), collected, false)) return null;
    }
    collected.delete(DHCP_OPTION.overload); // an overload option inside file/sname means nothing
  }

  const typeParts = collected.get(DHCP_OPTION.messageType);
  if (typeParts === undefined) return null; // plain BOOTP
  const typeValue = Buffer.concat(typeParts);
  if (typeValue.length !== 1 || typeValue[0] < 1 || typeValue[0] > MESSAGE_TYPES.length) return null;
  collected.delete(DHCP_OPTION.messageType);

  const options = new Map<number, Buffer>();
  for (const [code, parts] of collected) options.set(code, Buffer.from(Buffer.concat(parts)));

  return {
    op: op === OP_BOOTREQUEST ? 'request' : 'reply',
    xid: b.readUInt32BE(4),
    yourIp: bytesToIp(b.subarray(16, 20)),
    clientMac: Buffer.from(b.subarray(CHADDR_OFFSET, CHADDR_OFFSET + HLEN_ETHERNET)),
    messageType: MESSAGE_TYPES[typeValue[0] - 1],
    options,
  };
}

/** RFC 1071 16-bit ones' complement sum of the concatenated buffers (each even-length but the last). */
function onesComplementSum(...parts: Uint8Array[]): number {
  let sum = 0;
  for (const bytes of parts) {
    for (let i = 0; i < bytes.length; i += 2) {
      sum += (bytes[i] << 8) | (i + 1 < bytes.length ? bytes[i + 1] : 0);
    }
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** RFC 768 pseudo-header: source, destination, zero, protocol, UDP length. */
function udpPseudoHeader(source: Uint8Array, destination: Uint8Array, udpLength: number): Buffer {
  const pseudo = Buffer.alloc(12);
  pseudo.set(source, 0);
  pseudo.set(destination, 4);
  pseudo[9] = IP_PROTOCOL_UDP;
  pseudo.writeUInt16BE(udpLength, 10);
  return pseudo;
}

export interface DecodeDhcpFrameOptions {
  /**
   * The kernel reported the frame's checksum as not yet computed (TP_STATUS_CSUMNOTREADY,
   * see PacketSocket.receiveWithStatus): a sender on this host left the UDP checksum to
   * offload, so the field holds only the pseudo-header sum. The UDP checksum is then not
   * checked; the IPv4 header checksum still is.
   */
  checksumPending?: boolean;
}

/**
 * Parses an Ethernet/IPv4/UDP frame to port 68 carrying DHCP; null for anything else,
 * including a bad IPv4 header checksum, a bad UDP checksum (0, "none", is accepted; not
 * checked at all with `checksumPending`), fragments, and lengths that disagree with the
 * frame. Trailing Ethernet padding is ignored.
 * No VLAN tags: the frame must be as the kernel hands it to an ETH_P_IP packet socket.
 */
export function decodeDhcpFrame(frame: Buffer, options: DecodeDhcpFrameOptions = {}): DecodedDhcpFrame | null {
  if (frame.length < ETHERNET_HEADER_LENGTH + IPV4_HEADER_LENGTH + UDP_HEADER_LENGTH) return null;
  if (frame.readUInt16BE(12) !== ETHERTYPE_IPV4) return null;
  const ip = frame.subarray(ETHERNET_HEADER_LENGTH);
  if (ip[0] >> 4 !== 4) return null;
  const headerLength = (ip[0] & 0x0f) * 4;
  if (headerLength < IPV4_HEADER_LENGTH) return null;
  const totalLength = ip.readUInt16BE(2);
  if (totalLength < headerLength + UDP_HEADER_LENGTH || totalLength > ip.length) return null;
  if (onesComplementSum(ip.subarray(0, headerLength)) !== 0xffff) return null;
  const fragment = ip.readUInt16BE(6);
  if ((fragment & IPV4_MORE_FRAGMENTS) !== 0 || (fragment & IPV4_FRAGMENT_OFFSET_MASK) !== 0) return null;
  if (ip[9] !== IP_PROTOCOL_UDP) return null;

  const source = ip.subarray(12, 16);
  const destination = ip.subarray(16, 20);
  const udp = ip.subarray(headerLength, totalLength);
  if (udp.readUInt16BE(2) !== DHCP_CLIENT_PORT) return null;
  const udpLength = udp.readUInt16BE(4);
  if (udpLength < UDP_HEADER_LENGTH || udpLength > udp.length) return null;
  const datagram = udp.subarray(0, udpLength);
  if (options.checksumPending !== true && datagram.readUInt16BE(6) !== 0) {
    // RFC 768: summing everything, the transmitted checksum included, gives all ones.
    if (onesComplementSum(udpPseudoHeader(source, destination, udpLength), datagram) !== 0xffff) return null;
  }

  const message = decodeDhcpMessage(datagram.subarray(UDP_HEADER_LENGTH));
  if (message === null) return null;
  return { sourceMac: Buffer.from(frame.subarray(6, 12)), sourceIp: bytesToIp(source), message };
}

export interface InitRebootParameters {
  mac: Buffer;
  requestedIp: string;
  xid: number;
}

/**
 * The RFC 2131 §4.3.2 INIT-REBOOT DHCPREQUEST (fields per §4.4.1 table 5): ciaddr 0,
 * 'requested IP address' filled in, NO 'server identifier', broadcast flag set because the
 * client has no address yet; client identifier type 1 + MAC (RFC 2132 §9.14). Options in
 * the order 53, 50, 61, 55, end, zero-padded to the 300-byte BOOTP minimum.
 */
function initRebootPayload(p: InitRebootParameters): Buffer {
  const fixed = Buffer.alloc(OPTIONS_OFFSET); // ciaddr, yiaddr, siaddr, giaddr, sname, file: zero
  fixed[0] = OP_BOOTREQUEST;
  fixed[1] = HTYPE_ETHERNET;
  fixed[2] = HLEN_ETHERNET;
  fixed.writeUInt32BE(p.xid, 4);
  fixed.writeUInt16BE(FLAG_BROADCAST, 10);
  p.mac.copy(fixed, CHADDR_OFFSET);
  MAGIC_COOKIE.copy(fixed, FIXED_LENGTH);
  const option = (code: number, value: Uint8Array): Buffer => Buffer.concat([Buffer.from([code, value.length]), value]);
  const body = Buffer.concat([
    fixed,
    option(DHCP_OPTION.messageType, Buffer.from([TYPE_REQUEST])),
    option(DHCP_OPTION.requestedIp, ipToBytes(p.requestedIp)),
    option(DHCP_OPTION.clientId, Buffer.concat([Buffer.from([HTYPE_ETHERNET]), p.mac])),
    option(DHCP_OPTION.parameterRequestList, Buffer.from(INIT_REBOOT_PARAMETERS)),
    Buffer.from([OPTION_END]),
  ]);
  return Buffer.concat([body, Buffer.alloc(Math.max(0, BOOTP_MINIMUM - body.length))]);
}

/**
 * The INIT-REBOOT request as a frame: Ethernet broadcast from `mac`, IPv4 (RFC 791: TTL 64,
 * DF clear, header checksum) 0.0.0.0 -> 255.255.255.255, UDP (RFC 768 checksum) 68 -> 67.
 * Throws on a MAC that is not 6 bytes, a requested IP that is not IPv4, or an xid outside 32 bits.
 */
export function initRebootRequest(p: InitRebootParameters): Buffer {
  if (!Buffer.isBuffer(p.mac) || p.mac.length !== 6) throw new Error('mac must be 6 bytes');
  if (!net.isIPv4(p.requestedIp)) throw new Error(`requestedIp must be an IPv4 address, got ${JSON.stringify(p.requestedIp)}`);
  if (!Number.isInteger(p.xid) || p.xid < 0 || p.xid > 0xffffffff) throw new Error(`xid must be an integer 0..${0xffffffff}, got ${p.xid}`);
  const payload = initRebootPayload(p);

  const udp = Buffer.alloc(UDP_HEADER_LENGTH);
  const udpLength = UDP_HEADER_LENGTH + payload.length;
  udp.writeUInt16BE(DHCP_CLIENT_PORT, 0);
  udp.writeUInt16BE(DHCP_SERVER_PORT, 2);
  udp.writeUInt16BE(udpLength, 4);
  const udpChecksum = ~onesComplementSum(udpPseudoHeader(ZERO_IP, BROADCAST_IP, udpLength), udp, payload) & 0xffff;
  // RFC 768: a computed zero is sent as all ones; zero on the wire means "no checksum".
  udp.writeUInt16BE(udpChecksum === 0 ? 0xffff : udpChecksum, 6);

  const ip = Buffer.alloc(IPV4_HEADER_LENGTH); // identification, flags, fragment offset: 0
  ip[0] = 0x45; // version 4, IHL 5 words
  ip.writeUInt16BE(IPV4_HEADER_LENGTH + udpLength, 2);
  ip[8] = IPV4_TTL;
  ip[9] = IP_PROTOCOL_UDP;
  ZERO_IP.copy(ip, 12);
  BROADCAST_IP.copy(ip, 16);
  ip.writeUInt16BE(~onesComplementSum(ip) & 0xffff, 10); // RFC 791 §3.1 header checksum

  const ethernet = Buffer.alloc(ETHERNET_HEADER_LENGTH);
  BROADCAST_MAC.copy(ethernet, 0);
  p.mac.copy(ethernet, 6);
  ethernet.writeUInt16BE(ETHERTYPE_IPV4, 12);
  return Buffer.concat([ethernet, ip, udp, payload]);
}
