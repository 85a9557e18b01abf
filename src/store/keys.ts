/**
 * The etcd key layout of one cluster. Everything lives under /vipd/<cluster>/ so that
 * several clusters can share one etcd.
 */
export class ClusterKeys {
  readonly prefix: string;

  constructor(readonly cluster: string) {
    this.prefix = `/vipd/${cluster}/`;
  }

  /** Who holds the VIP: bound to the holder's lease; its create revision is the term. */
  get leader(): string {
    return `${this.prefix}leader`;
  }

  /** A planned move under way: names the node that may take the vacant leader key. */
  get handoff(): string {
    return `${this.prefix}handoff`;
  }

  /** A request for a planned move, written by `vipd move` or the API, acted on by the holder. */
  get moveRequest(): string {
    return `${this.prefix}move-request`;
  }

  /** How the last holder let go: tells the next holder whether the VIP is already gone. */
  get lastRelease(): string {
    return `${this.prefix}last-release`;
  }

  /** DHCP mode: the holder's lease as it last saw it, for status on every node. */
  get dhcp(): string {
    return `${this.prefix}dhcp`;
  }

  /** The history of VIP moves, one key per term. */
  event(term: number): string {
    return `${this.prefix}events/${String(term).padStart(20, '0')}`;
  }

  get eventsPrefix(): string {
    return `${this.prefix}events/`;
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

  /** When a node's agent was last seen alive (its liveness key vanished then). */
  lastSeen(name: string): string {
    return `${this.prefix}last-seen/${name}`;
  }

  get lastSeenPrefix(): string {
    return `${this.prefix}last-seen/`;
  }

  /** A node's health checks as it last published them (issue 13); kept after the agent stops, read beside alive/. */
  health(name: string): string {
    return `${this.prefix}health/${name}`;
  }

  get healthPrefix(): string {
    return `${this.prefix}health/`;
  }

  /** The history of health verdicts (a node turned unhealthy or healthy again), oldest first across nodes. */
  healthEvent(timeMs: number, node: string, sequence: number): string {
    return `${this.healthEventsPrefix}${String(timeMs).padStart(15, '0')}-${node}-${String(sequence).padStart(6, '0')}`;
  }

  get healthEventsPrefix(): string {
    return `${this.prefix}health-events/`;
  }

  /** A node kept off the VIP by an operator (issue 14): kept until uncordoned, across restarts. */
  cordon(name: string): string {
    return `${this.cordonsPrefix}${name}`;
  }

  get cordonsPrefix(): string {
    return `${this.prefix}cordons/`;
  }

  /** A node's priority as it runs with it: written by its agent at start and reload, or by the API. */
  priority(name: string): string {
    return `${this.prioritiesPrefix}${name}`;
  }

  get prioritiesPrefix(): string {
    return `${this.prefix}priorities/`;
  }

  /** The history of operators' actions on nodes (cordon, uncordon, priority, reload), oldest first. */
  adminEvent(timeMs: number, node: string, sequence: number): string {
    return `${this.adminEventsPrefix}${String(timeMs).padStart(15, '0')}-${node}-${String(sequence).padStart(6, '0')}`;
  }

  get adminEventsPrefix(): string {
    return `${this.prefix}admin-events/`;
  }

  get alivePrefix(): string {
    return `${this.prefix}alive/`;
  }

  /** Scratch keys of `vipd doctor`'s write timing, each bound to a short lease. */
  get doctorPrefix(): string {
    return `${this.prefix}doctor/`;
  }

  /** A join's claim on a node name: created with create_revision == 0, so one of two racing joins wins. */
  nameClaim(name: string): string {
    return `${this.prefix}claims/name/${name}`;
  }

  /** A join's claim on a management IP, taken in the same transaction as the name. */
  ipClaim(ip: string): string {
    return `${this.prefix}claims/ip/${ip}`;
  }
}

/** Where TLS material and tokens live in etcd, beside the cluster's other keys. */
export interface SecurityKeys {
  /** The cluster CA: certificate and private key, written once with putIfAbsent. */
  ca: string;
  /** The user-uploaded serving certificate, shared by every node (the VIP moves). */
  uploadedCertificate: string;
  tokensPrefix: string;
  token(id: string): string;
}

export function securityKeys(keys: ClusterKeys): SecurityKeys {
  const base = `${keys.prefix}security/`;
  return {
    ca: `${base}ca`,
    uploadedCertificate: `${base}tls/uploaded`,
    tokensPrefix: `${base}tokens/`,
    token: (id) => `${base}tokens/${id}`,
  };
}

/** Keys `vipd init` writes beside the cluster's other keys, for `vipd join` to read. */
export function clusterSetupKeys(keys: ClusterKeys): { template: string; store: string } {
  return {
    /** The config every node shares (cluster, vip, api, election...): a joining node adds its own node and etcd sections. */
    template: `${keys.prefix}setup/config`,
    store: `${keys.prefix}setup/store`,
  };
}

/** Every hook run, oldest first across nodes; the writer trims them. */
export function hookRunsPrefix(keys: ClusterKeys): string {
  return `${keys.prefix}hooks/`;
}

/** One key per node whose required acquire hook failed, until its hooks succeed again. */
export function hookFailuresPrefix(keys: ClusterKeys): string {
  return `${keys.prefix}hook-failures/`;
}
