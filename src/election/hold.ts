import type { ElectionConfig } from '../config/config';
import { monotonicMs } from '../clock';
import type { Leader } from '../store/records';
import type { EtcdStore, StoredValue } from '../store/etcd-store';
import type { ClusterKeys } from '../store/keys';
import { FencingDeadline } from './fencing';

/** What a hold may ask of the election it serves. */
export interface HoldHost {
  readonly store: EtcdStore;
  readonly keys: ClusterKeys;
  readonly config: ElectionConfig;
  /** The lease and the key's exact value while this node holds the key (not while handing it off). */
  held(): { leaseId: string; value: string } | null;
  /** Whether this node owns the key, handing it off included. */
  ownsKey(): boolean;
  /** Whether this node may hold the VIP now (holdingUntil() is not null). */
  holding(): boolean;
  isStale(leaseId: string): boolean;
  /** The lease to take the key with, or null while this node may not try. */
  candidateLease(): string | null;
  /** A leader record for this node, not yet written. */
  newRecord(term: number): Leader;
  /** An acknowledged renewal; `lapsed` when this node could not hold the VIP just before it. */
  renewed(sendTime: number, lapsed: boolean): void;
  /** Another write than ours holds the key now. */
  keyTaken(current: StoredValue | null): void;
  /** The key as etcd answered it, when the answer was not ours to act on. */
  saw(current: StoredValue | null): void;
  /** Whether this node is running and does not own the key. */
  following(): boolean;
  campaign(): void;
  /** Added to the hold timeout before taking over (issue 14: less preferred nodes wait longer). Only ever delays. */
  extraSilenceMs?(): number;
  /** The holder as last seen, or null. */
  leader(): Leader | null;
  /**
   * Whether the holder's node still answers on the segment (ARP or NS for its own address).
   * Asked only before a wait that is there for availability, never for safety: when etcd
   * changed leader, a live holder gets time to renew; a node that is gone does not.
   */
  holderAnswers?(holder: Leader): Promise<boolean>;
  tookOver(record: Leader, value: string, sendTime: number, previous: Leader | null, silentMs: number): Promise<void>;
  noteError(what: string, error: unknown): void;
}

/**
 * How the holding window is kept beyond the lease: nothing more in the default profile, a
 * compare-and-swap hold in the fast one. Chosen once, by profile.
 */
export interface Hold {
  start(): void;
  stop(): void;
  /** This node came to hold the key by a write sent at `sendTime`. */
  acquired(sendTime: number): void;
  /** The hold's own deadline (monotonic ms); +Infinity when the lease is the only one. */
  deadline(): number;
  /** The lease is gone: so is every renewal made under it. */
  reset(): void;
  /** The leader key as seen (null: vacant); `owned` when it is ours. */
  observed(stored: StoredValue | null, owned: boolean): void;
  /** This node may no longer take the key over. */
  stopFollowing(): void;
  /**
   * Takes back a key that still carries our lease; returns the send time its holding window
   * counts from, or null when it could not.
   */
  reclaim(stored: StoredValue, leaseId: string, readSendTime: number): Promise<number | null>;
  /**
   * A follower's poll reads the leader key and campaigns only when it is vacant, rather than
   * campaigning at once (a transaction with a put, which etcd runs through raft even when its
   * compare fails).
   */
  readonly pollReadsFirst: boolean;
}

export function holdFor(host: HoldHost): Hold {
  return host.config.profile === 'fast' ? new CompareAndSwapHold(host) : new LeaseOnly();
}

/** Default profile: the lease is the hold. */
class LeaseOnly implements Hold {
  readonly pollReadsFirst = true;
  start(): void {}
  stop(): void {}
  acquired(): void {}
  deadline(): number {
    return Infinity;
  }
  reset(): void {}
  observed(): void {}
  stopFollowing(): void {}
  async reclaim(_stored: StoredValue, _leaseId: string, readSendTime: number): Promise<number> {
    return readSendTime;
  }
}

/** How many renewals may be under way at once: one slow write must not hold up the next. */
const MAX_RENEWALS_IN_FLIGHT = 3;

