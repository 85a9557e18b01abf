import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatMac, parseMac } from '../../src/holding/codecs/mac';
import { bytesToIp, ipToBytes } from '../../src/holding/codecs/ip';
import {
  arpProbe,
  decodeArpFrame,
  encodeArpFrame,
  gratuitousArpReply,
  gratuitousArpRequest,
} from '../../src/holding/codecs/arp';
import { decodeNeighborAdvertisement, encodeUnsolicitedNeighborAdvertisement } from '../../src/holding/codecs/ndp';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

const MAC = hex('525400123456');
const VIP4 = '192.0.2.10'; // c0 00 02 0a
const VIP6 = '2001:db8::10';
const PAD_18 = '00'.repeat(18); // 14 + 28 = 42, padded to the 60-byte Ethernet minimum

// Hand-assembled from RFC 826: eth dst | eth src | 0806 | htype 1 | ptype 0800 | hlen 6 | plen 4 | op | sha | spa | tha | tpa
const GARP_REQUEST = hex(`ffffffffffff 525400123456 0806
  0001 0800 06 04 0001 525400123456 c000020a 000000000000 c000020a ${PAD_18}`);
const GARP_REPLY = hex(`ffffffffffff 525400123456 0806
  0001 0800 06 04 0002 525400123456 c000020a 525400123456 c000020a ${PAD_18}`);
const ARP_PROBE = hex(`ffffffffffff 525400123456 0806
  0001 0800 06 04 0001 525400123456 00000000 000000000000 c000020a ${PAD_18}`);

// Checksum by hand: words of src (2001+0db8+0010), dst (ff02+0001), length 0020, next header 003a,
// and the message (8800+2000+2001+0db8+0010+0201+5254+0012+3456) sum to 0x28bac;
// folded 0x8bac + 0x2 = 0x8bae; complement 0x7451.
const NA_CHECKSUM = 0x7451;
const UNSOLICITED_NA = hex(`333300000001 525400123456 86dd
  60000000 0020 3a ff
  20010db8000000000000000000000010
  ff020000000000000000000000000001
  88 00 7451 20000000
  20010db8000000000000000000000010
  02 01 525400123456`);

/** Independent RFC 1071 sum: end-around carry folded on every addition. */
function referenceIcmpv6Checksum(src: Buffer, dst: Buffer, message: Buffer): number {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(message.length);
  const data = Buffer.concat([src, dst, length, hex('0000003a'), message]);
  let sum = 0;
  for (let i = 0; i < data.length; i += 2) {
    sum += data.readUInt16BE(i);
    if (sum > 0xffff) sum -= 0xffff;
  }
  return 0xffff - sum;
}

describe('mac', () => {
  test('parses and formats', () => {
    assert.deepEqual(parseMac('52:54:00:12:34:56'), MAC);
    assert.deepEqual(parseMac('AA:bb:CC:dd:EE:ff'), hex('aabbccddeeff'));
    assert.equal(formatMac(hex('aabbccddeeff')), 'aa:bb:cc:dd:ee:ff');
    assert.equal(formatMac(new Uint8Array([0, 1, 2, 3, 4, 5])), '00:01:02:03:04:05');
  });

  test('rejects malformed text naming the value', () => {
    for (const bad of ['', '52:54:00:12:34', '52:54:00:12:34:56:78', '52-54-00-12-34-56', '5254.0012.3456', 'gg:54:00:12:34:56', '2:54:00:12:34:56', ' 52:54:00:12:34:56']) {
      assert.throws(() => parseMac(bad), (e: unknown) => e instanceof Error && e.message.includes(JSON.stringify(bad)));
    }
    assert.throws(() => formatMac(new Uint8Array(5)), /6 bytes/);
  });
});

