/**
 * Which node should hold the VIP when several may (issue 14): cordons, priorities and
 * preemption, on top of the health rules of ./health-gate.ts. Pure functions, one place.
 *
 * - A cordoned node that does not hold the VIP is eligible only while no uncordoned healthy
 *   node runs; a strict cordon never is.
 * - A cordoned holder asks for a planned move to the most preferred uncordoned healthy node.
 *   With none, it keeps the VIP; under a strict cordon it gives it up.
 * - When several nodes campaign for a vacant VIP at once, the less preferred wait a little
 *   (VRRP's skew time), so the most preferred wins; the most preferred waits nothing.
 * - Preemption is only ever a planned move, asked by the most preferred node itself after it
 *   has been healthy and uncordoned for the whole delay. Never a takeover.
 */
import { decideByHealth, type HealthDecision } from './health-gate';

export type CordonState = 'none' | 'cordoned' | 'strict';

/** A running node other than this one whose checks all pass. */
export interface PeerFacts {
  name: string;
  priority: number;
  cordon: CordonState;
  /** No check failing at all right now: the only kind of node a holder leaves for (./health-gate.ts). */
  steady: boolean;
}

export interface PreferenceFacts {
  /** Why this node is unhealthy, or null when healthy. */
  unhealthy: string | null;
  /** A check has failed `fall` times in a row. */
  failed: boolean;
  holdsKey: boolean;
  cordon: CordonState;
  /** Running peers whose checks pass. */
  peers: PeerFacts[];
}

export interface PreferenceDecision extends HealthDecision {
  /** Why the holder asks to move: its health, or its cordon. */
  moveCause: 'health' | 'cordon' | null;
  /** A cordoned holder with nowhere to go keeps the VIP. */
  heldWhileCordoned: boolean;
}

/** Most preferred first: higher priority, then the name, so every node agrees on the order. */
export function byPreference<T extends { name: string; priority: number }>(nodes: T[]): T[] {
  return [...nodes].sort((a, b) => b.priority - a.priority || a.name.localeCompare(b.name));
}

export function decideEligibility(facts: PreferenceFacts): PreferenceDecision {
  const { cordon, holdsKey } = facts;
  const peers = byPreference(facts.peers);
  // A strictly cordoned peer never takes the VIP: it is nobody's reason to stand back.
  const healthyPeers = peers.filter((peer) => peer.cordon !== 'strict').map((peer) => peer.name);
  const targets = peers.filter((peer) => peer.cordon === 'none' && peer.steady).map((peer) => peer.name);
  const health = decideByHealth({ unhealthy: facts.unhealthy, failed: facts.failed, holdsKey, healthyPeers, moveTargets: targets });
  if (cordon === 'none') return { ...health, moveCause: health.moveTo ? 'health' : null, heldWhileCordoned: false };
  const label = cordon === 'strict' ? 'cordoned (strict)' : 'cordoned';
  if (holdsKey) {
    const moveTo = targets[0] ?? null;
    if (moveTo) return { eligible: true, reason: `${label} holder`, moveTo, moveCause: 'cordon', heldWhileUnhealthy: false, heldWhileCordoned: false };
    if (cordon === 'strict') return { eligible: false, reason: `${label}: never holds the VIP`, moveTo: null, moveCause: null, heldWhileUnhealthy: false, heldWhileCordoned: false };
    return { ...health, reason: `${label} holder, and no uncordoned healthy node runs`, moveCause: null, heldWhileCordoned: true };
  }
  if (cordon === 'strict') return { eligible: false, reason: `${label}: never takes the VIP`, moveTo: null, moveCause: null, heldWhileUnhealthy: false, heldWhileCordoned: false };
  const uncordoned = peers.filter((peer) => peer.cordon === 'none').map((peer) => peer.name);
  if (uncordoned.length) return { eligible: false, reason: `${label}: uncordoned healthy nodes run (${uncordoned.join(', ')})`, moveTo: null, moveCause: null, heldWhileUnhealthy: false, heldWhileCordoned: false };
  return { ...health, reason: `${label}, but no uncordoned healthy node runs; ${health.reason}`, moveCause: null, heldWhileCordoned: false };
}

export interface CampaignDelayFacts {
  priority: number;
  /** Running, healthy, uncordoned peers' priorities: the nodes that campaign beside this one. */
  competitors: number[];
  /** Priorities of uncordoned nodes registered but not running (yet): awaited only just after start. */
  starting: number[];
  /** Since this node joined the election, and how long after that it waits for preferred nodes to start. */
  sinceStartMs: number;
  startWindowMs: number;
  /** The wait per rank: small beside the profile's failover time. */
  stepMs: number;
}

/** Ranks beyond this wait no longer: a long tail of low priorities must not slow a failover. */
export const MAX_RANK = 4;

/**
 * How long this node waits before campaigning for a vacant VIP: one step for each distinct
 * priority above its own among the running candidates (0 for the most preferred, and for
 * every node when all priorities are equal). Just after start it also waits, up to the start
 * window, for a more preferred node that is registered but not running yet, as VRRP's backup
 * waits its master-down interval at start.
 */
export function campaignDelayMs(facts: CampaignDelayFacts): number {
  const higher = new Set(facts.competitors.filter((priority) => priority > facts.priority));
  const skew = Math.min(higher.size, MAX_RANK) * facts.stepMs;
  const waitingForStart = facts.sinceStartMs < facts.startWindowMs && facts.starting.some((priority) => priority > facts.priority);
  return waitingForStart ? Math.max(skew, facts.startWindowMs - facts.sinceStartMs) : skew;
}

export interface PreemptFacts {
  preempt: boolean;
  delayMs: number;
  self: string;
  priority: number;
  /** The node holding the VIP and its priority, or null when none does. */
  holder: { name: string; priority: number } | null;
  /** How long this node has been healthy and uncordoned without a break, or null if it is not now. */
  preferredForMs: number | null;
  /** Running, healthy, uncordoned peers: one more preferred than this node takes the VIP back instead. */
  candidates: Array<{ name: string; priority: number }>;
}

/** Whether this node should ask for the VIP back now; `waitMs` says how long until it may, when only the delay stands in the way. */
export function decidePreempt(facts: PreemptFacts): { preempt: boolean; waitMs: number | null } {
  const no = { preempt: false, waitMs: null };
  const { holder } = facts;
  if (!facts.preempt || !holder || holder.name === facts.self || facts.preferredForMs === null) return no;
  if (holder.priority >= facts.priority) return no;
  const first = byPreference([...facts.candidates.filter((node) => node.name !== holder.name), { name: facts.self, priority: facts.priority }])[0];
  if (first?.name !== facts.self) return no;
  if (facts.preferredForMs < facts.delayMs) return { preempt: false, waitMs: facts.delayMs - facts.preferredForMs };
  return { preempt: true, waitMs: null };
}
