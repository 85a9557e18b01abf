import path from 'node:path';
import { installRoot } from '../install-root';

/** Shape of the native vipd_packet addon (native/packet.c). */
interface PacketAddon {
  openPacketSocket(ifname: string, ethertype: number): number;
  sendFrame(fd: number, frame: Buffer): number;
  receiveFrame(fd: number, buffer: Buffer): number;
  receiveFrameWithStatus(fd: number, buffer: Buffer): { length: number; checksumPending: boolean } | null;
  closeSocket(fd: number): void;
  interfaceMac(ifname: string): Buffer;
}

export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;

// Large enough for any frame up to a 64 KiB MTU, so nothing is truncated.
const RECEIVE_BUFFER_SIZE = 65536;

let cachedAddon: PacketAddon | undefined;

// Loaded lazily so modules importing this one still load where the addon is not built.
function addon(): PacketAddon {
  if (cachedAddon === undefined) {
    cachedAddon = require(path.join(installRoot(), 'build/Release/vipd_packet.node')) as PacketAddon;
  }
  return cachedAddon;
}

/** A non-blocking AF_PACKET raw socket bound to one interface and EtherType. */
export class PacketSocket {
  private fd: number | null;
  private readonly scratch = Buffer.alloc(RECEIVE_BUFFER_SIZE);

  private constructor(
    fd: number,
    readonly interfaceName: string,
    readonly etherType: number,
  ) {
    this.fd = fd;
  }

  static open(interfaceName: string, etherType: number): PacketSocket {
    return new PacketSocket(addon().openPacketSocket(interfaceName, etherType), interfaceName, etherType);
  }

  get closed(): boolean {
    return this.fd === null;
  }

  /** Sends one complete Ethernet frame (header included). */
  send(frame: Buffer): void {
    const sent = addon().sendFrame(this.openFd(), frame);
    if (sent !== frame.length) {
      throw new Error(`short send on ${this.interfaceName}: ${sent} of ${frame.length} bytes`);
    }
  }

  /** Returns the next received frame (a copy), or null if none is waiting. Never blocks. */
  receive(): Buffer | null {
    const length = addon().receiveFrame(this.openFd(), this.scratch);
    if (length < 0) return null;
    return Buffer.from(this.scratch.subarray(0, length));
  }

  /**
   * Like receive(), with the kernel's word on the frame: checksumPending means it came from
   * this host with its transport checksum left to offload (CHECKSUM_PARTIAL), so that
   * checksum field holds only a partial sum and must not be verified.
   */
  receiveWithStatus(): { frame: Buffer; checksumPending: boolean } | null {
    const received = addon().receiveFrameWithStatus(this.openFd(), this.scratch);
    if (received === null) return null;
    return { frame: Buffer.from(this.scratch.subarray(0, received.length)), checksumPending: received.checksumPending };
  }

  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    addon().closeSocket(fd);
  }

  private openFd(): number {
    if (this.fd === null) throw new Error(`packet socket on ${this.interfaceName} is closed`);
    return this.fd;
  }
}

/** The interface's 6-byte hardware address. */
export function interfaceMac(name: string): Buffer {
  return addon().interfaceMac(name);
}
