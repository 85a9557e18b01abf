import net from 'node:net';
import { bytesToIp, ipToBytes } from './ip';

/**
 * DHCPv4 (RFC 2131) messages and their Ethernet/IPv4/UDP framing. Pure: bytes in, bytes out.
 *
 * Scope, on purpose: Ethernet hardware addresses only (htype 1, hlen 6); the 'sname' and
 * 'file' fields are written as zeros and read only when option overload (52) says they
 * carry options; repeated options are concatenated (RFC 3396 §5) and long values split
 * (RFC 3396 §7).
 */

export type DhcpMessageType = 'discover' | 'offer' | 'request' | 'decline' | 'ack' | 'nak' | 'release' | 'inform';

export interface DhcpMessage {
  op: 'request' | 'reply';
  xid: number;
  secs: number;
  broadcast: boolean;
  clientIp: string; // ciaddr
  yourIp: string; // yiaddr
  serverIp: string; // siaddr
  relayIp: string; // giaddr
  clientMac: Buffer; // first 6 bytes of chaddr
  messageType: DhcpMessageType; // option 53, kept out of `options`
  /** Option code -> value. Never holds pad (0), end (255), overload (52) or message type (53). */
  options: Map<number, Buffer>;
}

/** Option codes vipd uses (RFC 2132 section numbers alongside). */
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

/** Typed view of the options above; a field is absent when the option is absent or malformed. */
export interface DhcpOptionValues {
  subnetMask?: string;
  routers?: string[];
  requestedIp?: string;
  /** Seconds; 0xffffffff means infinite (RFC 2131 §3.3). */
  leaseSeconds?: number;
  serverId?: string;
  parameterRequestList?: number[];
  message?: string;
  renewalSeconds?: number;
  rebindingSeconds?: number;
  clientId?: Buffer;
}

