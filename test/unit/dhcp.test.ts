import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DHCP_OPTION,
  decodeDhcpFrame,
  decodeDhcpMessage,
  decodeDhcpOptions,
  initRebootRequest,
} from '../../src/holding/codecs/dhcp';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const zeros = (n: number): string => '00'.repeat(n);

const CLIENT_MAC = hex('020000aabbcc');
const SERVER_MAC = hex('020000000001');
const XID = 0x12345678;

// RFC 2131 §2 fixed part after op: htype 1, hlen 6, hops 0, then xid.
// chaddr is 16 bytes (6 of MAC + 10 zero), sname 64, file 128: 28 + 16 + 64 + 128 = 236.
const CHADDR = `020000aabbcc ${zeros(10)}`;
const SNAME_FILE = zeros(64 + 128);
const COOKIE = '63825363';

// INIT-REBOOT DHCPREQUEST, by hand from RFC 2131 §2/§4.3.2 and RFC 2132:
//   options: 53 len 1 = 3 (request); 50 len 4 = 192.0.2.60; 61 len 7 = type 1 + MAC;
//   55 len 6 = 1,3,51,54,58,59 (0x01 0x03 0x33 0x36 0x3a 0x3b); 255.
//   240 + 3 + 6 + 9 + 8 + 1 = 267 bytes, zero-padded to the 300-byte BOOTP minimum.
const INIT_REBOOT_DHCP = `
  01 01 06 00  12345678  0000 8000
  00000000 00000000 00000000 00000000
  ${CHADDR} ${SNAME_FILE} ${COOKIE}
  35 01 03
  32 04 c000023c
  3d 07 01 020000aabbcc
  37 06 01 03 33 36 3a 3b
  ff ${zeros(33)}`;

// IPv4 header checksum by hand (RFC 791 §3.1, RFC 1071): words
// 4500 + 0148 + 0000 + 0000 + 4011 + 0000 + 0000 + 0000 + ffff + ffff = 0x28657;
// folded 0x8657 + 0x2 = 0x8659; complement 0x79a6.
const INIT_REBOOT_IP_CHECKSUM = 0x79a6;
// UDP checksum (RFC 768) over pseudo-header 0.0.0.0, 255.255.255.255, 0x0011, 0x0134 and the
// 308-byte datagram; summed outside this code base (a one-off script over the hex above).
const INIT_REBOOT_UDP_CHECKSUM = 0xb4cf;

// Ethernet broadcast | source MAC | 0800; IPv4 length 20+8+300 = 328 (0x0148), id 0, DF clear,
// TTL 64 (0x40), UDP (0x11), 0.0.0.0 -> 255.255.255.255; UDP 68 -> 67, length 308 (0x0134).
const INIT_REBOOT_FRAME = hex(`
  ffffffffffff 020000aabbcc 0800
  45 00 0148 0000 0000 40 11 79a6 00000000 ffffffff
  0044 0043 0134 b4cf
  ${INIT_REBOOT_DHCP}`);

// DHCPACK a server might send, by hand: op 2, broadcast flag, yiaddr 192.0.2.60; options
// 53=5 (ack), 54=192.0.2.1, 51=120 s, a pad byte, 58=60 s, 59=105 s, 1=255.255.255.0,
// 3=192.0.2.1, 255, and no padding: 240 + 41 = 281 bytes (odd, so the UDP sum pads a zero).
const ACK_DHCP = `
  02 01 06 00  12345678  0000 8000
  00000000 c000023c 00000000 00000000
  ${CHADDR} ${SNAME_FILE} ${COOKIE}
  35 01 05
  36 04 c0000201
  33 04 00000078
  00
  3a 04 0000003c
  3b 04 00000069
  01 04 ffffff00
  03 04 c0000201
  ff`;
