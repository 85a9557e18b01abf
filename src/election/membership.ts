import { InputError } from '../config/schema-check';
import type { EtcdStore } from './etcd-store';
import type { ClusterKeys } from './keys';

/** A node's registration: what other nodes need to check their own configuration against. */
export interface NodeRecord {
  name: string;
  interface: string;
  ip: string;
  prefixLength: number;
  mac: string;
  registeredAt: string;
}

/** The VIP settings every node of the cluster must agree on. */
export interface ClusterSettings {
  address: string;
  mode: 'static' | 'dhcp';
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
   * The first node writes the cluster's VIP settings; every later node must match them,
   * or two nodes could announce two different management addresses.
   */
  async agreeOnSettings(settings: ClusterSettings): Promise<void> {
    const stored = await this.store.putIfAbsent(this.keys.settings, JSON.stringify(settings));
    const existing = JSON.parse(stored.value) as ClusterSettings;
    if (existing.address !== settings.address) {
      throw new InputError(
        'vip.address',
        `this cluster's VIP is ${existing.address}, not ${settings.address}: every node must use the same management address`,
      );
    }
    if (existing.mode !== settings.mode) {
      throw new InputError('vip.mode', `this cluster's VIP mode is ${existing.mode}, not ${settings.mode}`);
    }
  }

  /** Checks the VIP and this node against every other registration. Writes nothing. */
  async checkAgainstOthers(self: NodeRecord, vip: string): Promise<void> {
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
      if (other.ip === vip) {
        throw new InputError('vip.address', `${vip} is the management IP of node "${other.name}"; the VIP must differ from every node IP`);
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