export interface DhcpFrame {
  sourceMac: Buffer;
  destinationMac: Buffer;
  sourceIp: string;
  destinationIp: string;
  sourcePort: number;
  destinationPort: number;
  message: DhcpMessage;
  /** IPv4 identification field; 0 unless given. */
  identification?: number;
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
const MAX_OPTION_LENGTH = 255;

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

const ETHERNET_HEADER_LENGTH = 14;
const IPV4_HEADER_LENGTH = 20;
const UDP_HEADER_LENGTH = 8;
const IP_PROTOCOL_UDP = 17;
const IPV4_TTL = 64;
const IPV4_MORE_FRAGMENTS = 0x2000;
const IPV4_FRAGMENT_OFFSET_MASK = 0x1fff;

const BROADCAST_MAC = Buffer.from('ffffffffffff', 'hex');
const ZERO_IP = '0.0.0.0';
const BROADCAST_IP = '255.255.255.255';

/** Options an INIT-REBOOT client asks for: mask, router, lease, server id, T1, T2. */
export const INIT_REBOOT_PARAMETERS: readonly number[] = [
  DHCP_OPTION.subnetMask,
  DHCP_OPTION.router,
  DHCP_OPTION.leaseTime,
  DHCP_OPTION.serverId,
  DHCP_OPTION.renewalTime,
  DHCP_OPTION.rebindingTime,
];

function checkMac(name: string, mac: Buffer): void {
  if (!Buffer.isBuffer(mac) || mac.length !== 6) throw new Error(`${name} must be 6 bytes`);
}

function ipv4Bytes(name: string, ip: string): Buffer {
  if (!net.isIPv4(ip)) throw new Error(`${name} must be an IPv4 address, got ${JSON.stringify(ip)}`);
  return ipToBytes(ip);
}

function checkUint(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new Error(`${name} must be an integer 0..${max}, got ${value}`);
}

function uint32Bytes(name: string, value: number): Buffer {
  checkUint(name, value, 0xffffffff);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
}

/** RFC 2132 §9.14: client identifier type 1 (Ethernet, RFC 1700) followed by the MAC. */
export function clientIdForMac(mac: Buffer): Buffer {
  checkMac('mac', mac);
  return Buffer.concat([Buffer.from([HTYPE_ETHERNET]), mac]);
}

/** Builds option values in a fixed order from the typed view. */
export function encodeDhcpOptions(values: DhcpOptionValues): Map<number, Buffer> {
  const options = new Map<number, Buffer>();
  if (values.requestedIp !== undefined) options.set(DHCP_OPTION.requestedIp, ipv4Bytes('requestedIp', values.requestedIp));
  if (values.serverId !== undefined) options.set(DHCP_OPTION.serverId, ipv4Bytes('serverId', values.serverId));
  if (values.leaseSeconds !== undefined) options.set(DHCP_OPTION.leaseTime, uint32Bytes('leaseSeconds', values.leaseSeconds));
  if (values.renewalSeconds !== undefined) options.set(DHCP_OPTION.renewalTime, uint32Bytes('renewalSeconds', values.renewalSeconds));
  if (values.rebindingSeconds !== undefined) {
    options.set(DHCP_OPTION.rebindingTime, uint32Bytes('rebindingSeconds', values.rebindingSeconds));
  }
  if (values.subnetMask !== undefined) options.set(DHCP_OPTION.subnetMask, ipv4Bytes('subnetMask', values.subnetMask));
  if (values.routers !== undefined) {
    // §3.5: minimum length 4, a list of addresses in order of preference.
    if (values.routers.length === 0) throw new Error('routers must not be empty');
    options.set(DHCP_OPTION.router, Buffer.concat(values.routers.map((r) => ipv4Bytes('router', r))));
  }
  if (values.clientId !== undefined) {
    // §9.14: minimum length 2 (type plus at least one byte).
    if (values.clientId.length < 2) throw new Error('clientId must be at least 2 bytes');
    options.set(DHCP_OPTION.clientId, Buffer.from(values.clientId));
  }
  if (values.parameterRequestList !== undefined) {
    if (values.parameterRequestList.length === 0) throw new Error('parameterRequestList must not be empty');
    values.parameterRequestList.forEach((code) => checkUint('parameter code', code, 254));
    options.set(DHCP_OPTION.parameterRequestList, Buffer.from(values.parameterRequestList));
  }
  if (values.message !== undefined) {
    // §9.9: NVT ASCII, minimum length 1.
    if (values.message.length === 0 || !/^[\x00-\x7f]*$/.test(values.message)) {
      throw new Error('message must be non-empty ASCII');
    }
    options.set(DHCP_OPTION.message, Buffer.from(values.message, 'ascii'));
  }
  return options;
}

/** Reads the typed view; options with the wrong length for their RFC 2132 format are left out. */
export function decodeDhcpOptions(options: Map<number, Buffer>): DhcpOptionValues {
  const out: DhcpOptionValues = {};
  const ip = (code: number): string | undefined => {
    const v = options.get(code);
    return v !== undefined && v.length === 4 ? bytesToIp(v) : undefined;
  };
  const uint32 = (code: number): number | undefined => {
    const v = options.get(code);
    return v !== undefined && v.length === 4 ? v.readUInt32BE(0) : undefined;
  };
  const set = <K extends keyof DhcpOptionValues>(key: K, value: DhcpOptionValues[K] | undefined): void => {
    if (value !== undefined) out[key] = value;
  };
  set('subnetMask', ip(DHCP_OPTION.subnetMask));
  set('requestedIp', ip(DHCP_OPTION.requestedIp));
  set('serverId', ip(DHCP_OPTION.serverId));
  set('leaseSeconds', uint32(DHCP_OPTION.leaseTime));
  set('renewalSeconds', uint32(DHCP_OPTION.renewalTime));
  set('rebindingSeconds', uint32(DHCP_OPTION.rebindingTime));
  const routers = options.get(DHCP_OPTION.router);
  if (routers !== undefined && routers.length >= 4 && routers.length % 4 === 0) {
    out.routers = [];
    for (let i = 0; i < routers.length; i += 4) out.routers.push(bytesToIp(routers.subarray(i, i + 4)));
  }
  const prl = options.get(DHCP_OPTION.parameterRequestList);
  if (prl !== undefined && prl.length >= 1) out.parameterRequestList = Array.from(prl);
  const message = options.get(DHCP_OPTION.message);
  // Some servers NUL-terminate the text; drop trailing NULs.
  if (message !== undefined && message.length >= 1) out.message = message.toString('latin1').replace(/\0+$/, '');
  const clientId = options.get(DHCP_OPTION.clientId);
  if (clientId !== undefined && clientId.length >= 2) out.clientId = Buffer.from(clientId);
  return out;
}

/**
 * RFC 2131 §2 fixed part, magic cookie, option 53 first, then `options` in map order,
 * end option, zero padding up to the 300-byte BOOTP minimum.
 */
export function encodeDhcpMessage(m: DhcpMessage): Buffer {
  checkUint('xid', m.xid, 0xffffffff);
  checkUint('secs', m.secs, 0xffff);
  checkMac('clientMac', m.clientMac);
  const typeIndex = MESSAGE_TYPES.indexOf(m.messageType);
  if (typeIndex < 0) throw new Error(`unknown DHCP message type ${JSON.stringify(m.messageType)}`);

  const fixed = Buffer.alloc(OPTIONS_OFFSET);
  fixed[0] = m.op === 'request' ? OP_BOOTREQUEST : OP_BOOTREPLY;
  fixed[1] = HTYPE_ETHERNET;
  fixed[2] = HLEN_ETHERNET;
  fixed[3] = 0; // hops: set by relays only
  fixed.writeUInt32BE(m.xid, 4);
  fixed.writeUInt16BE(m.secs, 8);
  fixed.writeUInt16BE(m.broadcast ? FLAG_BROADCAST : 0, 10); // other flag bits MUST be zero
  ipv4Bytes('clientIp', m.clientIp).copy(fixed, 12);
  ipv4Bytes('yourIp', m.yourIp).copy(fixed, 16);
  ipv4Bytes('serverIp', m.serverIp).copy(fixed, 20);
  ipv4Bytes('relayIp', m.relayIp).copy(fixed, 24);
  m.clientMac.copy(fixed, CHADDR_OFFSET); // rest of chaddr, sname and file stay zero
  MAGIC_COOKIE.copy(fixed, FIXED_LENGTH);

  const parts: Buffer[] = [fixed, Buffer.from([DHCP_OPTION.messageType, 1, typeIndex + 1])];
  for (const [code, value] of m.options) {
    checkUint('option code', code, 255);
    if (code === OPTION_PAD || code === OPTION_END || code === DHCP_OPTION.messageType || code === DHCP_OPTION.overload) {
      throw new Error(`option ${code} cannot be set through options`);
    }
    // RFC 3396 §7: a value longer than 255 bytes goes out as consecutive instances.
    let offset = 0;
    do {
      const chunk = value.subarray(offset, offset + MAX_OPTION_LENGTH);
      parts.push(Buffer.from([code, chunk.length]), chunk);
      offset += chunk.length;
    } while (offset < value.length);
  }
  parts.push(Buffer.from([OPTION_END]));
  const body = Buffer.concat(parts);
  return body.length >= BOOTP_MINIMUM ? body : Buffer.concat([body, Buffer.alloc(BOOTP_MINIMUM - body.length)]);
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
    secs: b.readUInt16BE(8),
    broadcast: (b.readUInt16BE(10) & FLAG_BROADCAST) !== 0,
    clientIp: bytesToIp(b.subarray(12, 16)),
    yourIp: bytesToIp(b.subarray(16, 20)),
    serverIp: bytesToIp(b.subarray(20, 24)),
    relayIp: bytesToIp(b.subarray(24, 28)),
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

/** Ethernet + IPv4 (RFC 791: TTL 64, DF clear, header checksum) + UDP (RFC 768 checksum) + DHCP. */
export function encodeDhcpFrame(f: DhcpFrame): Buffer {
  checkMac('destinationMac', f.destinationMac);
  checkMac('sourceMac', f.sourceMac);
  const source = ipv4Bytes('sourceIp', f.sourceIp);
  const destination = ipv4Bytes('destinationIp', f.destinationIp);
  checkUint('sourcePort', f.sourcePort, 0xffff);
  checkUint('destinationPort', f.destinationPort, 0xffff);
  const identification = f.identification ?? 0;
  checkUint('identification', identification, 0xffff);
  const payload = encodeDhcpMessage(f.message);

  const udp = Buffer.alloc(UDP_HEADER_LENGTH);
  const udpLength = UDP_HEADER_LENGTH + payload.length;
  udp.writeUInt16BE(f.sourcePort, 0);
  udp.writeUInt16BE(f.destinationPort, 2);
  udp.writeUInt16BE(udpLength, 4);
  const udpChecksum = ~onesComplementSum(udpPseudoHeader(source, destination, udpLength), udp, payload) & 0xffff;
  // RFC 768: a computed zero is sent as all ones; zero on the wire means "no checksum".
  udp.writeUInt16BE(udpChecksum === 0 ? 0xffff : udpChecksum, 6);

  const ip = Buffer.alloc(IPV4_HEADER_LENGTH);
  ip[0] = 0x45; // version 4, IHL 5 words
  ip[1] = 0; // type of service
  ip.writeUInt16BE(IPV4_HEADER_LENGTH + udpLength, 2);
  ip.writeUInt16BE(identification, 4);
  ip.writeUInt16BE(0, 6); // flags (DF, MF clear) and fragment offset 0
  ip[8] = IPV4_TTL;
  ip[9] = IP_PROTOCOL_UDP;
  source.copy(ip, 12);
  destination.copy(ip, 16);
  ip.writeUInt16BE(~onesComplementSum(ip) & 0xffff, 10); // RFC 791 §3.1 header checksum

  const ethernet = Buffer.alloc(ETHERNET_HEADER_LENGTH);
  f.destinationMac.copy(ethernet, 0);
  f.sourceMac.copy(ethernet, 6);
  ethernet.writeUInt16BE(ETHERTYPE_IPV4, 12);
  return Buffer.concat([ethernet, ip, udp, payload]);
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
  /** Defaults to clientIdForMac(mac). */
  clientId?: Buffer;
}

/**
 * RFC 2131 §4.3.2 INIT-REBOOT DHCPREQUEST (fields per §4.4.1 table 5): ciaddr 0,
 * 'requested IP address' filled in, NO 'server identifier', broadcast flag set because
 * the client has no address configured yet.
 */
export function initRebootMessage(p: InitRebootParameters): DhcpMessage {
  checkMac('mac', p.mac);
  return {
    op: 'request',
    xid: p.xid,
    secs: 0,
    broadcast: true,
    clientIp: ZERO_IP,
    yourIp: ZERO_IP,
    serverIp: ZERO_IP,
    relayIp: ZERO_IP,
    clientMac: p.mac,
    messageType: 'request',
    options: encodeDhcpOptions({
      requestedIp: p.requestedIp,
      clientId: p.clientId ?? clientIdForMac(p.mac),
      parameterRequestList: [...INIT_REBOOT_PARAMETERS],
    }),
  };
}

/** The INIT-REBOOT request as a frame: 0.0.0.0:68 -> 255.255.255.255:67, Ethernet broadcast. */
export function initRebootRequest(p: InitRebootParameters): Buffer {
  return encodeDhcpFrame({
    sourceMac: p.mac,
    destinationMac: BROADCAST_MAC,
    sourceIp: ZERO_IP,
    destinationIp: BROADCAST_IP,
    sourcePort: DHCP_CLIENT_PORT,
    destinationPort: DHCP_SERVER_PORT,
    message: initRebootMessage(p),
  });
}

export interface ReleaseParameters {
  mac: Buffer;
  /** The leased address being given up (ciaddr). */
  clientIp: string;
  /** The server identifier from the lease's DHCPACK. */
  serverId: string;
  xid: number;
  /** Defaults to clientIdForMac(mac). */
  clientId?: Buffer;
  message?: string;
}

/**
 * RFC 2131 §4.4.6 DHCPRELEASE (fields per §4.4.1 table 5): ciaddr = the leased address,
 * 'server identifier' required, no requested IP or parameter list, broadcast flag clear.
 * It is unicast to the server (§4.4.4), so framing is left to the caller: encodeDhcpFrame
 * from clientIp:68 to serverId:67 with the server's MAC.
 */
export function releaseMessage(p: ReleaseParameters): DhcpMessage {
  checkMac('mac', p.mac);
  const values: DhcpOptionValues = { serverId: p.serverId, clientId: p.clientId ?? clientIdForMac(p.mac) };
  if (p.message !== undefined) values.message = p.message;
  return {
    op: 'request',
    xid: p.xid,
    secs: 0,
    broadcast: false,
    clientIp: p.clientIp,
    yourIp: ZERO_IP,
    serverIp: ZERO_IP,
    relayIp: ZERO_IP,
    clientMac: p.mac,
    messageType: 'release',
    options: encodeDhcpOptions(values),
  };
}
