import { isIPv4 } from 'node:net';
import type { Netlink } from './netlink';

/**
 * The VIP as an address on the management interface.
 *
 * It is a host route (/32 or /128) so it never adds a second subnet route, with preferred
 * lifetime 0 so the kernel never picks it as a source address, and a valid lifetime that
 * the holder keeps short: if the agent dies without cleanup, the kernel removes the VIP by
 * itself before the lease can pass to another node.
 */
export class VipAddress {
  readonly prefixLength: number;

  constructor(
    private readonly netlink: Netlink,
    readonly interfaceIndex: number,
    readonly address: string,
  ) {
    this.prefixLength = isIPv4(address) ? 32 : 128;
  }

  async isPresent(): Promise<boolean> {
    const addresses = await this.netlink.addresses(this.interfaceIndex);
    return addresses.some((entry) => entry.address === this.address && entry.prefixLength === this.prefixLength);
  }

  /**
   * Adds the VIP or refreshes its valid lifetime, if `mayHold` still agrees at the last
   * moment. `wasPresent`, when the caller has just looked, saves a dump of the addresses.
   */
  async install(validSeconds: number, mayHold: () => boolean, wasPresent?: boolean): Promise<'added' | 'refreshed' | 'refused'> {
    wasPresent ??= await this.isPresent();
    const written = await this.netlink.setAddress(
      this.interfaceIndex,
      this.address,
      this.prefixLength,
      { preferredSeconds: 0, validSeconds },
      mayHold,
    );
    if (!written) return 'refused';
    return wasPresent ? 'refreshed' : 'added';
  }

  async remove(): Promise<boolean> {
    return await this.netlink.removeAddress(this.interfaceIndex, this.address, this.prefixLength);
  }
}

/**
 * Whole seconds of valid lifetime that still end before the fencing deadline. The kernel
 * checks lifetimes in whole seconds and may run its expiry work up to HZ/4 late
 * (ADDRCONF_TIMER_FUZZ), hence the slack.
 */
export function validLifetimeSeconds(remainingMs: number, kernelSlackMs = 300): number {
  return Math.floor((remainingMs - kernelSlackMs) / 1000);
}

/**
 * The last moment a refresh still gets a whole second of lifetime before the fencing
 * deadline `boundMs` (monotonic), `earlyMs` ahead for timer lateness. A lifetime set at a
 * renewal lasts one second; without later renewals, one more refresh here keeps the VIP until
 * about `boundMs − kernelSlackMs − earlyMs`.
 */
export function lastWholeSecondAt(boundMs: number, earlyMs = 100, kernelSlackMs = 300): number {
  return boundMs - kernelSlackMs - 1000 - earlyMs;
}
