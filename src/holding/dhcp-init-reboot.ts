import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { PacketSocket } from './raw-socket';
import { ETHERTYPE_IPV4, decodeDhcpFrame, decodeDhcpOptions, initRebootRequest } from './codecs/dhcp';

export interface InitRebootOptions {
  interfaceName: string;
  /** The VIP's own MAC (the macvlan's address); also the chaddr and client identifier. */
  mac: Buffer;
  requestedIp: string;
  /** Overall budget; after it passes with no ACK or NAK the outcome is 'timeout'. */
  timeoutMs: number;
  /** Fixed retransmission interval; default 500 ms. */
  retransmitMs?: number;
}

export type InitRebootResult =
  | { outcome: 'ack'; ip: string; leaseSeconds: number | null; serverId: string | null; subnetMask: string | null }
  | { outcome: 'nak'; serverId: string | null; message: string | null }
  | { outcome: 'timeout' };

const DEFAULT_RETRANSMIT_MS = 500;
const POLL_INTERVAL_MS = 5;

/**
 * Asks the DHCP servers on the link whether `requestedIp` is still ours, the RFC 2131
 * §3.2/§4.3.2 INIT-REBOOT way: a broadcast DHCPREQUEST with 'requested IP address' and no
 * 'server identifier'. Resolves on the first DHCPACK or DHCPNAK whose xid and chaddr match.
 *
 * - 'ack': `ip` is the server's yiaddr (normally requestedIp; the caller should compare).
 *   `leaseSeconds` is option 51 as sent (0xffffffff = infinite).
 * - 'nak': a server says the address is wrong for this client or network (§4.3.2).
 * - 'timeout': nobody answered. RFC 2131 §3.2 lets a client keep using an unexpired lease
 *   in that case, so this is not evidence of lease loss. Non-authoritative servers (dnsmasq
 *   without --dhcp-authoritative, for one) stay silent for clients they hold no lease for.
 *
 * Retransmission: §4.1 asks for randomised exponential backoff (4 s, 8 s, ...) — that is
 * for a client with minutes to spare. This is a short bounded check, so the same request
 * (same xid, so a late answer to an earlier copy still matches) is resent every
 * `retransmitMs` until `timeoutMs` passes.
 *
 * Opens an AF_PACKET socket (needs CAP_NET_RAW) because the interface has no address yet
 * and replies may be broadcast or unicast to the MAC; the socket is always closed.
 * Replies whose UDP checksum the kernel marks as unfinished (a server on this host) are
 * accepted without that checksum, as udhcpc does.
 * Send errors (interface down, say) reject the promise.
 */
export async function tryInitReboot(options: InitRebootOptions): Promise<InitRebootResult> {
  const retransmitMs = options.retransmitMs ?? DEFAULT_RETRANSMIT_MS;
  if (!(options.timeoutMs > 0)) throw new Error(`timeoutMs must be positive, got ${options.timeoutMs}`);
  if (!(retransmitMs > 0)) throw new Error(`retransmitMs must be positive, got ${retransmitMs}`);
  const xid = randomBytes(4).readUInt32BE(0);
  // Built before the socket is opened so argument errors cannot leak a socket.
  const request = initRebootRequest({ mac: options.mac, requestedIp: options.requestedIp, xid });

  const socket = PacketSocket.open(options.interfaceName, ETHERTYPE_IPV4);
  try {
    const deadline = Date.now() + options.timeoutMs;
    let nextSend = 0;
    for (;;) {
      const now = Date.now();
      if (now >= nextSend) {
        socket.send(request);
        nextSend = now + retransmitMs;
      }
      for (let got = socket.receiveWithStatus(); got !== null; got = socket.receiveWithStatus()) {
        const result = matchReply(got.frame, got.checksumPending, xid, options.mac);
        if (result !== null) return result;
      }
      if (Date.now() >= deadline) return { outcome: 'timeout' };
      await sleep(Math.min(POLL_INTERVAL_MS, Math.max(0, deadline - Date.now())));
    }
  } finally {
    socket.close();
  }
}

function matchReply(frame: Buffer, checksumPending: boolean, xid: number, mac: Buffer): InitRebootResult | null {
  // A server on this host (veth, bridge, macvlan) leaves its UDP checksum to offload.
  const decoded = decodeDhcpFrame(frame, { checksumPending });
  if (decoded === null) return null;
  const m = decoded.message;
  if (m.op !== 'reply' || m.xid !== xid || !m.clientMac.equals(mac)) return null;
  const values = decodeDhcpOptions(m.options);
  if (m.messageType === 'ack') {
    return {
      outcome: 'ack',
      ip: m.yourIp,
      leaseSeconds: values.leaseSeconds ?? null,
      serverId: values.serverId ?? null,
      subnetMask: values.subnetMask ?? null,
    };
  }
  if (m.messageType === 'nak') {
    return { outcome: 'nak', serverId: values.serverId ?? null, message: values.message ?? null };
  }
  return null;
}
