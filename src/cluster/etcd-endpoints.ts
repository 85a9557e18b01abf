/** Where the cluster's etcd members listen, and how many vote. */
/** https://IP:PORT, with brackets for IPv6. */
export function urlFor(ip: string, port: number): string {
  return `https://${ip.includes(':') ? `[${ip}]` : ip}:${port}`;
}

export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
/** Voting etcd members by default; `vipd init --etcd-voters 5` allows five. */
export const DEFAULT_VOTERS = 3;
