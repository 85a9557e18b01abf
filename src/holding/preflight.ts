import { InputError } from '../config/schema-check';
import type { Config } from '../config/config';
import { isLinkLocalV6, sameSubnet } from './codecs/subnet';
import { VIP_MACVLAN } from './holders';
import type { InterfaceAddress, InterfaceInfo, Netlink } from './netlink';

export interface LocalFacts {
  managementInterface: InterfaceInfo;
  /** The interface address whose subnet holds the VIP: this node's management IP. */
  managementAddress: InterfaceAddress;
  /** A VIP left on the interface by an earlier run, to be removed before campaigning. */
  leftoverVip: InterfaceAddress | null;
}

/** How a VIP left by an earlier vipd run looks: a host route on the management interface with preferred lifetime 0. */
function isLeftoverVip(entry: InterfaceAddress, config: Config, managementIndex: number): boolean {
  if (config.vip.mode !== 'static') return false;
  const hostPrefix = config.vip.address.includes(':') ? 128 : 32;
  return (
    entry.interfaceIndex === managementIndex &&
    entry.address === config.vip.address &&
    entry.prefixLength === hostPrefix &&
    entry.preferredLifetime === 0
  );
}

/**
 * Checks this node's own network against the config. Reads only: on failure nothing has
 * been changed. Throws an InputError naming the field at fault.
 */
export async function checkLocalNetwork(config: Config, netlink: Netlink): Promise<LocalFacts> {
  const interfaces = await netlink.interfaces();
  const managementInterface = interfaces.find((candidate) => candidate.name === config.node.interface);
  if (!managementInterface) {
    const names = interfaces.map((candidate) => candidate.name).join(', ');
    throw new InputError('node.interface', `there is no interface "${config.node.interface}" on this node (found: ${names})`);
  }
  const addresses = await netlink.addresses();
  const leftoverVip = addresses.find((entry) => isLeftoverVip(entry, config, managementInterface.index)) ?? null;

  // A DHCP-mode macvlan left by an earlier run is not ours to check against: it is removed at start.
  const stale = new Set(interfaces.filter((link) => link.name === VIP_MACVLAN).map((link) => link.index));
  const vip = config.vip.address;
  const clash = vip ? addresses.find((entry) => entry.address === vip && entry !== leftoverVip && !stale.has(entry.interfaceIndex)) : undefined;
  if (clash) {
    const where = interfaces.find((candidate) => candidate.index === clash.interfaceIndex)?.name ?? `index ${clash.interfaceIndex}`;
    throw new InputError(
      'vip.address',
      `${vip} is already an address of this node (${where}/${clash.prefixLength}); the VIP must differ from every node IP`,
    );
  }
  const hwaddr = config.vip.mode === 'dhcp' ? config.vip.hwaddr : null;
  if (hwaddr) {
    const owner = interfaces.find((link) => link.mac === hwaddr && !stale.has(link.index) && link.kind !== 'macvlan');
    if (owner) throw new InputError('vip.hwaddr', `${hwaddr} is the MAC of this node's ${owner.name}; the VIP needs a MAC of its own`);
  }

  const own = addresses.filter(
    (entry) => entry.interfaceIndex === managementInterface.index && entry !== leftoverVip && !isLinkLocalV6(entry.address),
  );
  // DHCP mode without a requested IP: the management address is the interface's IPv4 address.
  const managementAddress = vip
    ? own.find((entry) => sameSubnet(entry.address, vip, entry.prefixLength))
    : own.find((entry) => !entry.address.includes(':'));
  if (!managementAddress) {
    const listed = own.map((entry) => `${entry.address}/${entry.prefixLength}`).join(', ') || 'none';
    throw new InputError(
      vip ? 'vip.address' : 'node.interface',
      vip
        ? `${vip} is not inside the subnet of any address on ${config.node.interface} (${listed}); ` +
            'the VIP and every management interface must share one subnet and one layer-2 segment'
        : `${config.node.interface} has no IPv4 address (${listed}); DHCP mode needs one on the VIP's segment`,
    );
  }
  return { managementInterface, managementAddress, leftoverVip };
}
