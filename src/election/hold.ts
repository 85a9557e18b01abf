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
  /** The holder as last seen, or null. */
  leader(): Leader | null;
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
}

export function holdFor(host: HoldHost): Hold {
  return host.config.profile === 'fast' ? new CompareAndSwapHold(host) : new LeaseOnly();
}

/** Default profile: the lease is the hold. */
class LeaseOnly implements Hold {
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

/**
 * Fast profile: the holder rewrites the key by compare-and-swap every renewInterval; a
 * follower that sees no write for holdTimeout on its own clock takes the key by
 * compare-and-swap against the revision it last saw. See docs/safety.md.
 */
class CompareAndSwapHold implements Hold {
  private readonly fencing: FencingDeadline;
  private renewalsInFlight = 0;
  /** Follower: the last leader revision seen, and when. */
  private lastSeen: { modRevision: number; atMs: number } | null = null;
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
    this.lastSeen = { modRevision: stored.modRevision, atMs: monotonicMs() };
    clearTimeout(this.takeoverTimer);
    this.takeoverTimer = setTimeout(() => void this.takeover(), this.host.config.holdTimeoutMs);
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
      this.host.noteError('takeover failed', error);
    }
  }
}