describe('ip', () => {
  const cases: Array<[string, string, string]> = [
    ['::', '00000000000000000000000000000000', '::'],
    ['::1', '00000000000000000000000000000001', '::1'],
    ['1::', '00010000000000000000000000000000', '1::'],
    ['2001:db8::10', '20010db8000000000000000000000010', '2001:db8::10'],
    ['2001:DB8:0:0:1:0:0:1', '20010db8000000000001000000000001', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0001:0001:0001:0001:0001', '20010db8000000010001000100010001', '2001:db8:0:1:1:1:1:1'],
    ['2001:db8:0:0:1:0:0:0', '20010db8000000000001000000000000', '2001:db8:0:0:1::'],
    ['fe80::1:2', 'fe800000000000000000000000010002', 'fe80::1:2'],
    ['::ffff:192.0.2.1', '00000000000000000000ffffc0000201', '::ffff:192.0.2.1'],
    ['64:ff9b::192.0.2.33', '0064ff9b0000000000000000c0000221', '64:ff9b::c000:221'],
    ['192.0.2.1', 'c0000201', '192.0.2.1'],
    ['0.0.0.0', '00000000', '0.0.0.0'],
  ];
  for (const [text, bytes, canonical] of cases) {
    test(`${text} <-> ${canonical}`, () => {
      assert.equal(ipToBytes(text).toString('hex'), bytes);
      assert.equal(bytesToIp(hex(bytes)), canonical);
    });
  }

  test('rejects invalid input', () => {
    for (const bad of ['', '1.2.3', '256.0.0.1', '1:2:3:4:5:6:7:8:9', '1::2::3', 'fe80::1%eth0', 'vip']) {
      assert.throws(() => ipToBytes(bad), /invalid IP address/);
    }
    assert.throws(() => bytesToIp(new Uint8Array(5)), /4 or 16 bytes/);
  });
});

describe('arp', () => {
  test('gratuitous request is byte-exact', () => {
    assert.deepEqual(gratuitousArpRequest(MAC, VIP4), GARP_REQUEST);
  });

  test('gratuitous reply is byte-exact', () => {
    assert.deepEqual(gratuitousArpReply(MAC, VIP4), GARP_REPLY);
  });

  test('probe is byte-exact', () => {
    assert.deepEqual(arpProbe(MAC, VIP4), ARP_PROBE);
  });

  test('decodes hand-written frames', () => {
    assert.deepEqual(decodeArpFrame(GARP_REPLY), {
      destinationMac: hex('ffffffffffff'),
      sourceMac: MAC,
      operation: 'reply',
      senderMac: MAC,
      senderIp: VIP4,
      targetMac: MAC,
      targetIp: VIP4,
    });
    const probe = decodeArpFrame(ARP_PROBE);
    assert.equal(probe?.senderIp, '0.0.0.0');
    assert.equal(probe?.operation, 'request');
  });

  test('round-trips, including unpadded 42-byte frames', () => {
    const frame = {
      destinationMac: hex('0200000000aa'),
      sourceMac: hex('0200000000bb'),
      operation: 'request' as const,
      senderMac: hex('0200000000cc'),
      senderIp: '192.0.2.1',
      targetMac: hex('0200000000dd'),
      targetIp: '192.0.2.254',
    };
    const encoded = encodeArpFrame(frame);
    assert.equal(encoded.length, 60);
    assert.deepEqual(decodeArpFrame(encoded), frame);
    assert.deepEqual(decodeArpFrame(encoded.subarray(0, 42)), frame);
  });

  test('decoded buffers do not alias the frame', () => {
    const frame = Buffer.from(GARP_REQUEST);
    const decoded = decodeArpFrame(frame);
    frame.fill(0);
    assert.deepEqual(decoded?.senderMac, MAC);
  });

  test('rejects non-ARP and malformed frames', () => {
    const mutate = (offset: number, value: number): Buffer => {
      const copy = Buffer.from(GARP_REQUEST);
      copy[offset] = value;
      return copy;
    };
    assert.equal(decodeArpFrame(GARP_REQUEST.subarray(0, 41)), null);
    assert.equal(decodeArpFrame(Buffer.alloc(0)), null);
    assert.equal(decodeArpFrame(mutate(13, 0x00)), null); // ethertype 0x0800
    assert.equal(decodeArpFrame(mutate(15, 6)), null); // htype 6 (IEEE 802)
    assert.equal(decodeArpFrame(mutate(17, 0xdd)), null); // ptype not IPv4
    assert.equal(decodeArpFrame(mutate(18, 8)), null); // hlen
    assert.equal(decodeArpFrame(mutate(19, 16)), null); // plen
    assert.equal(decodeArpFrame(mutate(21, 3)), null); // RARP request opcode
    assert.equal(decodeArpFrame(UNSOLICITED_NA), null);
  });

  test('encoder validates its input', () => {
    assert.throws(() => gratuitousArpRequest(hex('5254001234'), VIP4), /6 bytes/);
    assert.throws(() => gratuitousArpRequest(MAC, VIP6), /IPv4/);
  });
});

describe('ndp', () => {
  test('unsolicited NA is byte-exact', () => {
    assert.deepEqual(encodeUnsolicitedNeighborAdvertisement(MAC, VIP6), UNSOLICITED_NA);
  });

  test('checksum matches an independently computed value', () => {
    const message = Buffer.from(UNSOLICITED_NA.subarray(54));
    message.writeUInt16BE(0, 2);
    const src = UNSOLICITED_NA.subarray(22, 38);
    const dst = UNSOLICITED_NA.subarray(38, 54);
    assert.equal(referenceIcmpv6Checksum(src, dst, message), NA_CHECKSUM);
    const encoded = encodeUnsolicitedNeighborAdvertisement(hex('02000000beef'), '2001:db8:0:0:1:0:0:1');
    const encodedMessage = Buffer.from(encoded.subarray(54));
    const carried = encodedMessage.readUInt16BE(2);
    encodedMessage.writeUInt16BE(0, 2);
    assert.equal(carried, referenceIcmpv6Checksum(encoded.subarray(22, 38), encoded.subarray(38, 54), encodedMessage));
  });

  test('decodes the hand-written NA', () => {
    assert.deepEqual(decodeNeighborAdvertisement(UNSOLICITED_NA), {
      sourceMac: MAC,
      target: VIP6,
      override: true,
      solicited: false,
      router: false,
      targetMac: MAC,
    });
  });

  test('round-trips', () => {
    const mac = hex('02000000beef');
    const decoded = decodeNeighborAdvertisement(encodeUnsolicitedNeighborAdvertisement(mac, '2001:DB8:0:0:1:0:0:1'));
    assert.equal(decoded?.target, '2001:db8::1:0:0:1');
    assert.deepEqual(decoded?.targetMac, mac);
    assert.deepEqual(decoded?.sourceMac, mac);
  });

  test('decodes a solicited unicast NA with R/S flags and no options', () => {
    const src = ipToBytes('2001:db8::1');
    const dst = ipToBytes('2001:db8::2');
    const message = hex('88 00 0000 c0000000 20010db8000000000000000000000001');
    message.writeUInt16BE(referenceIcmpv6Checksum(src, dst, message), 2);
    const frame = Buffer.concat([hex('525400aaaaaa 525400bbbbbb 86dd 60000000 0018 3a ff'), src, dst, message]);
    assert.deepEqual(decodeNeighborAdvertisement(frame), {
      sourceMac: hex('525400bbbbbb'),
      target: '2001:db8::1',
      override: false,
      solicited: true,
      router: true,
      targetMac: null,
    });
  });

  test('rejects bad checksum, wrong type, wrong ethertype, short and invalid frames', () => {
    const mutate = (offset: number, value: number): Buffer => {
      const copy = Buffer.from(UNSOLICITED_NA);
      copy[offset] = value;
      return copy;
    };
    assert.equal(decodeNeighborAdvertisement(mutate(57, 0x52)), null); // checksum 0x7452
    assert.equal(decodeNeighborAdvertisement(mutate(85, 0x57)), null); // payload corrupted
    assert.equal(decodeNeighborAdvertisement(mutate(54, 135)), null); // Neighbor Solicitation
    assert.equal(decodeNeighborAdvertisement(mutate(55, 1)), null); // code 1
    assert.equal(decodeNeighborAdvertisement(mutate(13, 0x00)), null); // ethertype 0x8600
    assert.equal(decodeNeighborAdvertisement(mutate(21, 64)), null); // hop limit 64
    assert.equal(decodeNeighborAdvertisement(mutate(20, 17)), null); // next header UDP
    assert.equal(decodeNeighborAdvertisement(mutate(14, 0x40)), null); // IP version 4
    assert.equal(decodeNeighborAdvertisement(mutate(19, 0x40)), null); // payload length past the frame
    assert.equal(decodeNeighborAdvertisement(UNSOLICITED_NA.subarray(0, 77)), null);
    assert.equal(decodeNeighborAdvertisement(Buffer.alloc(0)), null);
    assert.equal(decodeNeighborAdvertisement(GARP_REQUEST), null);
  });

  test('encoder validates its input', () => {
    assert.throws(() => encodeUnsolicitedNeighborAdvertisement(MAC, VIP4), /IPv6/);
    assert.throws(() => encodeUnsolicitedNeighborAdvertisement(hex('52'), VIP6), /6 bytes/);
  });
});
