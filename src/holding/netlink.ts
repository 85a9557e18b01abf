import { isIPv4 } from 'node:net';
import { createRtNetlink, FlagsNew, type RtNetlinkSocket } from 'netlink';
import { bytesToIp, ipToBytes } from './codecs/ip';
import { formatMac } from './codecs/mac';

const AF_INET = 2;
const AF_INET6 = 10;
/** The kernel's "forever" for address lifetimes. */
export const INFINITE_LIFETIME = 0xffffffff;

export interface InterfaceAddress {
  interfaceIndex: number;
  address: string;
  prefixLength: number;
  /** Seconds; INFINITE_LIFETIME for a permanent address. */
  preferredLifetime: number;
  validLifetime: number;
}

export interface InterfaceInfo {
  index: number;
  name: string;
  mac: string;
  mtu: number;
  /** Administratively up and with carrier: the only state in which it can carry the VIP. */
  usable: boolean;
}

export interface AddressLifetimes {
  preferredSeconds: number;
  validSeconds: number;
}

/**
 * The project's only door to rtnetlink. Everything the agent does to links and addresses
 * goes through here, so the netlink package's types stay inside this file.
 */
export class Netlink {
  /** The tail of the request queue: see serial(). */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly socket: RtNetlinkSocket) {}

  /**
   * Runs requests on the socket one at a time. The kernel allows one dump per socket at a
   * time (EBUSY otherwise), and the netlink package cannot tell interleaved multipart
   * replies apart.
   */
  private serial<T>(request: () => Promise<T>): Promise<T> {
    const result = this.queue.then(request, request);
    this.queue = result.catch(() => undefined);
    return result;
  }

  static open(): Netlink {
    return new Netlink(createRtNetlink());
  }

  async interfaces(): Promise<InterfaceInfo[]> {
    const links = await this.serial(() => this.socket.getLinks());
    return links.map((link) => ({
      index: link.data.index ?? 0,
      name: link.attrs.ifname ?? '',
      mac: link.attrs.address ? formatMac(link.attrs.address) : '',
      mtu: link.attrs.mtu ?? 0,
      usable: Boolean(link.data.flags?.up && link.data.flags?.lowerUp),
    }));
  }

  async interfaceByName(name: string): Promise<InterfaceInfo | null> {
    return (await this.interfaces()).find((candidate) => candidate.name === name) ?? null;
  }

  /** Every IPv4 and IPv6 address on this node, or on one interface. */
  async addresses(interfaceIndex?: number): Promise<InterfaceAddress[]> {
    const messages = await this.serial(() => this.socket.getAddresses());
    const result: InterfaceAddress[] = [];
    for (const message of messages) {
      const family = message.data.family;
      if (family !== AF_INET && family !== AF_INET6) continue;
      const index = message.data.index ?? 0;
      if (interfaceIndex !== undefined && index !== interfaceIndex) continue;
      // For IPv4, IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on p2p links.
      const bytes = message.attrs.local ?? message.attrs.address;
      if (!bytes) continue;
      result.push({
        interfaceIndex: index,
        address: bytesToIp(bytes),
        prefixLength: message.data.prefixlen ?? 0,
        preferredLifetime: message.attrs.cacheInfo?.ifaPrefered ?? INFINITE_LIFETIME,
        validLifetime: message.attrs.cacheInfo?.ifaValid ?? INFINITE_LIFETIME,
      });
    }
    return result;
  }

  /** Adds the address, or replaces its lifetimes if it is already there. */
  async setAddress(interfaceIndex: number, address: string, prefixLength: number, lifetimes: AddressLifetimes): Promise<void> {
    const v4 = isIPv4(address);
    const bytes = ipToBytes(address);
    await this.serial(() => this.socket.newAddress(
      {
        family: v4 ? AF_INET : AF_INET6,
        prefixlen: prefixLength,
        index: interfaceIndex,
        scope: 0,
        // DAD would hold an IPv6 VIP "tentative" for a second; the election already made it unique.
        ...(v4 ? {} : { flags: { nodad: true } }),
      },
      {
        local: bytes,
        address: bytes,
        cacheInfo: { ifaPrefered: lifetimes.preferredSeconds, ifaValid: lifetimes.validSeconds },
        ...(v4 ? {} : { flags: { nodad: true } }),
      },
      { flags: FlagsNew.CREATE | FlagsNew.REPLACE },
    ));
  }

  /** Removes the address; returns false if it was not there. */
  async removeAddress(interfaceIndex: number, address: string, prefixLength: number): Promise<boolean> {
    const bytes = ipToBytes(address);
    try {
      await this.serial(() =>
        this.socket.delAddress(
          { family: isIPv4(address) ? AF_INET : AF_INET6, prefixlen: prefixLength, index: interfaceIndex },
          { local: bytes, address: bytes },
        ),
      );
      return true;
    } catch (error) {
      if (/EADDRNOTAVAIL|ENODEV/.test((error as Error).message)) return false;
      throw error;
    }
  }

  /**
   * Calls back on any link or address change, so the agent can react at once instead of at
   * its next periodic check. Uses a second socket: notifications and replies must not mix.
   */
  static watchChanges(onChange: () => void): () => void {
    const socket = createRtNetlink();
    socket.addMembership('LINK');
    socket.addMembership('IPV4_IFADDR');
    socket.addMembership('IPV6_IFADDR');
    socket.on('message', () => onChange());
    return () => socket.socket.close();
  }

  close(): void {
    this.socket.socket.close();
  }
}
