import { isIPv4 } from 'node:net';
import { createRtNetlink, FlagsNew, type rt, type RtNetlinkSocket } from 'netlink';
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
  /** The link kind from IFLA_INFO_KIND ("macvlan", "veth", "bridge"...), null for plain devices. */
  kind: string | null;
}

// rtnetlink link-info attributes (linux/if_link.h); the netlink package leaves them raw.
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_MACVLAN_MODE = 1;
const MACVLAN_MODE_BRIDGE = 4;
const NLA_F_NESTED = 0x8000;

/** One netlink attribute: length, type, payload, padded to 4 bytes. */
function attribute(type: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt16LE(4 + payload.length, 0);
  header.writeUInt16LE(type, 2);
  const padding = Buffer.alloc((4 - (payload.length % 4)) % 4);
  return Buffer.concat([header, payload, padding]);
}

function macvlanLinkInfo(): Buffer {
  const mode = Buffer.alloc(4);
  mode.writeUInt32LE(MACVLAN_MODE_BRIDGE, 0);
  return Buffer.concat([
    attribute(IFLA_INFO_KIND, Buffer.from('macvlan\0')),
    attribute(IFLA_INFO_DATA | NLA_F_NESTED, attribute(IFLA_MACVLAN_MODE, mode)),
  ]);
}

type LinkMessage = rt.LinkMessage;

function interfaceInfo(link: LinkMessage): InterfaceInfo {
  return {
    index: link.data.index ?? 0,
    name: link.attrs.ifname ?? '',
    mac: link.attrs.address ? formatMac(link.attrs.address) : '',
    mtu: link.attrs.mtu ?? 0,
    usable: Boolean(link.data.flags?.up && link.data.flags?.lowerUp),
    kind: linkKind(link.attrs.linkinfo),
  };
}

/** IFLA_INFO_KIND out of a raw IFLA_LINKINFO payload. */
function linkKind(linkinfo: Buffer | undefined): string | null {
  for (let offset = 0; linkinfo && offset + 4 <= linkinfo.length; ) {
    const length = linkinfo.readUInt16LE(offset);
    if (length < 4) break;
    if ((linkinfo.readUInt16LE(offset + 2) & ~NLA_F_NESTED) === IFLA_INFO_KIND) {
      return linkinfo.subarray(offset + 4, offset + length).toString().replace(/\0+$/, '');
    }
    offset += (length + 3) & ~3;
  }
  return null;
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
    return links.map(interfaceInfo);
  }

  /**
   * One RTM_GETLINK by IFLA_IFNAME rather than a dump of every link: the agent asks this at
   * every reconcile, and a hypervisor node can carry hundreds of links.
   */
  async interfaceByName(name: string): Promise<InterfaceInfo | null> {
    // Longer than IFNAMSIZ - 1: no such interface can exist, and the kernel would answer EINVAL.
    if (!name || Buffer.byteLength(name) > 15) return null;
    try {
      const [link] = await this.serial(() => this.socket.getLink({}, { ifname: name }));
      return link && link.attrs.ifname === name ? interfaceInfo(link) : null;
    } catch (error) {
      // The netlink package reports the kernel's errno only in the message.
      if (/\bENODEV\b/.test((error as Error).message)) return null;
      throw error;
    }
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

  /**
   * Adds the address, or replaces its lifetimes if it is already there. `mayWrite` is asked
   * at the last moment, inside the request queue: the caller's right to hold the address can
   * end while earlier requests run. Returns false if it said no.
   */
  async setAddress(
    interfaceIndex: number,
    address: string,
    prefixLength: number,
    lifetimes: AddressLifetimes,
    mayWrite: () => boolean = () => true,
  ): Promise<boolean> {
    const v4 = isIPv4(address);
    const bytes = ipToBytes(address);
    return await this.serial(async () => {
      if (!mayWrite()) return false;
      await this.socket.newAddress(
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
      );
      return true;
    });
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

  /** Creates a macvlan (bridge mode) on `parentIndex` with the given MAC, and sets it up. */
  async createMacvlan(name: string, parentIndex: number, mac: Buffer): Promise<number> {
    const parent = Buffer.alloc(4);
    parent.writeUInt32LE(parentIndex, 0);
    await this.serial(() =>
      this.socket.newLink({}, { ifname: name, address: mac, link: parent, linkinfo: macvlanLinkInfo() }, { flags: FlagsNew.CREATE | FlagsNew.EXCL }),
    );
    const created = await this.interfaceByName(name);
    if (!created) throw new Error(`macvlan ${name} vanished right after it was created`);
    await this.serial(() => this.socket.setLink({ index: created.index, change: { up: true }, flags: { up: true } }));
    return created.index;
  }

  /** Deletes a link; returns false if it was already gone. */
  async deleteLink(index: number): Promise<boolean> {
    try {
      await this.serial(() => this.socket.delLink({ index }));
      return true;
    } catch (error) {
      if (/ENODEV/.test((error as Error).message)) return false;
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
