import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { monotonicMs } from '../election/fencing';

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

function maskToPrefix(mask: string): number {
  return mask
    .split('.')
    .map((octet) => Number(octet).toString(2).replace(/0/g, '').length)
    .reduce((sum, bits) => sum + bits, 0);
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
  private static hookPath: string | null = null;
  /** Monotonic time of the last bound/renew, for the lease expiry check. */
  private boundAtMs = 0;
  /** Resolves when udhcpc reports deconfig: how stop() knows the DHCPRELEASE went out. */
  private deconfigWaiter: (() => void) | null = null;

  constructor(private readonly options: DhcpClientOptions) {}

  get state(): DhcpState {
    return this.current;
  }

  get running(): boolean {
    return this.child !== null;
  }

  private static hook(): string {
    if (!DhcpClient.hookPath) {
      const dir = mkdtempSync(join(tmpdir(), 'vipd-dhcp-'));
      const path = join(dir, 'udhcpc-hook.sh');
      writeFileSync(path, HOOK_SCRIPT, { mode: 0o700 });
      chmodSync(path, 0o700);
      DhcpClient.hookPath = path;
    }
    return DhcpClient.hookPath;
  }

  start(): void {
    if (this.child) return;
    const args = ['-f', '-i', this.options.interfaceName, '-s', DhcpClient.hook(), '-t', '3', '-T', '1', '-A', '2', '-a200'];
    if (this.options.requestedIp) args.push('-r', this.options.requestedIp);
    // udhcpc must not outlive the agent: an orphan would keep renewing with the VIP's MAC
    // from a node that no longer holds it.
    const child = spawn('setpriv', ['--pdeathsig', 'SIGKILL', '--', 'udhcpc', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.setState({ state: 'requesting' });
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
    if ((event === 'bound' || event === 'renew') && fields['ip']) {
      const leaseSeconds = Number(fields['lease'] || '0');
      const now = Date.now();
      const at = (fraction: number): string => new Date(now + leaseSeconds * 1000 * fraction).toISOString();
      const lease: DhcpLease = {
        ip: fields['ip'],
        prefixLength: fields['mask'] ? maskToPrefix(fields['mask']) : 32,
        leaseSeconds,
        serverId: fields['serverid'] || null,
        boundAt: new Date(now).toISOString(),
        renewAt: at(0.5),
        rebindAt: at(0.875),
        expiresAt: at(1),
      };
      this.lastLease = lease;
      this.boundAtMs = monotonicMs();
      this.options.logger.info({ event, ip: lease.ip, leaseSeconds }, 'DHCP lease');
      this.setState({ state: 'bound', lease });
    } else if (event === 'nak') {
      this.options.logger.warn({ message: fields['message'] }, 'the DHCP server refused the lease (NAK)');
      this.setState({ state: 'lost', reason: `the DHCP server sent a NAK${fields['message'] ? `: ${fields['message']}` : ''}`, lease: this.lastLease });
    } else if (event === 'deconfig' && this.current.state === 'bound') {
      const expired = monotonicMs() - this.boundAtMs >= (this.lastLease?.leaseSeconds ?? 0) * 1000;
      const reason = expired ? 'the DHCP lease expired: no server answered past T2' : 'udhcpc dropped the lease';
      this.options.logger.warn({ reason }, 'lost the DHCP lease');
      this.setState({ state: 'lost', reason, lease: this.lastLease });
    } else if (event === 'leasefail' && this.current.state !== 'bound') {
      this.setState({ state: 'lost', reason: 'no DHCP server answered', lease: this.lastLease });
    }
  }

  private setState(state: DhcpState): void {
    this.current = state;
    this.options.onChange(state);
  }

  /** Stops udhcpc; with release, it sends DHCPRELEASE first (SIGUSR2) so the server frees the address. */
  async stop(release: boolean): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (release && this.current.state === 'bound') {
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
