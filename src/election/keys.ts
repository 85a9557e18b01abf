/**
 * The etcd key layout of one cluster. Everything lives under /vipd/<cluster>/ so that
 * several clusters can share one etcd.
 */
export class ClusterKeys {
  readonly prefix: string;

  constructor(cluster: string) {
    this.prefix = `/vipd/${cluster}/`;
  }

  /** Who holds the VIP: bound to the holder's lease; its create revision is the term. */
  get leader(): string {
    return `${this.prefix}leader`;
  }

  /** The cluster's VIP settings, written once by the first node. */
  get settings(): string {
    return `${this.prefix}settings`;
  }

  /** A node's registration (name, management IP, MAC): kept while the node is a member. */
  node(name: string): string {
    return `${this.prefix}nodes/${name}`;
  }

  get nodesPrefix(): string {
    return `${this.prefix}nodes/`;
  }

  /** A node's liveness: bound to its lease, gone when the agent is. */
  alive(name: string): string {
    return `${this.prefix}alive/${name}`;
  }

  get alivePrefix(): string {
    return `${this.prefix}alive/`;
  }
}