/** The leader revision a follower last saw, when, and etcd's raft term then. */
interface SeenRevision {
  modRevision: number;
  atMs: number;
  raftTerm: number;
}

/**
 * Fast profile: the holder rewrites the key by compare-and-swap every renewInterval; a
 * follower that sees no write for holdTimeout on its own clock takes the key by
 * compare-and-swap against the revision it last saw. See docs/safety.md.
 */
class CompareAndSwapHold implements Hold {
  // Campaigns at once, as before: the holder writes 25 times a second here, so the followers'
  // two transactions a second are a small share, and the fast lab tests ran with this.
  readonly pollReadsFirst = false;
  private readonly fencing: FencingDeadline;
  private renewalsInFlight = 0;
  private lastSeen: SeenRevision | null = null;
  private renewTimer: NodeJS.Timeout | undefined;
  private takeoverTimer: NodeJS.Timeout | undefined;

  constructor(private readonly host: HoldHost) {
    this.fencing = new FencingDeadline(host.config.fencingMarginMs);
  }

  start(): void {
    this.renewTimer = setInterval(() => void this.renew(), this.host.config.renewIntervalMs);
  }

  stop(): void {
    clearInterval(this.renewTimer);
    clearTimeout(this.takeoverTimer);
  }

  acquired(sendTime: number): void {
    this.lastSeen = null;
    clearTimeout(this.takeoverTimer);
    this.fencing.acknowledge(sendTime, this.host.config.holdTimeoutMs);
  }

  deadline(): number {
    return this.fencing.deadline;
  }

  reset(): void {
    this.fencing.reset();
  }

  stopFollowing(): void {
    clearTimeout(this.takeoverTimer);
  }

  observed(stored: StoredValue | null, owned: boolean): void {
    if (!stored || owned) {
      clearTimeout(this.takeoverTimer);
      this.lastSeen = null;
      return;
    }
    if (this.lastSeen?.modRevision === stored.modRevision) return;
    // Seen now, so the write was sent before now: our timer can only run out late, never early.
    this.lastSeen = { modRevision: stored.modRevision, atMs: monotonicMs(), raftTerm: this.host.store.raftTerm };
    clearTimeout(this.takeoverTimer);
    this.takeoverTimer = setTimeout(() => void this.takeover(), this.host.config.holdTimeoutMs + (this.host.extraSilenceMs?.() ?? 0));
  }

  /**
   * A read alone would start a holding window no follower's timer knows of: followers time
   * the holder's silence from the last write they saw.
   */
  async reclaim(stored: StoredValue, leaseId: string): Promise<number | null> {
    const sendTime = monotonicMs();
    const result = await this.host.store.compareAndSwap(this.host.keys.leader, stored.value, leaseId, stored.modRevision);
    if (this.host.isStale(leaseId)) return null;
    if (!result.swapped) {
      this.host.saw(result.current);
      return null;
    }
    return sendTime;
  }

  private async renew(): Promise<void> {
    const held = this.host.held();
    if (!held || this.renewalsInFlight >= MAX_RENEWALS_IN_FLIGHT) return;
    this.renewalsInFlight += 1;
    const sendTime = monotonicMs();
    try {
      // Compared on our own value, not on the revision: several renewals may be in flight,
      // and none can succeed once a takeover has written another node's record.
      const result = await this.host.store.compareValueAndPut(this.host.keys.leader, held.value, held.leaseId);
      if (!this.host.ownsKey() || this.host.isStale(held.leaseId)) return;
      if (result.swapped) {
        const lapsed = !this.host.holding();
        this.fencing.acknowledge(sendTime, this.host.config.holdTimeoutMs);
        this.host.renewed(sendTime, lapsed);
      } else {
        this.host.keyTaken(result.current);
      }
    } catch (error) {
      this.host.noteError('hold renewal failed', error);
    } finally {
      this.renewalsInFlight -= 1;
    }
  }

