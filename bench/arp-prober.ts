/**
 * Runs in the client's namespace: asks who has the VIP every few milliseconds (one round
 * per request) and prints one JSON line per answer: {"round":N,"mac":"..","atMs":T},
 * T in monotonic milliseconds. Two MACs answering the same round means two nodes hold
 * the VIP at that moment, as the network sees it.
 *
 * It asks with its own MAC and IP, not the client's: every ARP reply for the VIP that
 * reaches the client's kernel updates its neighbour entry (locktime is 0 here), so asking
 * as the client would repair the client's cache every 5 ms and hide how long the client
 * really needed to learn the new holder from the announcements.
 */
import { decodeArpFrame, encodeArpFrame } from '../src/holding/codecs/arp';
import { formatMac, parseMac } from '../src/holding/codecs/mac';
import { ETHERTYPE_ARP, interfaceMac, PacketSocket } from '../src/holding/raw-socket';

const BROADCAST = Buffer.from('ffffffffffff', 'hex');
const ZERO = Buffer.alloc(6);

function main(): void {
  const [interfaceName, vip, senderIp, macText, intervalText] = process.argv.slice(2);
  if (!interfaceName || !vip || !senderIp) throw new Error('usage: arp-prober INTERFACE VIP SENDER_IP [MAC|-] [intervalMs]');
  const mac = macText && macText !== '-' ? parseMac(macText) : interfaceMac(interfaceName);
  const intervalMs = Number(intervalText ?? '5');
  const socket = PacketSocket.open(interfaceName, ETHERTYPE_ARP);
  const request = encodeArpFrame({
    destinationMac: BROADCAST,
    sourceMac: mac,
    operation: 'request',
    senderMac: mac,
    senderIp,
    targetMac: ZERO,
    targetIp: vip,
  });
  let round = 0;
  let nextSend = Number(process.hrtime.bigint()) / 1e6;
  const tick = (): void => {
    const now = Number(process.hrtime.bigint()) / 1e6;
    for (let frame = socket.receive(); frame; frame = socket.receive()) {
      const arp = decodeArpFrame(frame);
      if (!arp || arp.operation !== 'reply' || arp.senderIp !== vip || arp.targetIp !== senderIp) continue;
      if (!arp.targetMac.equals(mac)) continue;
      process.stdout.write(`{"round":${round},"mac":"${formatMac(arp.senderMac)}","atMs":${Math.round(now * 1000) / 1000}}\n`);
    }
    if (now >= nextSend) {
      socket.send(request);
      round += 1;
      // Keep the schedule, but never send a catch-up burst after a stall.
      nextSend = Math.max(nextSend + intervalMs, now + intervalMs / 2);
    }
  };
  process.stdout.write(`{"ready":true,"mac":"${formatMac(mac)}"}\n`);
  setInterval(tick, 1);
}

main();
