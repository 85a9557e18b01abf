import { spawn, type ChildProcess } from 'node:child_process';
import { installUdhcpcHook } from './udhcpc-hook';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { monotonicMs } from '../clock';
import { prefixLengthOfNetmask } from './codecs/subnet';

/** A lease as udhcpc reported it. Times are wall-clock ISO strings, for status. */
export interface DhcpLease {
  ip: string;
  prefixLength: number;
  leaseSeconds: number;
  serverId: string | null;
  boundAt: string;
  /** T1 and T2 per RFC 2131 §4.4.5 defaults (0.5 and 0.875 of the lease). */
  renewAt: string;
  rebindAt: string;
  expiresAt: string;
}

/** A lease confirmed outside udhcpc (an INIT-REBOOT DHCPACK), for DhcpClient.adoptLease. */
export interface AdoptedLease {
  ip: string;
  prefixLength: number;
  leaseSeconds: number;
  serverId: string | null;
}

// setTimeout's longest delay; longer waits re-arm.
const MAX_TIMER_MS = 2 ** 31 - 1;

export type DhcpState =
  | { state: 'requesting' }
  | { state: 'bound'; lease: DhcpLease }
  | { state: 'lost'; reason: string; lease: DhcpLease | null };

/**
 * The udhcpc hook: it only reports the event to the agent on stdout; the agent applies
 * addresses itself, through netlink. Values are IPs and numbers; the NAK message is
 * reduced to safe characters.
 */
const HOOK_SCRIPT = `#!/bin/sh
msg=$(printf '%s' "$message" | tr -c 'A-Za-z0-9._-' '_' | cut -c1-80)
printf '@@vipd event=%s ip=%s mask=%s lease=%s serverid=%s message=%s\\n' "$1" "$ip" "$mask" "$lease" "$serverid" "$msg"
exit 0
`;

function leaseFrom(ip: string, prefixLength: number, leaseSeconds: number, serverId: string | null): DhcpLease {
  const now = Date.now();
  const at = (fraction: number): string => new Date(now + leaseSeconds * 1000 * fraction).toISOString();
  return {
    ip,
    prefixLength,
    leaseSeconds,
    serverId,
    boundAt: new Date(now).toISOString(),
    renewAt: at(0.5),
    rebindAt: at(0.875),
    expiresAt: at(1),
  };
}