  private async takeover(): Promise<void> {
    const seen = this.lastSeen;
    const leaseId = this.host.candidateLease();
    if (!leaseId || !seen) return;
    // Silence counts within one etcd leadership only (docs/safety.md, "Riding out an etcd
    // leader election"): if etcd changed leader since we saw the revision, the holder could
    // not write meanwhile, and its window starts again from this read, unless its node no
    // longer answers on the segment.
    try {
      const current = await this.host.store.readWithTerm(this.host.keys.leader);
      if (this.host.isStale(leaseId) || this.host.ownsKey() || this.lastSeen !== seen) return;
      if (current.stored?.modRevision !== seen.modRevision) {
        this.host.saw(current.stored);
        if (!current.stored) this.host.campaign();
        return;
      }
      if (current.raftTerm > seen.raftTerm && (await this.holderMayRenew())) {
        // Another write may have been seen during the probe: its own timer runs then.
        if (this.lastSeen === seen) this.restartSilence(seen, current.raftTerm);
        return;
      }
    } catch (error) {
      this.unanswered(seen, error);
      return;
    }
    await this.takeOverFrom(seen, leaseId);
  }

  /**
   * Whether to give the holder a new window after an etcd leader change: yes unless its node
   * is silent on the wire. Either answer is safe: the plain rule's wait has already passed.
   */
  private async holderMayRenew(): Promise<boolean> {
    const holder = this.host.leader();
    if (!holder || !this.host.holderAnswers) return true;
    return await this.host.holderAnswers(holder).catch(() => true);
  }

  /** The compare-and-swap against the revision seen, once its silence has run out. */
  private async takeOverFrom(seen: SeenRevision, leaseId: string): Promise<void> {
    if (this.lastSeen !== seen || this.host.isStale(leaseId) || !this.host.following()) return;
    const previous = this.host.leader();
    // The new term exceeds every earlier one: each was at most the revision of a write we have seen.
    const record = this.host.newRecord(seen.modRevision + 1);
    const value = JSON.stringify(record);
    const sendTime = monotonicMs();
    try {
      const result = await this.host.store.compareAndSwap(this.host.keys.leader, value, leaseId, seen.modRevision);
      if (this.host.isStale(leaseId)) return;
      if (!result.swapped) {
        this.host.saw(result.current);
        return;
      }
      await this.host.tookOver(record, value, sendTime, previous, sendTime - seen.atMs);
    } catch (error) {
      this.unanswered(seen, error);
    }
  }

  private unanswered(seen: SeenRevision, error: unknown): void {
    this.host.noteError('takeover failed', error);
    if (this.lastSeen === seen) this.takeoverTimer = setTimeout(() => void this.resumeSilence(seen), this.host.config.renewIntervalMs);
  }

  /**
   * etcd did not answer (a leader election, or our member is gone), so the holder could not
   * write either: its silence counts again from the first answered read. This only delays a
   * takeover; without it the takeover waited for the dead holder's lease, which the new etcd
   * leader had just extended.
   */
  private async resumeSilence(seen: SeenRevision): Promise<void> {
    if (!this.host.following() || this.lastSeen !== seen) return;
    try {
      const { stored, raftTerm } = await this.host.store.readWithTerm(this.host.keys.leader);
      if (!this.host.following() || this.lastSeen !== seen) return;
      if (stored?.modRevision === seen.modRevision) {
        const leaseId = this.host.candidateLease();
        if (leaseId && !(await this.holderMayRenew())) {
          // As above: a write seen during the probe runs its own timer.
          if (this.lastSeen === seen && this.host.following()) await this.takeOverFrom(seen, leaseId);
        } else if (this.lastSeen === seen) this.restartSilence(seen, raftTerm);
        return;
      }
      this.host.saw(stored);
      if (!stored) this.host.campaign();
    } catch (error) {
      this.unanswered(seen, error);
    }
  }

  /** The key is still at the revision seen, as an answered read just showed: count from now. */
  private restartSilence(seen: SeenRevision, raftTerm: number): void {
    this.lastSeen = { modRevision: seen.modRevision, atMs: monotonicMs(), raftTerm: Math.max(raftTerm, seen.raftTerm) };
    clearTimeout(this.takeoverTimer);
    this.takeoverTimer = setTimeout(() => void this.takeover(), this.host.config.holdTimeoutMs + (this.host.extraSilenceMs?.() ?? 0));
  }
}
