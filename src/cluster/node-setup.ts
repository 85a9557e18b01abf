import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { checkLocalNetwork, type LocalFacts } from '../holding/preflight';
import { resolveConfig, type Config } from '../config/config';
import { InputError } from '../config/schema-check';
import { EtcdStore } from '../store/etcd-store';
import { ClusterKeys } from '../store/keys';
import { parseLeader } from '../store/records';
import { parseMac } from '../holding/codecs/mac';
import { isLinkLocalV6, prefixLengthOfNetmask, sameSubnet } from '../holding/codecs/subnet';
import { probeForOtherHolders } from '../holding/conflict-probe';
import type { Netlink } from '../holding/netlink';
import { agentAlive, logTail, type StartedAgent } from './service';
import { writePrivateFile } from './pki';

/** An interface a person could pick as the management interface. */
export interface InterfaceChoice {
  name: string;
  mac: string;
  addresses: string[];
  usable: boolean;
}

export async function listInterfaces(netlink: Netlink): Promise<InterfaceChoice[]> {
  const [links, addresses] = await Promise.all([netlink.interfaces(), netlink.addresses()]);
  return links
    .filter((link) => link.name !== 'lo' && link.mac !== '' && link.kind !== 'macvlan')
    .map((link) => ({
      name: link.name,
      mac: link.mac,
      usable: link.usable,
      addresses: addresses
        .filter((entry) => entry.interfaceIndex === link.index && !isLinkLocalV6(entry.address))
        .map((entry) => `${entry.address}/${entry.prefixLength}`),
    }));
}

/** The interface with an address in the VIP's subnet, when the user named none. */
export async function interfaceForVip(netlink: Netlink, vip: string): Promise<string> {
  const choices = await listInterfaces(netlink);
  const matching = choices.filter((choice) =>
    choice.addresses.some((entry) => {
      const [address, prefix] = entry.split('/');
      return sameSubnet(address!, vip, Number(prefix));
    }),
  );
  if (matching.length === 1) return matching[0]!.name;
  const listed = choices.map((choice) => `${choice.name} (${choice.addresses.join(', ') || 'no address'})`).join('; ');
  if (matching.length === 0) {
    throw new InputError(
      '--interface',
      `no interface of this node has an address in the subnet of the VIP ${vip} (found: ${listed}); ` +
        'the VIP and every management interface must share one subnet and one layer-2 segment',
    );
  }
  throw new InputError('--interface', `several interfaces are in the VIP's subnet (${matching.map((choice) => choice.name).join(', ')}): name one`);
}

/** Resolves a config document and checks it against this node, as the agent will at start. */
export async function checkNode(document: Record<string, unknown>, netlink: Netlink): Promise<{ config: Config; local: LocalFacts }> {
  const config = resolveConfig(document);
  const local = await checkLocalNetwork(config, netlink);
  if (!local.managementInterface.usable) {
    throw new InputError('node.interface', `${config.node.interface} is down or has no carrier`);
  }
  return { config, local };
}

/** RFC 5227-style: two rounds of ARP probes (IPv6: DAD) for the VIP; anyone answering owns it. */
export async function checkVipUnused(interfaceName: string, ownMac: string, vip: string): Promise<void> {
  for (let round = 0; round < 2; round += 1) {
    const answering = await probeForOtherHolders({ interfaceName, ownMac: parseMac(ownMac), address: vip, windowMs: 500 });
    if (answering.length > 0) {
      throw new InputError(
        '--vip',
        `${vip} is already in use on the segment: ${answering.join(', ')} answered an ARP probe for it from ${interfaceName}; pick a free address`,
      );
    }
  }
}

/** The joining node asks for every live node's IP: each must answer with its registered MAC. */
export async function checkNodesReachable(
  interfaceName: string,
  ownMac: string,
  nodes: Array<{ name: string; ip: string; mac: string }>,
): Promise<void> {
  const results = await Promise.all(
    nodes.map(async (node) => ({
      node,
      answering: await probeForOtherHolders({ interfaceName, ownMac: parseMac(ownMac), address: node.ip, windowMs: 800 }),
    })),
  );
  const missing = results.filter((result) => !result.answering.includes(result.node.mac.toLowerCase()));
  if (missing.length === 0) return;
  const described = missing
    .map(({ node: other, answering }) => `${other.name} (${other.ip}, MAC ${other.mac}${answering.length > 0 ? `; ${answering.join(', ')} answered instead` : ''})`)
    .join(', ');
  throw new InputError(
    '--interface',
    `cannot reach ${described} over layer 2 from ${interfaceName}: no answer to an ARP probe. ` +
      'The VIP moves between nodes by ARP, so every node must be on one layer-2 segment',
  );
}