// IPv4 total 20+8+281 = 309 (0x0135), id 0xabcd; header words
// 4500 + 0135 + abcd + 0000 + 4011 + 0000 + c000 + 0201 + ffff + ffff = 0x3f412;
// folded 0xf412 + 0x3 = 0xf415; complement 0x0bea.
const ACK_IP_CHECKSUM = 0x0bea;
const ACK_UDP_CHECKSUM = 0x1cf7; // pseudo-header 192.0.2.1, 255.255.255.255, 0x0011, 0x0121
const ACK_FRAME = hex(`
  ffffffffffff 020000000001 0800
  45 00 0135 abcd 0000 40 11 0bea c0000201 ffffffff
  0043 0044 0121 1cf7
  ${ACK_DHCP}`);

/** Independent RFC 1071 sum: end-around carry folded on every addition, odd tail padded. */
function referenceChecksum(data: Buffer): number {
  const even = data.length % 2 === 0 ? data : Buffer.concat([data, Buffer.alloc(1)]);
  let sum = 0;
  for (let i = 0; i < even.length; i += 2) {
    sum += even.readUInt16BE(i);
    if (sum > 0xffff) sum -= 0xffff;
  }
  return 0xffff - sum;
}

/** Recomputes both checksums of an Ethernet/IPv4(IHL 5)/UDP frame with the fields zeroed. */
function referenceChecksums(frame: Buffer): { ip: number; udp: number } {
  const ip = Buffer.from(frame.subarray(14, 34));
  ip.writeUInt16BE(0, 10);
  const udp = Buffer.from(frame.subarray(34, 14 + frame.readUInt16BE(16)));
  udp.writeUInt16BE(0, 6);
  const pseudo = Buffer.concat([ip.subarray(12, 20), hex('0011'), udp.subarray(4, 6)]);
  return { ip: referenceChecksum(ip), udp: referenceChecksum(Buffer.concat([pseudo, udp])) };
}

function withByte(b: Buffer, offset: number, value: number): Buffer {
  const copy = Buffer.from(b);
  copy[offset] = value;
  return copy;
}

describe('dhcp codec: INIT-REBOOT request', () => {
  test('the frame is byte-exact', () => {
    const frame = initRebootRequest({ mac: CLIENT_MAC, requestedIp: '192.0.2.60', xid: XID });
    assert.equal(frame.toString('hex'), INIT_REBOOT_FRAME.toString('hex'));
    assert.equal(frame.length, 14 + 20 + 8 + 300);
  });

  test('checksums match independently computed values', () => {
    assert.deepEqual(referenceChecksums(INIT_REBOOT_FRAME), { ip: INIT_REBOOT_IP_CHECKSUM, udp: INIT_REBOOT_UDP_CHECKSUM });
    const frame = initRebootRequest({ mac: CLIENT_MAC, requestedIp: '192.0.2.60', xid: XID });
    assert.equal(frame.readUInt16BE(14 + 10), INIT_REBOOT_IP_CHECKSUM);
    assert.equal(frame.readUInt16BE(34 + 6), INIT_REBOOT_UDP_CHECKSUM);
  });

  test('message fields follow RFC 2131 §4.3.2', () => {
    const payload = initRebootRequest({ mac: CLIENT_MAC, requestedIp: '192.0.2.60', xid: XID }).subarray(42);
    assert.equal(payload.readUInt32BE(12), 0, 'ciaddr 0');
    assert.equal(payload.readUInt16BE(10), 0x8000, 'broadcast flag, no other flag bits');
    const m = decodeDhcpMessage(payload);
    assert.ok(m);
    assert.equal(m.op, 'request');
    assert.equal(m.messageType, 'request');
    assert.equal(m.xid, XID);
    assert.deepEqual(m.clientMac, CLIENT_MAC);
    assert.equal(m.options.has(DHCP_OPTION.serverId), false);
    assert.deepEqual([...m.options.keys()], [DHCP_OPTION.requestedIp, DHCP_OPTION.clientId, DHCP_OPTION.parameterRequestList]);
    assert.deepEqual(m.options.get(DHCP_OPTION.requestedIp), hex('c000023c'));
    assert.deepEqual(m.options.get(DHCP_OPTION.clientId), hex('01020000aabbcc'));
    assert.deepEqual([...(m.options.get(DHCP_OPTION.parameterRequestList) ?? [])], [1, 3, 51, 54, 58, 59]);
  });

  test('the request is not a frame to the client port', () => {
    assert.equal(decodeDhcpFrame(INIT_REBOOT_FRAME), null); // UDP destination 67, not 68
  });

  test('bad arguments are refused before any bytes are built', () => {
    const ok = { mac: CLIENT_MAC, requestedIp: '192.0.2.60', xid: XID };
    assert.throws(() => initRebootRequest({ ...ok, mac: hex('0200') }), /mac/);
    assert.throws(() => initRebootRequest({ ...ok, requestedIp: '2001:db8::1' }), /requestedIp/);
    assert.throws(() => initRebootRequest({ ...ok, requestedIp: '192.0.2' }), /requestedIp/);
    assert.throws(() => initRebootRequest({ ...ok, xid: 2 ** 32 }), /xid/);
    assert.throws(() => initRebootRequest({ ...ok, xid: -1 }), /xid/);
  });
});

