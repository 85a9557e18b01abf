import { isIPv4 } from 'node:net';
import { arpProbe, decodeArpFrame } from './codecs/arp';
import { formatMac } from './codecs/mac';
import { decodeNeighborAdvertisement, encodeDadNeighborSolicitation } from './codecs/ndp';
import { ETHERTYPE_ARP, ETHERTYPE_IPV6, PacketSocket } from './raw-socket';

export interface ProbeOptions {
  interfaceName: string;
  ownMac: Buffer;
  address: string;
  windowMs: number;
}

/**
 * Asks the segment whether anyone still answers for the VIP (RFC 5227 §2.1.1 ARP probe,
 * RFC 4862 §5.4 DAD solicitation for IPv6) and returns the MACs that did, our own excluded.
 *
 * A holder that is frozen (SIGSTOP) or whose agent was killed still has the VIP until the
 * kernel's valid lifetime runs out, and its kernel keeps answering. Taking the VIP then
 * would put it on two nodes; the probe sees the answer and the caller waits.
 */
export async function probeForOtherHolders(options: ProbeOptions): Promise<string[]> {
  return [...(await listenForAnswers(options, false))];
}

/**
 * Whether another host answers for `address` within the window: the same probe, stopping
 * at the first answer. The fast profile asks it of a silent holder's own node address.
 */
export async function hostAnswers(options: ProbeOptions): Promise<boolean> {
  return (await listenForAnswers(options, true)).size > 0;
}

async function listenForAnswers(options: ProbeOptions, stopAtFirst: boolean): Promise<Set<string>> {
  const v4 = isIPv4(options.address);
  const socket = PacketSocket.open(options.interfaceName, v4 ? ETHERTYPE_ARP : ETHERTYPE_IPV6);
  const own = formatMac(options.ownMac);
  const answering = new Set<string>();
  const probe = v4 ? arpProbe(options.ownMac, options.address) : encodeDadNeighborSolicitation(options.ownMac, options.address);
  try {
    socket.send(probe);
    const deadline = Date.now() + options.windowMs;
    let resent = false;
    while (Date.now() < deadline) {
      for (let frame = socket.receive(); frame; frame = socket.receive()) {
        const mac = answerFrom(frame, options.address, v4);
        if (mac && mac !== own) answering.add(mac);
      }
      if (stopAtFirst && answering.size > 0) break;
      // A second probe halfway through, in case the first was lost.
      if (!resent && Date.now() > deadline - options.windowMs / 2) {
        socket.send(probe);
        resent = true;
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  } finally {
    socket.close();
  }
  return answering;
}

/** The MAC claiming the address in an ARP packet or neighbour advertisement, if any. */
function answerFrom(frame: Buffer, address: string, v4: boolean): string | null {
  if (v4) {
    const arp = decodeArpFrame(frame);
    return arp && arp.senderIp === address ? formatMac(arp.senderMac) : null;
  }
  const na = decodeNeighborAdvertisement(frame);
  return na && na.target === address ? formatMac(na.targetMac ?? na.sourceMac) : null;
}
