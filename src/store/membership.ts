import type { ClusterSettings, NodeRecord } from './records';
import { randomBytes } from 'node:crypto';
import type { VipConfig } from '../config/config';
import { InputError } from '../config/schema-check';
import type { EtcdStore } from './etcd-store';
import type { ClusterKeys } from './keys';


/** A locally administered unicast MAC (IEEE 802: bit 1 set, bit 0 clear in the first octet). */
export function generateVipMac(): string {
  return ['02', '00', '00', ...[...randomBytes(3)].map((byte) => byte.toString(16).padStart(2, '0'))].join(':');
}

export class Membership {
  constructor(
    private readonly store: EtcdStore,
    private readonly keys: ClusterKeys,
  ) {}

  async listNodes(): Promise<NodeRecord[]> {
    const stored = await this.store.getPrefix(this.keys.nodesPrefix);
    return stored.flatMap((entry) => {
      try {
        return [JSON.parse(entry.value) as NodeRecord];
      } catch {
        return [];
      }
    });
  }

  async liveNodeNames(): Promise<Set<string>> {
    const stored = await this.store.getPrefix(this.keys.alivePrefix);
    return new Set(stored.map((entry) => entry.key.slice(this.keys.alivePrefix.length)));
  }

  /**
   * The first node writes the cluster's VIP settings (generating the DHCP-mode MAC once);
   * every later node must match them, or two nodes could announce two different addresses.
   */
  async agreeOnSettings(vip: VipConfig): Promise<ClusterSettings> {
    const proposed: ClusterSettings =
      vip.mode === 'static'
        ? { address: vip.address, mode: 'static', hwaddr: null }
        : { address: vip.address, mode: 'dhcp', hwaddr: vip.hwaddr ?? generateVipMac() };
    // Read first: a node that may not write the settings (src/store/access.ts) only reads them.
    const stored = (await this.store.get(this.keys.settings)) ?? (await this.store.putIfAbsent(this.keys.settings, JSON.stringify(proposed)));
    const existing = JSON.parse(stored.value) as ClusterSettings;
    if (existing.mode !== vip.mode) {
      throw new InputError('vip.mode', `this cluster's VIP mode is ${existing.mode}, not ${vip.mode}`);
    }
    if (vip.address && existing.address && existing.address !== vip.address) {
      const what = vip.mode === 'static' ? 'VIP' : 'requested IP';
      throw new InputError('vip.address', `this cluster's ${what} is ${existing.address}, not ${vip.address}: every node must use the same management address`);
    }
    if (vip.mode === 'dhcp' && vip.hwaddr && existing.hwaddr !== vip.hwaddr) {
      throw new InputError('vip.hwaddr', `this cluster's VIP MAC is ${existing.hwaddr}, not ${vip.hwaddr}`);
    }
    if (existing.hwaddr) {
      const owner = (await this.listNodes()).find((node) => node.mac === existing.hwaddr);
      if (owner) throw new InputError('vip.hwaddr', `${existing.hwaddr} is the MAC of node "${owner.name}"'s ${owner.interface}; the VIP needs a MAC of its own`);
    }
    return existing;
  }

  /** Checks the VIP and this node against every other registration. Writes nothing. */
  async checkAgainstOthers(self: NodeRecord, vipConfig: VipConfig): Promise<void> {
    const vip = vipConfig.address;
    const [nodes, live] = await Promise.all([this.listNodes(), this.liveNodeNames()]);
    for (const other of nodes) {
      if (other.name === self.name) {
        // The same machine restarting keeps its MAC; another machine with our name does not.
        if (other.mac !== self.mac && live.has(other.name)) {
          throw new InputError(
            'node.name',
            `"${self.name}" is already taken by a running node (IP ${other.ip}, MAC ${other.mac}); give this node another name`,
          );
        }
        continue;
      }
      if (vip && other.ip === vip) {
        throw new InputError('vip.address', `${vip} is the management IP of node "${other.name}"; the VIP must differ from every node IP`);
      }
      if (vipConfig.mode === 'dhcp' && vipConfig.hwaddr === other.mac) {
        throw new InputError('vip.hwaddr', `${other.mac} is the MAC of node "${other.name}"'s ${other.interface}; the VIP needs a MAC of its own`);
      }
      if (other.ip === self.ip) {
        throw new InputError('node.interface', `this node's management IP ${self.ip} is already registered by node "${other.name}"`);
      }
    }
  }

  async register(self: NodeRecord): Promise<void> {
    await this.store.put(this.keys.node(self.name), JSON.stringify(self));
  }
}
