/**
 * Every record vipd keeps in etcd, with its parser: the product's schema. The keys they live
 * under are in ./keys.ts. Security's own records (the CA, tokens, the uploaded certificate)
 * are encoded by src/security, which owns their secrets.
 */
import type { HookEvent } from '../config/config';
import type { StoredValue } from './etcd-store';

export type { HookEvent };

// ---- reading a record strictly, for status and doctor ----

/** A value in etcd that vipd cannot read: reported as such, not as etcd being unreachable. */
export class StoredDataError extends Error {}

/** Parses a JSON value read from etcd, naming the key when it is damaged. */
export function parseStored<T>(key: string, value: string | undefined): T | null {
  if (value === undefined) return null;
  try {
    return JSON.parse(value) as T;
  } catch {
    throw new StoredDataError(`the value stored at ${key} is not valid JSON; fix or delete it with etcdctl`);
  }
}

// ---- the election: leader, release, handoff, move request ----

/** What the leader key says about the holder. */
export interface LeaderRecord {
  node: string;
  ip: string;
  mac: string;
  /** Wall-clock time the holder took the VIP, ISO 8601. */
  since: string;
  /** Set when the key was taken over in place (fast profile), where the create revision stays. */
  term?: number;
}

export interface Leader extends LeaderRecord {
  /** The fencing number: grows with every change of holder. */
  term: number;
}

/** How the last holder let go (written in the same transaction as the release). */
export interface ReleaseRecord {
  node: string;
  term: number;
  reason: string;
  /** The holder removed the VIP before releasing: the next holder need not probe for it. */
  vipRemoved: boolean;
  time: string;
}

/** A planned move under way: only `to` may take the vacant key. */
export interface HandoffRecord {
  from: string;
  to: string;
  term: number;
  reason: string;
}

/** A request for a planned move, written by `vipd move` or the API. */
export interface MoveRequest {
  /** Names the request in the answer to the caller and in the handoff's reason. */
  id?: string;
  to: string;
  requestedBy: string;
  requestedAt: string;
  /** Set when the holder asks to leave because its health checks fail (issue 13): the hooks' cause. */
  cause?: 'health';
  /** With cause health: which checks fail and how. */
  why?: string;
}

export function parseLeader(stored: StoredValue | null): Leader | null {
  if (!stored) return null;
  try {
    const record = JSON.parse(stored.value) as LeaderRecord;
    return { ...record, term: record.term ?? stored.createRevision };
  } catch {
    return null;
  }
}

/** A record read from etcd, or null when the key is absent or its value is not JSON. */
export function parseRecord<T>(stored: StoredValue | null): T | null {
  if (!stored) return null;
  try {
    return JSON.parse(stored.value) as T;
  } catch {
    return null;
  }
}

// ---- membership: nodes and the settings they share ----

/** A node's registration: what other nodes need to check their own configuration against. */
export interface NodeRecord {
  name: string;
  interface: string;
  ip: string;
  prefixLength: number;
  mac: string;
  /** The management interface's MTU: every node on the segment should agree. */
  mtu: number;
  registeredAt: string;
  /** The node holds the cluster key: it can issue certificates and serve joins (absent: no). */
  signer?: boolean;
}

/** The VIP settings every node of the cluster must agree on. */
export interface ClusterSettings {
  /** Static: the VIP. DHCP: the requested IP, if one was configured. */
  address: string | null;
  mode: 'static' | 'dhcp';
  /** DHCP: the VIP's own MAC, the same on every node. */
  hwaddr: string | null;
}

// ---- the history of moves ----

/** One change of holder, as users see it in the history and the live stream. */
export interface MoveEvent {
  from: string | null;
  to: string | null;
  reason: string;
  term: number | null;
  time: string;
}

// ---- DHCP mode ----

/** What the holder publishes about its DHCP lease, for status on every node. */
export interface PublishedDhcpState {
  holder: string;
  hwaddr: string;
  requestedIP: string | null;
  state: 'requesting' | 'bound' | 'lost';
  reason: string | null;
  leasedIP: string | null;
  leaseSeconds: number | null;
  boundAt: string | null;
  renewAt: string | null;
  rebindAt: string | null;
  expiresAt: string | null;
  updatedAt: string;
}

// ---- health checks (issue 13) ----

/** One probe's outcome, as status shows it. */
export interface CheckResultRecord {
  ok: boolean;
  /** One line: "HTTP 503", "connection refused", "timed out after 500ms and was killed". */
  detail: string;
  /** A command's output, cut short. */
  output: string;
  durationMs: number;
  time: string;
}

/** One check's state after fall/rise: passing flips to failing after `fall` failures in a row, back after `rise` successes. */
export interface CheckStatusRecord {
  name: string;
  kind: 'http' | 'tcp' | 'command';
  /** The URL without its query, host:port, or the program: never headers or arguments. */
  target: string;
  passing: boolean;
  /** When `passing` last changed (or the agent started). */
  since: string;
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  fall: number;
  rise: number;
  lastResult: CheckResultRecord | null;
}

/** A node's health as it publishes it: healthy while every check passes (a node without checks always is). */
export interface NodeHealthRecord {
  node: string;
  healthy: boolean;
  /** Names of the checks not passing, for status and the reason of a health move. */
  failing: string[];
  /** When `healthy` last changed (or the agent started). */
  since: string;
  checks: CheckStatusRecord[];
  updatedAt: string;
}

