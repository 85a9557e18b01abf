import { isIPv4 } from 'node:net';
import type { Logger } from 'pino';
import { gratuitousArpReply, gratuitousArpRequest } from './codecs/arp';
import { encodeUnsolicitedNeighborAdvertisement } from './codecs/ndp';
import { PacketSocket } from './raw-socket';

export interface AnnouncerOptions {
  interfaceName: string;
  mac: Buffer;
  address: string;
  burstCount: number;
  burstIntervalMs: number;
  /** 0 turns the periodic refresh off. */
  refreshIntervalMs: number;
  logger: Logger;
  /**
   * Asked before every frame: a holder frozen with a burst pending must not announce a VIP it
   * lost while frozen, or neighbours would follow it back.
   */
  mayAnnounce: () => boolean;
  /** Called after each frame sent (metrics). */
  onSent?: () => void;
}

/**
 * Tells the segment where the VIP lives: a burst on every acquisition, then a periodic
 * refresh for neighbours that missed it (a switch port that was still coming up, a host
 * whose cache entry was locked by neigh/locktime).
 */
export class Announcer {
  private socket: PacketSocket | null = null;
  private burstTimer: NodeJS.Timeout | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private sent = 0;
  private lastFailure = '';
  private readonly v4: boolean;

  constructor(private readonly options: AnnouncerOptions) {
    this.v4 = isIPv4(options.address);
  }

  get framesSent(): number {
    return this.sent;
  }

  /** The frame with sequence number n of a burst. */
  private frame(n: number): Buffer {
    const { mac, address } = this.options;
    if (!this.v4) return encodeUnsolicitedNeighborAdvertisement(mac, address);
    // Some switches and hosts learn only from requests, others only from replies: alternate.
    return n % 2 === 0 ? gratuitousArpRequest(mac, address) : gratuitousArpReply(mac, address);
  }

  private sendOne(n: number): void {
    if (!this.options.mayAnnounce()) return;
    try {
      // Protocol 0: this socket only sends, so the kernel queues nothing for it to read.
      this.socket ??= PacketSocket.open(this.options.interfaceName, 0);
      this.socket.send(this.frame(n));
      this.sent += 1;
      this.options.onSent?.();
      this.lastFailure = '';
    } catch (error) {
      const message = (error as Error).message;
      if (message !== this.lastFailure) this.options.logger.warn({ err: message }, 'could not send an announcement');
      this.lastFailure = message;
      // The interface may have been recreated; reopen on the next send.
      this.socket?.close();
      this.socket = null;
    }
  }

  /** Starts a new burst (cancelling one under way), then the periodic refresh. */
  start(): void {
    this.stop();
    let n = 0;
    const next = (): void => {
      this.sendOne(n);
      n += 1;
      if (n < this.options.burstCount) {
        // Request and reply go out together; the rest are spread by burstInterval.
        this.burstTimer = setTimeout(next, n === 1 ? 0 : this.options.burstIntervalMs);
      } else {
        this.startRefresh();
      }
    };
    next();
    this.options.logger.info({ frames: this.options.burstCount, address: this.options.address }, 'announcing the VIP');
  }

  private startRefresh(): void {
    if (this.options.refreshIntervalMs <= 0) return;
    this.refreshTimer = setInterval(() => {
      this.sendOne(0);
      this.sendOne(1);
    }, this.options.refreshIntervalMs);
  }

  stop(): void {
    clearTimeout(this.burstTimer);
    clearInterval(this.refreshTimer);
  }

  close(): void {
    this.stop();
    this.socket?.close();
    this.socket = null;
  }
}