export function parseHookLine(line: string): Record<string, string> | null {
  if (!line.startsWith('@@vipd ')) return null;
  const fields: Record<string, string> = {};
  for (const pair of line.slice(7).split(' ')) {
    const at = pair.indexOf('=');
    if (at > 0) fields[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return fields;
}

export interface DhcpClientOptions {
  interfaceName: string;
  /** Option 50: the address to ask for (configured, or the one leased last time). */
  requestedIp: string | null;
  logger: Logger;
  onChange: (state: DhcpState) => void;
}

/**
 * Runs busybox udhcpc in the foreground on the VIP's macvlan. udhcpc does the protocol:
 * retransmission with backoff, renew at T1, rebind at T2, NAK, expiry, and DHCPDECLINE
 * when its ARP check (-a) finds the offered address in use.
 */
export class DhcpClient {
  private child: ChildProcess | null = null;
  private current: DhcpState = { state: 'requesting' };
  private lastLease: DhcpLease | null = null;
  /** Monotonic time of the last bound/renew, for the lease expiry check. */
  private boundAtMs = 0;
  /** Resolves when udhcpc reports deconfig: how stop() knows the DHCPRELEASE went out. */
  private deconfigWaiter: (() => void) | null = null;
  /** Monotonic expiry of an adopted lease; null once udhcpc has bound a lease of its own. */
  private adoptedUntilMs: number | null = null;
  private adoptedTimer: NodeJS.Timeout | null = null;
  private releasing = false;

  constructor(private readonly options: DhcpClientOptions) {}

  get state(): DhcpState {
    return this.current;
  }

  get running(): boolean {
    return this.child !== null;
  }

  /**
   * Starts bound, from a lease confirmed outside udhcpc, so the VIP can be served before
   * udhcpc's own exchange (discover, offer, request, ARP check) completes. Call before
   * start(); udhcpc then takes over the lease. Until it reports its own bound, its start-up
   * deconfig is ignored, and if it never does, the state turns lost when the lease expires.
   */
  adoptLease(lease: AdoptedLease): void {
    if (this.child) throw new Error('adoptLease must be called before start()');
    const full = leaseFrom(lease.ip, lease.prefixLength, lease.leaseSeconds, lease.serverId);
    this.lastLease = full;
    this.boundAtMs = monotonicMs();
    this.adoptedUntilMs = this.boundAtMs + lease.leaseSeconds * 1000;
    this.armAdoptedExpiry();
    this.options.logger.info({ event: 'adopted', ip: full.ip, leaseSeconds: full.leaseSeconds }, 'DHCP lease');
    this.setState({ state: 'bound', lease: full });
  }

  private armAdoptedExpiry(): void {
    if (this.adoptedUntilMs === null) return;
    const delay = Math.max(0, Math.min(this.adoptedUntilMs - monotonicMs(), MAX_TIMER_MS));
    this.adoptedTimer = setTimeout(() => {
      this.adoptedTimer = null;
      if (this.adoptedUntilMs === null) return;
      if (monotonicMs() < this.adoptedUntilMs) {
        this.armAdoptedExpiry();
        return;
      }
      this.endAdoption();
      const reason = 'the DHCP lease expired: udhcpc never renewed it';
      this.options.logger.warn({ reason }, 'lost the DHCP lease');
      this.setState({ state: 'lost', reason, lease: this.lastLease });
    }, delay);
    this.adoptedTimer.unref();
  }

  private endAdoption(): void {
    this.adoptedUntilMs = null;
    if (this.adoptedTimer !== null) clearTimeout(this.adoptedTimer);
    this.adoptedTimer = null;
  }

  start(): void {
    if (this.child) return;
    const args = ['-f', '-i', this.options.interfaceName, '-s', installUdhcpcHook(HOOK_SCRIPT), '-t', '3', '-T', '1', '-A', '2', '-a200'];
    if (this.options.requestedIp) args.push('-r', this.options.requestedIp);
    // udhcpc must not outlive the agent: an orphan would keep renewing with the VIP's MAC
    // from a node that no longer holds it.
    const child = spawn('setpriv', ['--pdeathsig', 'SIGKILL', '--', 'udhcpc', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    if (this.adoptedUntilMs === null) this.setState({ state: 'requesting' });
    createInterface({ input: child.stdout! }).on('line', (line) => this.onLine(line));
    createInterface({ input: child.stderr! }).on('line', (line) => this.options.logger.debug({ udhcpc: line }, 'udhcpc'));
    child.on('error', (error) => this.options.logger.error({ err: error.message }, 'could not run udhcpc'));
    child.on('exit', (code, signal) => {
      if (this.child === child) {
        this.child = null;
        this.options.logger.warn({ code, signal }, 'udhcpc exited');
      }
    });
    this.options.logger.info({ interface: this.options.interfaceName, requestedIp: this.options.requestedIp }, 'started the DHCP client');
  }

  private onLine(line: string): void {
    const fields = parseHookLine(line);
    if (!fields) {
      this.options.logger.debug({ udhcpc: line }, 'udhcpc');
      return;
    }
    const event = fields['event'];
    if (event === 'deconfig') this.deconfigWaiter?.();
    // udhcpc always deconfigures as it starts; that says nothing about an adopted lease.
    if (event === 'deconfig' && this.adoptedUntilMs !== null && monotonicMs() < this.adoptedUntilMs) {
      this.options.logger.debug('udhcpc deconfig ignored: the adopted lease is still valid');
      return;
    }
    if (event === 'bound' || event === 'renew' || event === 'nak') this.endAdoption();
    if ((event === 'bound' || event === 'renew') && fields['ip']) {
      const leaseSeconds = Number(fields['lease'] || '0');
      const lease = leaseFrom(fields['ip'], prefixLengthOfNetmask(fields['mask']), leaseSeconds, fields['serverid'] || null);
      this.lastLease = lease;
      this.boundAtMs = monotonicMs();
      this.options.logger.info({ event, ip: lease.ip, leaseSeconds }, 'DHCP lease');
      this.setState({ state: 'bound', lease });
    } else if (event === 'nak') {
      this.options.logger.warn({ message: fields['message'] }, 'the DHCP server refused the lease (NAK)');
      this.setState({ state: 'lost', reason: `the DHCP server sent a NAK${fields['message'] ? `: ${fields['message']}` : ''}`, lease: this.lastLease });
    } else if (event === 'deconfig' && this.current.state === 'bound' && !this.releasing) {
      // From bound, without a NAK (handled above) or our own release, udhcpc only deconfigures
      // when the lease ran out with no server answering its renew and rebind requests.
      const reason = 'the DHCP lease expired: no server answered past T2';
      this.options.logger.warn({ reason, heldForMs: monotonicMs() - this.boundAtMs }, 'lost the DHCP lease');
      this.setState({ state: 'lost', reason, lease: this.lastLease });
    } else if (event === 'leasefail' && this.current.state === 'requesting') {
      // Only a first lease that never came: after an expiry or a NAK, udhcpc keeps asking and
      // failing, and the reason the lease was lost is what the operator needs to see.
      this.setState({ state: 'lost', reason: 'no DHCP server answered', lease: this.lastLease });
    }
  }

  private setState(state: DhcpState): void {
    this.current = state;
    this.options.onChange(state);
  }

  /** Stops udhcpc; with release, it sends DHCPRELEASE first (SIGUSR2) so the server frees the address. */
  async stop(release: boolean): Promise<void> {
    this.endAdoption();
    const child = this.child;
    if (!child) return;
    this.child = null;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (release && this.current.state === 'bound') {
      this.releasing = true;
      const released = new Promise<void>((resolve) => {
        this.deconfigWaiter = resolve;
      });
      child.kill('SIGUSR2');
      await Promise.race([released, new Promise((resolve) => setTimeout(resolve, 1000))]);
      this.deconfigWaiter = null;
      this.options.logger.info('sent DHCPRELEASE');
    }
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 1000))]);
    child.kill('SIGKILL');
  }
}