/** Nothing may be overwritten: a second init or join on a node must be undone first. */
export function checkPathsFree(configPath: string, dataDir: string): void {
  if (existsSync(configPath)) {
    throw new InputError('--config', `${configPath} already exists: this node is set up already (remove it to start over)`);
  }
  for (const entry of ['etcd', 'pki']) {
    const path = join(dataDir, entry);
    if (existsSync(path) && readdirSync(path).length > 0) {
      throw new InputError('--data-dir', `${path} is not empty: this node has been a cluster member (remove it to start over)`);
    }
  }
}

export function writeConfigFile(path: string, document: Record<string, unknown>): void {
  // No secrets in it (only paths to keys), but nobody else needs to read it either.
  writePrivateFile(path, `# written by vipd; shared settings come from the cluster\n${toYaml(document)}`, 0o600);
}

/**
 * Waits until the agent has registered its liveness in etcd (and, for the first node, someone
 * holds the VIP). Reports the agent's last log lines if it exits meanwhile.
 */
export async function waitForAgent(config: Config, started: StartedAgent, options: { needHolder: boolean; timeoutMs: number }): Promise<string | null> {
  const keys = new ClusterKeys(config.cluster);
  const store = new EtcdStore({ endpoints: config.etcd.endpoints, tls: config.etcd.tls, callTimeoutMs: 2000 });
  const deadline = Date.now() + options.timeoutMs;
  try {
    for (;;) {
      if (!agentAlive(started)) {
        throw new Error(`the agent exited during start-up; its last log lines:\n${logTail(started)}`);
      }
      try {
        const [alive, leader] = await Promise.all([store.get(keys.alive(config.node.name)), store.get(keys.leader)]);
        const holder = parseLeader(leader)?.node ?? null;
        if (alive && (!options.needHolder || holder)) return holder;
      } catch {
        // etcd is still starting: keep waiting.
      }
      if (Date.now() > deadline) {
        const where = started.how === 'background' ? `; see ${started.logPath}` : '; see journalctl -u vipd';
        throw new Error(`the agent did not come up within ${Math.round(options.timeoutMs / 1000)} s${where}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    store.close();
  }
}

const DHCP_HOOK = `#!/bin/sh
[ "$1" = bound ] && printf 'vipd-lease ip=%s mask=%s lease=%s\\n' "$ip" "$mask" "$lease"
exit 0
`;

/** A short interface name no agent uses: the agent's own is vipd-vip. */
export const INIT_MACVLAN = 'vipd-init';

/**
 * DHCP mode: gets a lease for the VIP's MAC on a temporary macvlan (busybox udhcpc, quitting
 * once bound and not releasing: the server keeps the address for this MAC), then removes the
 * macvlan. The agent later asks for the same address with the same MAC.
 */
export async function obtainDhcpLease(
  netlink: Netlink,
  parentInterface: string,
  mac: string,
  requestedIp: string | null,
): Promise<{ ip: string; prefixLength: number; leaseSeconds: number }> {
  const parent = await netlink.interfaceByName(parentInterface);
  if (!parent) throw new InputError('--interface', `there is no interface "${parentInterface}"`);
  const stale = await netlink.interfaceByName(INIT_MACVLAN);
  if (stale) await netlink.deleteLink(stale.index);
  const directory = mkdtempSync(join(tmpdir(), 'vipd-init-'));
  const hook = join(directory, 'hook.sh');
  writeFileSync(hook, DHCP_HOOK, { mode: 0o700 });
  const index = await netlink.createMacvlan(INIT_MACVLAN, parent.index, parseMac(mac));
  try {
    const args = ['-f', '-q', '-n', '-i', INIT_MACVLAN, '-s', hook, '-t', '5', '-T', '1', '-a200', ...(requestedIp ? ['-r', requestedIp] : [])];
    const output = await new Promise<string>((resolve) => {
      execFile('setpriv', ['--pdeathsig', 'SIGKILL', '--', 'udhcpc', ...args], { timeout: 20_000 }, (_error, stdout) => resolve(String(stdout)));
    });
    const match = /vipd-lease ip=(\S+) mask=(\S*) lease=(\d*)/.exec(output);
    if (!match) {
      throw new InputError('--vip-mode', `no DHCP server answered for the VIP's MAC ${mac} on ${parentInterface} within 10 s; DHCP mode needs one on the segment`);
    }
    return { ip: match[1]!, prefixLength: prefixLengthOfNetmask(match[2]), leaseSeconds: Number(match[3] || '0') };
  } finally {
    await netlink.deleteLink(index).catch(() => undefined);
    rmSync(directory, { recursive: true, force: true });
  }
}
