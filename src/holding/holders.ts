import { hookDirectory } from './udhcpc-hook';
import { writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { prefixLengthOfNetmask } from './codecs/subnet';
import { parseMac } from './codecs/mac';
import { DeadManSwitch } from './dead-man-switch';
import { DhcpClient, type AdoptedLease, type DhcpState } from './dhcp-client';
import { tryInitReboot, type InitRebootResult } from './dhcp-init-reboot';
import type { Netlink } from './netlink';
import { VipAddress } from './vip-address';

const NO_LONGER_HOLDER = 'no longer the elected holder';

/** What hold() did: added the VIP, refreshed its lifetime, or cannot hold it yet (and why). */
export type HoldResult = { outcome: 'added' | 'refreshed' } | { outcome: 'waiting'; reason: string };

/**
 * How a node holds the VIP. The agent decides *whether* to hold it (from the election);
 * a holder knows *how*: which interface, which MAC, where the address comes from.
 */
export interface VipHolder {
  /** The address to probe for and announce, if known yet. */
  address(): string | null;
  /** The interface and MAC that answer for the VIP: announcements go out from them. */
  answering(): { interfaceName: string; mac: Buffer };
  isPresent(): Promise<boolean>;
  /**
   * Holds the VIP with a kernel valid lifetime of validSeconds (refreshing it if held).
   * `mayHold` is asked again right before the address is written: the election's answer can
   * change while the holder awaits the kernel. `present` is what isPresent() just said.
   */
  hold(validSeconds: number, mayHold: () => boolean, present: boolean): Promise<HoldResult>;
  /** Removes the VIP and everything that carried it; `stopping` when the agent exits. Returns whether the VIP was there. */
  release(stopping: boolean): Promise<boolean>;
  /** Removes what an earlier run left behind; called at start and after every release. */
  removeStale(): Promise<void>;
}

/** Static mode: the VIP is a /32 (/128) on the management interface, answered by its MAC. */
export class StaticVipHolder implements VipHolder {
  private readonly deadMan = new DeadManSwitch();

  constructor(
    private readonly netlink: Netlink,
    private readonly interfaceName: string,
    private readonly interfaceMac: Buffer,
    private readonly vip: string,
  ) {}

  address(): string {
    return this.vip;
  }

  answering(): { interfaceName: string; mac: Buffer } {
    return { interfaceName: this.interfaceName, mac: this.interfaceMac };
  }

  /** The interface index, kept between calls: every link dump delays a takeover. */
  private interfaceIndex: number | null = null;

  private async target(): Promise<VipAddress | null> {
    if (this.interfaceIndex === null) this.interfaceIndex = (await this.netlink.interfaceByName(this.interfaceName))?.index ?? null;
    return this.interfaceIndex === null ? null : new VipAddress(this.netlink, this.interfaceIndex, this.vip);
  }

  /** A recreated interface gets a new index: look it up again after any failure. */
  private async forgettingIndexOnError<T>(action: () => Promise<T>): Promise<T> {
    try {
      return await action();
    } catch (error) {
      this.interfaceIndex = null;
      throw error;
    }
  }

  async isPresent(): Promise<boolean> {
    return (await (await this.target())?.isPresent()) ?? false;
  }

  async hold(validSeconds: number, mayHold: () => boolean, present: boolean): Promise<HoldResult> {
    const target = await this.target();
    if (!target) return { outcome: 'waiting', reason: `interface ${this.interfaceName} is gone` };
    const installed = await this.forgettingIndexOnError(() => target.install(validSeconds, mayHold, present));
    if (installed === 'refused') return { outcome: 'waiting', reason: NO_LONGER_HOLDER };
    const added = installed === 'added';
    if (added) {
      this.deadMan.arm([['ip', 'addr', 'del', `${this.vip}/${target.prefixLength}`, 'dev', this.interfaceName]]);
    }
    return { outcome: added ? 'added' : 'refreshed' };
  }

  async release(): Promise<boolean> {
    const target = await this.target();
    const removed = target ? await this.forgettingIndexOnError(() => target.remove()) : false;
    if (!removed) this.interfaceIndex = null;
    this.deadMan.disarm();
    return removed;
  }

  async removeStale(): Promise<void> {
    // The agent removes a leftover static VIP at start, after its checks (see preflight).
  }
}

function writeSysctl(path: string, value: string): void {
  try {
    writeFileSync(`/proc/sys/${path}`, value);
  } catch {
    // Absent (IPv6 disabled on the host) or read-only: nothing to change.
  }
}

/** The macvlan that carries a DHCP-mode VIP; the same name on every node. */
export const VIP_MACVLAN = 'vipd-vip';

export interface DhcpHolderOptions {
  netlink: Netlink;
  parentInterface: string;
  vipMac: string;
  /** Configured vip.address, else the address leased last time (kept in etcd). */
  requestedIp: () => string | null;
  releaseOnStop: boolean;
  logger: Logger;
  /** Called on every DHCP state change, for status and to re-run the agent's reconcile. */
  onDhcpChange: (state: DhcpState) => void;
}

/**
 * DHCP mode: the VIP lives on a macvlan whose MAC is the VIP's own (the same on every node),
 * so the DHCP server always sees one client and its reservation keeps the address fixed.
 * Only the holder has the macvlan and runs the DHCP client.
 */
export class DhcpVipHolder implements VipHolder {
  private readonly deadMan = new DeadManSwitch();
  private client: DhcpClient | null = null;
  private readonly mac: Buffer;

  constructor(private readonly options: DhcpHolderOptions) {
    this.mac = parseMac(options.vipMac);
  }

  dhcpState(): DhcpState | null {
    return this.client?.state ?? null;
  }

  address(): string | null {
    const state = this.client?.state;
    if (state?.state === 'bound') return state.lease.ip;
    return this.options.requestedIp();
  }

  answering(): { interfaceName: string; mac: Buffer } {
    return { interfaceName: VIP_MACVLAN, mac: this.mac };
  }

  private async macvlan(): Promise<number | null> {
    return (await this.options.netlink.interfaceByName(VIP_MACVLAN))?.index ?? null;
  }

  async isPresent(): Promise<boolean> {
    const index = await this.macvlan();
    const state = this.client?.state;
    if (index === null || state?.state !== 'bound') return false;
    return await new VipAddress(this.options.netlink, index, state.lease.ip).isPresent();
  }

  async hold(validSeconds: number, mayHold: () => boolean): Promise<HoldResult> {
    const { netlink } = this.options;
    let index = await this.macvlan();
    let adopted: AdoptedLease | null = null;
    if (index === null) {
      const parent = await netlink.interfaceByName(this.options.parentInterface);
      if (!parent) return { outcome: 'waiting', reason: `interface ${this.options.parentInterface} is gone` };
      index = await netlink.createMacvlan(VIP_MACVLAN, parent.index, this.mac);
      // Only the DHCP client and the VIP may speak with this MAC: no IPv6 autoconfiguration.
      writeSysctl(`net/ipv6/conf/${VIP_MACVLAN}/disable_ipv6`, '1');
      // Linux answers ARP for any local address on any interface: the parent would answer
      // for the VIP with its own MAC. arp_ignore=1 answers only for the receiving interface.
      writeSysctl(`net/ipv4/conf/${this.options.parentInterface}/arp_ignore`, '1');
      writeSysctl(`net/ipv4/conf/${VIP_MACVLAN}/arp_ignore`, '1');
      // Its own ARP requests would otherwise carry the VIP as sender with the parent's MAC,
      // and neighbours would learn that MAC for the VIP.
      writeSysctl(`net/ipv4/conf/${this.options.parentInterface}/arp_announce`, '2');
      this.deadMan.arm([['ip', 'link', 'del', VIP_MACVLAN], ['rm', '-rf', hookDirectory()]]);
      this.options.logger.info({ interface: VIP_MACVLAN, mac: this.options.vipMac }, 'created the VIP macvlan');
      const requestedIp = this.options.requestedIp();
      if (requestedIp !== null) adopted = await this.initReboot(requestedIp);
    }
    if (!this.client) {
      this.client = new DhcpClient({
        interfaceName: VIP_MACVLAN,
        requestedIp: this.options.requestedIp(),
        logger: this.options.logger,
        onChange: (state) => this.options.onDhcpChange(state),
      });
      // Serve the VIP at once; udhcpc still runs, to take over and maintain the lease.
      if (adopted !== null) this.client.adoptLease(adopted);
      this.client.start();
    }
    const state = this.client.state;
    const address = (ip: string): VipAddress => new VipAddress(netlink, index as number, ip);
    if (state.state !== 'bound') {
      // A lost lease takes the VIP with it; the client keeps asking, and it comes back.
      const stale = state.state === 'lost' ? state.lease?.ip : null;
      if (stale) await address(stale).remove();
      return { outcome: 'waiting', reason: state.state === 'lost' ? state.reason : 'waiting for a DHCP lease' };
    }
    // Never promise the kernel more time than the lease itself has left.
    const leaseLeft = Math.floor((Date.parse(state.lease.expiresAt) - Date.now()) / 1000);
    // The lease may have changed since isPresent() looked: look again rather than trust `present`.
    const installed = await address(state.lease.ip).install(Math.max(1, Math.min(validSeconds, leaseLeft)), mayHold);
    if (installed === 'refused') return { outcome: 'waiting', reason: NO_LONGER_HOLDER };
    return { outcome: installed };
  }

  /**
   * RFC 2131 INIT-REBOOT: asks whether requestedIp is still this MAC's, which takes one
   * exchange where udhcpc's discover, offer, request and ARP check take several. Returns the
   * lease to adopt on an ACK for that address; null otherwise, and udhcpc asks as usual.
   */
  private async initReboot(requestedIp: string): Promise<AdoptedLease | null> {
    const { logger } = this.options;
    const started = Date.now();
    let result: InitRebootResult;
    try {
      result = await tryInitReboot({ interfaceName: VIP_MACVLAN, mac: this.mac, requestedIp, timeoutMs: 1000 });
    } catch (error) {
      logger.warn({ requestedIp, err: (error as Error).message }, 'INIT-REBOOT failed; leaving it to udhcpc');
      return null;
    }
    const tookMs = Date.now() - started;
    if (result.outcome !== 'ack') {
      logger.info({ requestedIp, ...result, tookMs }, 'INIT-REBOOT: no ACK; leaving it to udhcpc');
      return null;
    }
    if (result.ip !== requestedIp || result.leaseSeconds === null || result.leaseSeconds === 0) {
      logger.info({ requestedIp, ...result, tookMs }, 'INIT-REBOOT: ACK not usable for the requested IP; leaving it to udhcpc');
      return null;
    }
    logger.info({ requestedIp, ...result, tookMs }, 'INIT-REBOOT: the DHCP server confirmed the requested IP');
    return { ip: result.ip, prefixLength: prefixLengthOfNetmask(result.subnetMask), leaseSeconds: result.leaseSeconds, serverId: result.serverId };
  }

  async release(stopping: boolean): Promise<boolean> {
    const present = await this.isPresent();
    await this.client?.stop(stopping && this.options.releaseOnStop);
    this.client = null;
    const index = await this.macvlan();
    if (index !== null) {
      await this.options.netlink.deleteLink(index);
      this.options.logger.info({ interface: VIP_MACVLAN }, 'deleted the VIP macvlan');
    }
    this.deadMan.disarm();
    return present;
  }

  /** A node that does not hold the VIP never keeps a vipd macvlan, nor anything with the VIP's MAC. */
  async removeStale(): Promise<void> {
    if (this.client) return;
    for (const link of await this.options.netlink.interfaces()) {
      if (link.name === VIP_MACVLAN || (link.kind === 'macvlan' && link.mac === this.options.vipMac)) {
        await this.options.netlink.deleteLink(link.index);
        this.options.logger.warn({ interface: link.name }, 'removed a stale VIP macvlan');
      }
    }
  }
}
