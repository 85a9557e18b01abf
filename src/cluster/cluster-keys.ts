import type { ClusterKeys } from '../store/keys';


/** Keys `vipd init` writes beside the cluster's other keys, for `vipd join` to read. */
export function clusterSetupKeys(keys: ClusterKeys): { template: string; store: string } {
  return {
    /** The config every node shares (cluster, vip, api, election...): a joining node adds its own node and etcd sections. */
    template: `${keys.prefix}setup/config`,
    store: `${keys.prefix}setup/store`,
  };
}

/** https://IP:PORT, with brackets for IPv6. */
export function urlFor(ip: string, port: number): string {
  return `https://${ip.includes(':') ? `[${ip}]` : ip}:${port}`;
}

export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
/** Voting etcd members by default; `vipd init --etcd-voters 5` allows five. */
export const DEFAULT_VOTERS = 3;