describe('dhcp codec: hand-built DHCPACK', () => {
  test('checksums in the hand-built frame are right', () => {
    assert.deepEqual(referenceChecksums(ACK_FRAME), { ip: ACK_IP_CHECKSUM, udp: ACK_UDP_CHECKSUM });
  });

  test('decodes', () => {
    const decoded = decodeDhcpFrame(ACK_FRAME);
    assert.ok(decoded);
    assert.deepEqual(decoded.sourceMac, SERVER_MAC);
    assert.equal(decoded.sourceIp, '192.0.2.1');
    const m = decoded.message;
    assert.equal(m.op, 'reply');
    assert.equal(m.messageType, 'ack');
    assert.equal(m.xid, XID);
    assert.equal(m.yourIp, '192.0.2.60');
    assert.deepEqual(m.clientMac, CLIENT_MAC);
    assert.deepEqual([...m.options.keys()], [54, 51, 58, 59, 1, 3]); // no 53, no pad
    // T1, T2 and the router are requested (RFC 2131 §4.3.2 answers them) but not read.
    assert.deepEqual(decodeDhcpOptions(m.options), {
      subnetMask: '255.255.255.0',
      serverId: '192.0.2.1',
      leaseSeconds: 120,
    });
  });

  test('UDP checksum 0 (none) is accepted', () => {
    const noChecksum = Buffer.from(ACK_FRAME);
    noChecksum.writeUInt16BE(0, 40);
    assert.ok(decodeDhcpFrame(noChecksum));
  });

  test('trailing Ethernet bytes beyond the IPv4 total length are ignored', () => {
    assert.ok(decodeDhcpFrame(Buffer.concat([ACK_FRAME, Buffer.alloc(7, 0xee)])));
  });
});

// What a packet socket sees from a server on the same host (veth, bridge, macvlan): the kernel
// left the UDP checksum to offload (CHECKSUM_PARTIAL), so the field holds only the folded
// pseudo-header sum, not complemented: c000 + 0201 + ffff + ffff + 0011 + 0121 = 0x2c331,
// folded 0xc331 + 0x2 = 0xc333.
const ACK_PARTIAL_UDP_CHECKSUM = 0xc333;
const ACK_FRAME_PARTIAL = Buffer.from(ACK_FRAME);
ACK_FRAME_PARTIAL.writeUInt16BE(ACK_PARTIAL_UDP_CHECKSUM, 40);

