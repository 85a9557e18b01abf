/**
 * A DNS server for the lab: dnsmasq in a namespace of its own on the segment, answering
 * only the names it is given, and a way to run a command whose resolver points at it.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from './lab';
import { run, waitFor, type CommandResult } from './shell';

export const DNS_SERVER_IP = '192.0.2.4';

export interface LabDns {
  /** A resolv.conf naming the lab's DNS server only. */
  resolvConf: string;
  namespace: string;
}

/** Starts dnsmasq as a DNS server (no DHCP, no upstream) for `records` (name → address). */
export async function startLabDns(lab: Lab, records: Record<string, string>): Promise<LabDns> {
  const namespace = await lab.addStation('dn', [`${DNS_SERVER_IP}/24`]);
  const args = [
    '--no-daemon', '--port=53', '--no-resolv', '--no-hosts', '--bind-interfaces', `--listen-address=${DNS_SERVER_IP}`,
    `--pid-file=${join(lab.dir, 'dns.pid')}`, '--log-queries', '--log-facility=-',
    ...Object.entries(records).map(([name, address]) => `--address=/${name}/${address}`),
  ];
  // Runs until the lab removes its namespace, which kills every process in it.
  spawn('nsenter', [`--net=/run/netns/${namespace}`, '--', '/usr/sbin/dnsmasq', ...args], { stdio: 'ignore' }).unref();
  await waitFor('dnsmasq to serve DNS', async () => (await run('ip', ['netns', 'exec', namespace, 'ss', '-lun'])).stdout.includes(`${DNS_SERVER_IP}:53 `), 10_000);
  const resolvConf = join(lab.dir, 'resolv.conf');
  writeFileSync(resolvConf, `nameserver ${DNS_SERVER_IP}\noptions timeout:1 attempts:2\n`);
  return { resolvConf, namespace };
}

/**
 * Runs a command in a node's network namespace and in a mount namespace of its own, where
 * /etc/resolv.conf is `resolvConf`: the host's file is untouched, and processes the command
 * starts (a background agent) keep that view.
 */
export async function runWithResolver(namespace: string, resolvConf: string, command: string, args: string[], timeoutMs: number): Promise<CommandResult> {
  const script = 'mount --bind "$0" /etc/resolv.conf && exec nsenter --net="/run/netns/$1" -- "${@:2}"';
  return await run('unshare', ['--mount', '--propagation', 'private', '--', 'bash', '--norc', '--noprofile', '-c', script, resolvConf, namespace, command, ...args], timeoutMs);
}