/**
 * A node's verdict as the history and the live stream show it: healthy, or unhealthy with
 * each failing check and its last result ({ check: 'api', detail: 'HTTP 503' }).
 */
export interface HealthEvent {
  node: string;
  healthy: boolean;
  failing: Array<{ check: string; detail: string | null }>;
  /** When the verdict was reached. */
  time: string;
}

export function healthEventOf(record: NodeHealthRecord): HealthEvent {
  const failing = record.checks.filter((check) => !check.passing).map((check) => ({ check: check.name, detail: check.lastResult?.detail ?? null }));
  return { node: record.node, healthy: record.healthy, failing, time: record.since };
}

/** A stored health event, or null when it is damaged. */
export function parseHealthEvent(value: string): HealthEvent | null {
  try {
    const event = JSON.parse(value) as HealthEvent;
    return typeof event.node === 'string' && typeof event.healthy === 'boolean' && Array.isArray(event.failing) && typeof event.time === 'string' ? event : null;
  } catch {
    return null;
  }
}

/** A stored health record, or null when it is damaged (its node then counts as unknown). */
export function parseHealthRecord(value: string): NodeHealthRecord | null {
  try {
    const record = JSON.parse(value) as NodeHealthRecord;
    return typeof record.node === 'string' && typeof record.healthy === 'boolean' && Array.isArray(record.checks) && Array.isArray(record.failing) ? record : null;
  } catch {
    return null;
  }
}

// ---- node preference and maintenance (issue 14) ----

/** A cordoned node takes the VIP only when no uncordoned healthy node runs; a strict one never. */
export interface CordonRecord {
  node: string;
  strict: boolean;
  /** Who cordoned it: "vipd cordon on HOST" or "API token ID". */
  by: string;
  reason: string | null;
  time: string;
}

/** The priority a node runs with: higher is preferred. */
export interface PriorityRecord {
  node: string;
  priority: number;
  /** "config" (its agent, at start or reload) or who set it through the API. */
  source: string;
  time: string;
}

export const ADMIN_ACTIONS = ['cordon', 'uncordon', 'priority', 'reload', 'reload-refused'] as const;
export type AdminAction = (typeof ADMIN_ACTIONS)[number];

/** An operator's action on a node, as the history and the live stream show it. */
export interface AdminEvent {
  node: string;
  action: AdminAction;
  /** One line: "cordoned (strict) by vipd cordon on host-1", "refused: vip.address cannot change while running". */
  message: string;
  time: string;
}

export function parseCordonRecord(value: string): CordonRecord | null {
  try {
    const record = JSON.parse(value) as CordonRecord;
    return typeof record.node === 'string' && typeof record.strict === 'boolean' ? record : null;
  } catch {
    return null;
  }
}

export function parsePriorityRecord(value: string): PriorityRecord | null {
  try {
    const record = JSON.parse(value) as PriorityRecord;
    return typeof record.node === 'string' && Number.isInteger(record.priority) ? record : null;
  } catch {
    return null;
  }
}

export function parseAdminEvent(value: string): AdminEvent | null {
  try {
    const event = JSON.parse(value) as AdminEvent;
    return typeof event.node === 'string' && (ADMIN_ACTIONS as readonly string[]).includes(event.action) && typeof event.message === 'string' && typeof event.time === 'string' ? event : null;
  } catch {
    return null;
  }
}

// ---- hooks: why the VIP came or went, runs and required-hook failures ----

/** Why the VIP came or went, as a small fixed set: metric labels and VIPD_CAUSE. */
export const TRANSITION_CAUSES = ['acquired', 'released', 'fenced', 'lease_lost', 'handoff', 'link_down', 'stopping', 'dhcp_lost', 'health'] as const;
export type TransitionCause = (typeof TRANSITION_CAUSES)[number];

/** How a hook attempt failed: metric labels. */
export const HOOK_ATTEMPT_FAILURES = ['exit', 'timeout', 'error', 'http'] as const;
export type AttemptFailure = (typeof HOOK_ATTEMPT_FAILURES)[number];

/** What one attempt of a hook left: a command's exit and output, or a webhook's status and body (in stdout). */
export interface HookAttemptRecord {
  /** One line for logs and status: "exit code 1", "timed out after 10000ms", "HTTP 502". */
  detail: string;
  exitCode: number | null;
  signal: string | null;
  httpStatus: number | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  durationMs: number;
}

/** One hook run (all its attempts) as the history keeps it: the last attempt plus context. Never holds arguments or headers. */
export interface HookRunRecord extends HookAttemptRecord {
  node: string;
  hook: string;
  event: HookEvent;
  cause: TransitionCause;
  term: number | null;
  required: boolean;
  outcome: 'ok' | 'failed' | 'dropped';
  attempts: number;
  time: string;
}

/** A required acquire hook failed and the node gave the VIP up: status shows it until that node's hooks succeed again. */
export interface HookFailureRecord {
  node: string;
  hook: string;
  term: number | null;
  reason: string;
  time: string;
  /** The node stays out of the election until then. */
  cooldownUntil: string;
}

// ---- how the cluster's store is run ----

/** How the cluster's store is run, written once by `vipd init`. */
export type StoreInfo =
  | { kind: 'embedded'; maxVoters: number }
  /** manageAccess: the operator let vipd keep etcd's users and roles (`vipd init --etcd-manage-access`). */
  | { kind: 'external'; endpoints: string[]; ca: string | null; manageAccess?: boolean };
