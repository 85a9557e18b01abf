/**
 * Runs in a namespace and prints every announcement for the VIP it sees on an interface,
 * one JSON line each: gratuitous ARP (request or reply) and unsolicited neighbour
 * advertisements. The lab uses it to prove announcements reach the client.
 */
import { decodeArpFrame } from '../src/holding/codecs/arp';
import { formatMac } from '../src/holding/codecs/mac';
import { decodeNeighborAdvertisement } from '../src/holding/codecs/ndp';
import { PacketSocket } from '../src/holding/raw-socket';

/** ETH_P_ALL: every frame, whatever its EtherType. */
const ETH_P_ALL = 0x0003;

export interface CapturedAnnouncement {
  kind: 'arp-request' | 'arp-reply' | 'na';
  sourceMac: string;
  override?: boolean;
  atMs: number;
}

function main(): void {
  const [interfaceName, vip] = process.argv.slice(2);
  if (!interfaceName || !vip) throw new Error('usage: frame-capture INTERFACE VIP');
  const socket = PacketSocket.open(interfaceName, ETH_P_ALL);
  process.stdout.write('{"ready":true}\n');
  const poll = (): void => {
    for (let frame = socket.receive(); frame; frame = socket.receive()) {
      const atMs = Number(process.hrtime.bigint() / 1_000_000n);
      const arp = decodeArpFrame(frame);
      if (arp && arp.senderIp === vip && arp.targetIp === vip) {
        const kind = arp.operation === 'request' ? 'arp-request' : 'arp-reply';
        emit({ kind, sourceMac: formatMac(arp.senderMac), atMs });
        continue;
      }
      const na = decodeNeighborAdvertisement(frame);
      if (na && na.target === vip && !na.solicited) {
        emit({ kind: 'na', sourceMac: formatMac(na.targetMac ?? na.sourceMac), override: na.override, atMs });
      }
    }
    setTimeout(poll, 2);
  };
  poll();
}

function emit(announcement: CapturedAnnouncement): void {
  process.stdout.write(`${JSON.stringify(announcement)}\n`);
}

main();