describe('dhcp codec: checksum left to offload (checksumPending)', () => {
  test('the partial checksum fails verification', () => {
    assert.equal(decodeDhcpFrame(ACK_FRAME_PARTIAL), null);
    assert.equal(decodeDhcpFrame(ACK_FRAME_PARTIAL, {}), null);
    assert.equal(decodeDhcpFrame(ACK_FRAME_PARTIAL, { checksumPending: false }), null);
  });

  test('with checksumPending the UDP checksum is not checked', () => {
    const decoded = decodeDhcpFrame(ACK_FRAME_PARTIAL, { checksumPending: true });
    assert.deepEqual(decoded, decodeDhcpFrame(ACK_FRAME));
    assert.ok(decodeDhcpFrame(ACK_FRAME, { checksumPending: true }), 'a finished checksum is fine too');
  });

  test('with checksumPending the IPv4 header checksum is still checked', () => {
    assert.equal(decodeDhcpFrame(withByte(ACK_FRAME_PARTIAL, 25, 0xeb), { checksumPending: true }), null);
  });

  test('with checksumPending everything else is still checked', () => {
    const toServerPort = Buffer.from(ACK_FRAME_PARTIAL);
    toServerPort.writeUInt16BE(67, 36);
    assert.equal(decodeDhcpFrame(toServerPort, { checksumPending: true }), null);
    const longUdp = Buffer.from(ACK_FRAME_PARTIAL);
    longUdp.writeUInt16BE(0x0122, 38);
    assert.equal(decodeDhcpFrame(longUdp, { checksumPending: true }), null);
    assert.equal(decodeDhcpFrame(withByte(ACK_FRAME_PARTIAL, 42 + 236, 0x64), { checksumPending: true }), null); // cookie
  });
});

describe('dhcp codec: repeated options (RFC 3396 §5)', () => {
  test('instances of one option are concatenated in order', () => {
    // A DHCPNAK whose message (56) comes in two instances: "wrong " + "address".
    const m = decodeDhcpMessage(
      hex(`02010600 12345678 00000000 ${zeros(16)} ${CHADDR} ${SNAME_FILE} ${COOKIE}
        350106 3806 77726f6e6720 3604 c0000201 3807 61646472657373 ff`),
    );
    assert.ok(m);
    assert.equal(m.messageType, 'nak');
    assert.deepEqual(decodeDhcpOptions(m.options), { serverId: '192.0.2.1', message: 'wrong address' });
  });

  test('an empty option value is kept', () => {
    const m = decodeDhcpMessage(hex(`02010600 12345678 00000000 ${zeros(16)} ${CHADDR} ${SNAME_FILE} ${COOKIE} 350105 5000 ff`));
    assert.deepEqual(m?.options.get(80), Buffer.alloc(0)); // rapid commit (RFC 4039) is zero-length
  });
});

describe('dhcp codec: option overload (52)', () => {
  // options: 53=5, 52=3 (file and sname), 255; file: 51=120, 255; sname: 1=255.255.255.0, 255.
  const fixed = (sname: string, file: string): string => `
    02 01 06 00 12345678 0000 0000 ${zeros(16)} ${CHADDR}
    ${sname}${zeros(64 - sname.replace(/\s+/g, '').length / 2)}
    ${file}${zeros(128 - file.replace(/\s+/g, '').length / 2)}
    ${COOKIE}`;

  test('reads options from file, then sname', () => {
    const m = decodeDhcpMessage(hex(`${fixed('0104ffffff00 ff', '3304 00000078 ff')} 350105 340103 ff`));
    assert.ok(m);
    assert.deepEqual([...m.options.keys()], [51, 1]);
    assert.deepEqual(decodeDhcpOptions(m.options), { leaseSeconds: 120, subnetMask: '255.255.255.0' });
  });

  test('without option 52, sname and file are not read', () => {
    const m = decodeDhcpMessage(hex(`${fixed('0104ffffff00 ff', '3304 00000078 ff')} 350105 ff`));
    assert.ok(m);
    assert.equal(m.options.size, 0);
  });

  test('a malformed overloaded field rejects the message', () => {
    assert.equal(decodeDhcpMessage(hex(`${fixed('', zeros(126) + '3305')} 350105 340101 ff`)), null);
  });
});

describe('dhcp codec: typed options', () => {
  test('wrong-length values are left out', () => {
    const values = decodeDhcpOptions(
      new Map([
        [DHCP_OPTION.leaseTime, hex('0078')],
        [DHCP_OPTION.serverId, hex('c000020101')],
        [DHCP_OPTION.router, hex('c00002')],
        [DHCP_OPTION.clientId, hex('01')],
        [DHCP_OPTION.subnetMask, hex('ffffff00')],
      ]),
    );
    assert.deepEqual(values, { subnetMask: '255.255.255.0' });
  });

  test('trailing NULs in the message option are dropped', () => {
    assert.equal(decodeDhcpOptions(new Map([[DHCP_OPTION.message, hex('6e6f000000')]])).message, 'no');
  });
});

