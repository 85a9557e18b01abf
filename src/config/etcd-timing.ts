/**
 * Raft timing for the embedded etcd members, derived from the holder's fencing window
 * instead of etcd's WAN-safe defaults (100 ms heartbeat, 1 s election timeout).
 *
 * While etcd elects a leader no write commits, so the holder's renewals fail; it keeps the
 * VIP only if the election ends before its fencing deadline (docs/safety.md, "Riding out an
 * etcd leader election"). etcd's followers wait a randomized [ET, 2·ET) without a heartbeat
 * before they campaign (raft's randomizedElectionTimeout), then need a pre-vote and a vote
 * round and one commit: about 2·ET plus two heartbeats at worst.
 */
import type { ElectionConfig } from './config';

export interface EtcdTiming {
  heartbeatMs: number;
  electionTimeoutMs: number;
}

/** A node's scheduler jitter alone can miss shorter heartbeats on a busy 2-core box. */
export const MIN_HEARTBEAT_MS = 10;
/** etcd refuses an election timeout under 5 heartbeats. */
const MIN_TICKS = 5;
/** etcd's own ratio between the two, kept while it fits. */
const PREFERRED_TICKS = 10;
/**
 * The shortest derived timeout: at 50 ms (5 ticks) the lab's busy members lost their leader
 * every few seconds (pre-vote kept the leader, but each such member refused its clients).
 */
const MIN_DERIVED_ELECTION_TIMEOUT_MS = PREFERRED_TICKS * MIN_HEARTBEAT_MS;
/** etcd's default; nothing gains from a longer one on one segment. */
const MAX_ELECTION_TIMEOUT_MS = 1000;

/** The time an etcd leader election can leave writes unanswered, at worst. */
export function worstElectionMs(timing: EtcdTiming): number {
  return 2 * timing.electionTimeoutMs + 2 * timing.heartbeatMs;
}

/** The shortest: followers heard the last heartbeat just before the leader died. */
export function bestElectionMs(timing: EtcdTiming): number {
  return timing.electionTimeoutMs - timing.heartbeatMs;
}

/**
 * How long the holder can go without an acknowledged renewal and keep its fencing deadline:
 * the window, less the margin, less the age of the last renewal (one interval). The default
 * profile's kernel lifetime ends 0.4 s before that deadline (holding/vip-address.ts), so an
 * etcd election longer than about 0.9 s still drops the VIP there. A timeout derived from
 * that shorter budget (400 ms) was tried and failed the lab twice in five full runs (most
 * likely an etcd leader change of its own, and a failed join), so this budget stays until
 * that is measured.
 */
export function rideOutBudgetMs(election: ElectionConfig): number {
  return fencingWindowMs(election) - election.fencingMarginMs - election.renewIntervalMs;
}

function fencingWindowMs(election: ElectionConfig): number {
  return election.profile === 'fast' ? election.holdTimeoutMs : election.leaseTtlSeconds * 1000;
}

/** The heartbeat for an election timeout: a tenth, never under the floor. */
export function heartbeatFor(electionTimeoutMs: number): number {
  return Math.max(MIN_HEARTBEAT_MS, Math.floor(electionTimeoutMs / PREFERRED_TICKS));
}

/**
 * The longest election timeout whose worst election fits the ride-out budget, at least 10
 * heartbeats of 10 ms. The fast profile's budget (200 − 40 − 40 = 120 ms) sits below that
 * floor's worst case (220 ms): there an etcd leader election usually outlasts the holder's
 * deadline, and the followers' rule (docs/safety.md) keeps the VIP where it was.
 */
export function deriveEtcdTiming(election: ElectionConfig): EtcdTiming {
  const budget = rideOutBudgetMs(election);
  // worst = 2·ET + 2·ET/10 = 2.2·ET while the heartbeat is a tenth.
  let electionTimeoutMs = Math.floor(budget / 2.2 / 10) * 10;
  electionTimeoutMs = Math.min(MAX_ELECTION_TIMEOUT_MS, Math.max(MIN_DERIVED_ELECTION_TIMEOUT_MS, electionTimeoutMs));
  return { heartbeatMs: heartbeatFor(electionTimeoutMs), electionTimeoutMs };
}

/**
 * Why an explicit election timeout would flap, or null if it can work: etcd's own floor of
 * 5 heartbeats of at least 10 ms, and an election that cannot end before the holder's
 * fencing deadline even at its quickest (the VIP would drop at every change of etcd leader).
 */
export function timingProblem(electionTimeoutMs: number, election: ElectionConfig): string | null {
  const timing = { heartbeatMs: heartbeatFor(electionTimeoutMs), electionTimeoutMs };
  if (electionTimeoutMs < MIN_TICKS * MIN_HEARTBEAT_MS) {
    return `must be at least ${MIN_TICKS * MIN_HEARTBEAT_MS}ms: ${MIN_TICKS} heartbeats of at least ${MIN_HEARTBEAT_MS}ms, or etcd's leader changes whenever a busy node misses a beat`;
  }
  const fenceMs = fencingWindowMs(election) - election.fencingMarginMs;
  if (bestElectionMs(timing) >= fenceMs) {
    return `is too long for this election profile: even the quickest etcd leader election (${bestElectionMs(timing)}ms) outlasts the holder's ${fenceMs}ms fencing deadline, so the VIP would drop at every change of etcd leader; leave it unset to derive it (${deriveEtcdTiming(election).electionTimeoutMs}ms)`;
  }
  return null;
}
