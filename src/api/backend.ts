import type { MoveAccepted } from '../election/move-request';
import type { ClusterChange } from '../status/changes';
import type { AdminEvent, CheckStatusRecord, HealthEvent, MoveEvent } from '../store/records';
import type { ManagementAddress, NodeCordon } from '../status/management-address';

export interface NodeStatus {
  name: string;
  ip: string;
  healthy: boolean;
  lastSeen: string | null;
  holdsVip: boolean;
  /** Its health checks (issue 13): passing, failing, or unknown when it published none. */
  health: 'passing' | 'failing' | 'unknown';
  healthSince: string | null;
  checks: CheckStatusRecord[];
  /** Issue 14: the priority it runs with, and its cordon. */
  priority?: number | null;
  cordon?: NodeCordon | null;
}

/** The answer to a cordon, uncordon or priority change: the node as it is now. */
export interface NodePreference {
  node: string;
  /** False when it was so already. */
  changed: boolean;
  priority: number | null;
  cordon: NodeCordon | null;
}

// One definition each, shared with the election: the agent's requestMove() throws this very
// class, so its refusals become 409 without translation.
export { MoveRefusedError } from '../election/move-request';
export type { MoveAccepted } from '../election/move-request';
export type { ClusterChange } from '../status/changes';
/** One change of holder, as the timeline shows it (newest last in lists). */
export type { MoveEvent } from '../store/records';

/** The `vipd status -o json` object, plus the TLS facts the API adds to its status. */
export type ApiManagementAddress = ManagementAddress & {
  status: ManagementAddress['status'] & {
    /** SHA-256 of the cluster CA, colon hex: what clients pin. */
    caFingerprint?: string;
    /** Why clients may distrust the served certificate (e.g. no IP SAN for the VIP), or null. */
    certificateWarning?: string | null;
  };
};

/** What the API server needs from the node agent. */
export interface ApiBackend {
  managementAddress(): Promise<ApiManagementAddress>;
  nodes(): Promise<NodeStatus[]>;
  /** Newest last; at most `limit` of the most recent. */
  events(limit?: number): Promise<MoveEvent[]>;
  /** Health verdicts (a node turned unhealthy or healthy again), newest last; at most `limit`. */
  healthEvents(limit?: number): Promise<HealthEvent[]>;
  /** Operators' actions on nodes (issue 14), newest last; at most `limit`. */
  adminEvents?(limit?: number): Promise<AdminEvent[]>;
  /** Issue 14: keeps the VIP off a node, or lets it back; UnknownNodeError for a node not registered. */
  cordon?(node: string, options: { strict: boolean; reason: string | null; by: string }): Promise<NodePreference>;
  uncordon?(node: string, by: string): Promise<NodePreference>;
  setPriority?(node: string, priority: number, by: string): Promise<NodePreference>;
  /** Moves, node health and DHCP lease changes as they happen; returns the function that unsubscribes. */
  subscribe(listener: (change: ClusterChange) => void): () => void;
  /**
   * Checks a planned move (MoveRefusedError for an unknown or unhealthy target) and returns
   * the answer for the caller, and, unless the target holds the VIP already, the function
   * that asks the holder: called once the answer is on its way, since through the VIP the
   * node answering may be the one about to give it up.
   */
  move(to: string, requestedBy: string): Promise<{ answer: MoveAccepted; submit: (() => Promise<void>) | null }>;
  localNode(): { name: string; ip: string };
  fqdn(): string | null;
}