describe('dhcp codec: frame rejects', () => {
  test('wrong EtherType', () => {
    assert.equal(decodeDhcpFrame(withByte(ACK_FRAME, 12, 0x86)), null);
  });

  test('wrong UDP destination port', () => {
    // Port 67 instead of 68; the UDP checksum is patched by the same delta (68-67 = 1).
    const frame = Buffer.from(ACK_FRAME);
    frame.writeUInt16BE(67, 36);
    frame.writeUInt16BE(ACK_UDP_CHECKSUM + 1, 40);
    assert.deepEqual(referenceChecksums(frame).udp, ACK_UDP_CHECKSUM + 1);
    assert.equal(decodeDhcpFrame(frame), null);
  });

  test('not UDP', () => {
    const frame = withByte(ACK_FRAME, 23, 6); // TCP
    frame.writeUInt16BE(referenceChecksums(frame).ip, 24);
    assert.equal(decodeDhcpFrame(frame), null);
  });

  test('bad IPv4 header checksum', () => {
    assert.equal(decodeDhcpFrame(withByte(ACK_FRAME, 25, 0xeb)), null);
  });

  test('bad UDP checksum', () => {
    assert.equal(decodeDhcpFrame(withByte(ACK_FRAME, 41, 0xf8)), null);
    assert.equal(decodeDhcpFrame(withByte(ACK_FRAME, 42 + 4, 0x13)), null); // xid changed, checksum not
  });

  test('fragments', () => {
    const frame = Buffer.from(ACK_FRAME);
    frame.writeUInt16BE(0x2000, 20); // MF
    frame.writeUInt16BE(referenceChecksums(frame).ip, 24);
    assert.equal(decodeDhcpFrame(frame), null);
  });

  test('truncated frames', () => {
    for (const length of [0, 13, 14, 33, 41, 42, ACK_FRAME.length - 1]) {
      assert.equal(decodeDhcpFrame(ACK_FRAME.subarray(0, length)), null, `length ${length}`);
    }
  });

  test('UDP length larger than the IPv4 payload', () => {
    const frame = Buffer.from(ACK_FRAME);
    frame.writeUInt16BE(0x0122, 38);
    assert.equal(decodeDhcpFrame(frame), null);
  });
});

describe('dhcp codec: message rejects', () => {
  const ack = ACK_FRAME.subarray(42);

  test('truncated messages', () => {
    assert.equal(decodeDhcpMessage(ack.subarray(0, 239)), null); // cookie cut
    assert.equal(decodeDhcpMessage(ack.subarray(0, 240)), null); // no options, no end
    assert.equal(decodeDhcpMessage(ack.subarray(0, 246)), null); // server id cut mid-value
    assert.equal(decodeDhcpMessage(ack.subarray(0, ack.length - 1)), null); // end option cut
  });

  test('missing magic cookie', () => {
    assert.equal(decodeDhcpMessage(withByte(ack, 236, 0x64)), null);
  });

  test('plain BOOTP (no message type)', () => {
    assert.equal(decodeDhcpMessage(hex(`02010600 12345678 00000000 ${zeros(16)} ${CHADDR} ${SNAME_FILE} ${COOKIE} ff`)), null);
  });

  test('unknown message type, bad op, non-Ethernet hardware', () => {
    assert.equal(decodeDhcpMessage(withByte(ack, 242, 9)), null);
    assert.equal(decodeDhcpMessage(withByte(ack, 242, 0)), null);
    assert.equal(decodeDhcpMessage(withByte(ack, 0, 3)), null);
    assert.equal(decodeDhcpMessage(withByte(ack, 1, 6)), null); // IEEE 802 htype
    assert.equal(decodeDhcpMessage(withByte(ack, 2, 8)), null);
  });
});
