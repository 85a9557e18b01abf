import { parseLeader, parseRecord, type HandoffRecord, type Leader, type LeaderRecord, type MoveRequest, type ReleaseRecord } from '../store/records';
import type { Logger } from 'pino';
import type { Watcher } from 'etcd3';
import type { ElectionConfig } from '../config/config';
import { storedFromWatch, type EtcdStore, type StoredValue } from '../store/etcd-store';
import { monotonicMs } from '../clock';
import { FencingDeadline } from './fencing';
import type { ClusterKeys } from '../store/keys';
import { recordMove } from '../store/history';
import { type MoveEvent } from '../store/records';


/** Optional listener for metrics and hooks. Calls are synchronous and must return quickly. */
export interface ElectionObserver {
  /** This node won the key; the move as the history records it. */
  won?(event: MoveEvent): void;
  /** An acknowledged renewal: its round trip, and the time left to hold the VIP (null when not holding). */
  renewed?(kind: 'lease' | 'hold', latencyMs: number, marginMs: number | null): void;
  /** This node may no longer hold the VIP, and why. */
  losing?(cause: 'fenced' | 'lease_lost' | 'handoff', reason: string): void;
}

export interface ElectionOptions {
  store: EtcdStore;
  keys: ClusterKeys;
  self: Omit<LeaderRecord, 'since' | 'term'>;
  config: ElectionConfig;
  /** How often a follower checks for a vacant key even without a watch event. */
  followerPollMs?: number;
  logger: Logger;
  /** Called whenever holdingUntil(), leader() or the lifetime bound may have changed. */
  onChange: (reason: string) => void;
  /** Removes the VIP from this node; awaited before the key is handed to another node. */
  releaseVip: () => Promise<void>;
  observer?: ElectionObserver;
}

/** Fast profile: how many compare-and-swap renewals may be under way at once. */
const MAX_HOLD_RENEWALS_IN_FLIGHT = 3;

/** Fast profile follower: the leader revision last seen, when, and etcd's raft term then. */
interface SeenRevision {
  modRevision: number;
  atMs: number;
  raftTerm: number;
}

/** How this node came to hold the key, which decides whether it must probe before adding the VIP. */
type Acquisition = 'campaign' | 'handoff' | 'takeover';

/**
 * Who should hold the VIP. A node may hold it while it owns the leader key in etcd and its
 * fencing deadline has not passed.
 *
 * Default profile ("lease" mode): the key is bound to the holder's lease; etcd deletes it
 * when the lease expires, and only then can another node win it. The deadline counts from
 * the lease keepalives.
 *
 * Fast profile ("hold" mode): the holder also rewrites the key by compare-and-swap every
 * renewInterval. A follower that sees no rewrite for holdTimeout, on its own monotonic
 * clock, takes the key by compare-and-swap against the last revision it saw. The holder's
 * deadline counts from its last acknowledged rewrite, so it has dropped the VIP before
 * any follower's timer can run out. See docs/safety.md.
 */
export class Election {
  private leaseId: string | null = null;
  private ownsKey = false;
  private eligible = false;
  private stopped = false;
  private leaseRenewalInFlight = false;
  /** Fast profile: renewals sent and not yet answered (a slow one must not hold up the next). */
  private holdRenewalsInFlight = 0;
  private handingOff = false;
  /** A handoff claim is under way: a campaign meanwhile would only race it. */
  private claiming = false;
  /**
   * One campaign at a time. Two in flight can answer out of order: one reads the key the
   * other created, and the creator's "won" then lands after the key and its lease are gone
   * (seen in chaos: a node re-won a dead term on a fresh lease and held beside the holder).
   */
  private campaignInFlight = false;
  private campaignAgain = false;
  private currentLeader: Leader | null = null;
  /** The last holder seen, kept after its key is gone: the history names who the VIP came from. */
  private lastLeader: Leader | null = null;
  /** The exact value of the leader key as we wrote it: fast-profile renewals compare on it. */
  private ownValue: string | null = null;
  private acquisition: Acquisition = 'campaign';
  private probeNeeded = true;
  /** Deadline from lease keepalives: the lease itself, and the kernel lifetime's bound. */
  private readonly leaseFencing: FencingDeadline;
  /** Fast profile: deadline from compare-and-swap renewals. */
  private readonly holdFencing: FencingDeadline;
  /** Fast profile follower: the last leader revision seen, and when. */
  private lastSeen: SeenRevision | null = null;
  private readonly timers: NodeJS.Timeout[] = [];
  private fenceTimer: NodeJS.Timeout | undefined;
  private takeoverTimer: NodeJS.Timeout | undefined;
  private readonly watchers: Watcher[] = [];
  private lastError = '';

  constructor(private readonly options: ElectionOptions) {
    this.leaseFencing = new FencingDeadline(options.config.fencingMarginMs);
    this.holdFencing = new FencingDeadline(options.config.fencingMarginMs);
  }

  private get fast(): boolean {
    return this.options.config.mode === 'hold';
  }

  /** The monotonic time until which this node may hold the VIP, or null if it may not. */
  holdingUntil(): number | null {
    if (!this.ownsKey || this.handingOff) return null;
    const now = monotonicMs();
    if (!this.leaseFencing.isValid(now)) return null;
    if (!this.fast) return this.leaseFencing.deadline;
    if (!this.holdFencing.isValid(now)) return null;
    return Math.min(this.holdFencing.deadline, this.leaseFencing.deadline);
  }

  /**
   * The latest moment the kernel may keep the VIP if this agent dies: the lease deadline.
   * Address lifetimes are whole seconds, so in the fast profile this is looser than
   * holdingUntil(); the takeover probe covers the difference.
   */
  lifetimeBound(): number {
    return this.leaseFencing.deadline;
  }

  /** Whether the VIP may still be on another node, so the segment must be probed first. */
  needsProbe(): boolean {
    return this.probeNeeded;
  }

  /** The holder as last seen (ourselves included), or null when the key is vacant. */
  leader(): Leader | null {
    return this.currentLeader;
  }

  get isEligible(): boolean {
    return this.eligible;
  }

  async start(): Promise<void> {
    const { config } = this.options;
    this.timers.push(setInterval(() => void this.renewLease(), config.leaseRenewIntervalMs));
    if (this.fast) this.timers.push(setInterval(() => void this.renewHold(), config.renewIntervalMs));
    this.timers.push(setInterval(() => void this.poll(), this.options.followerPollMs ?? 1000));
    await this.watch();
    await this.renewLease();
  }

  /** A node that is not healthy (link down) must neither hold nor try to win the VIP. */
  async setEligible(eligible: boolean, reason: string): Promise<void> {
    if (this.eligible === eligible) return;
    this.eligible = eligible;
    this.options.logger.info({ eligible, reason }, eligible ? 'node is eligible to hold the VIP' : 'node is not eligible to hold the VIP');
    if (eligible) {
      await this.campaign();
    } else {
      clearTimeout(this.takeoverTimer);
      await this.resign(reason);
    }
  }

  /**
   * Gives up the key so another node can take it at once. The caller must have removed the
   * VIP before calling this.
   */
  async resign(reason: string): Promise<void> {
    if (!this.ownsKey || !this.leaseId) return;
    const term = this.currentLeader?.term ?? 0;
    this.ownsKey = false;
    this.options.onChange(reason);
    try {
      await this.options.store.resign(this.options.keys.leader, this.leaseId, {
        put: [{ key: this.options.keys.lastRelease, value: JSON.stringify(this.releaseRecord(term, reason)) }],
      });
      this.options.logger.info({ reason, term }, 'resigned the VIP');
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'could not resign in etcd; the lease will expire instead');
    }
  }

  /** Stops everything; with revoke, records the release and deletes the lease at once. */
  async stop(revoke: boolean, reason = 'agent stopping'): Promise<void> {
    if (revoke) await this.resign(reason);
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    clearTimeout(this.fenceTimer);
    clearTimeout(this.takeoverTimer);
    this.ownsKey = false;
    // Cancelling talks to etcd; never let an unreachable etcd hold up a shutdown.
    const cancelled = Promise.all(this.watchers.map((watcher) => watcher.cancel().catch(() => undefined)));
    await Promise.race([cancelled, new Promise((resolve) => setTimeout(resolve, 500).unref())]);
    if (revoke && this.leaseId) {
      try {
        await this.options.store.revokeLease(this.leaseId);
        this.options.logger.info({ lease: this.leaseId }, 'revoked the lease');
      } catch (error) {
        this.options.logger.warn({ err: (error as Error).message }, 'could not revoke the lease; it will expire');
      }
    }
  }

  /**
   * An answer from etcd counts only for the lease it was sent under: once that lease is gone,
   * so is any key written with it, and a newer lease's grant must not vouch for it.
   */
  private isStale(leaseId: string): boolean {
    return this.stopped || this.leaseId !== leaseId;
  }

  private releaseRecord(term: number, reason: string): ReleaseRecord {
    return { node: this.options.self.node, term, reason, vipRemoved: true, time: new Date().toISOString() };
  }

  // ---- the lease: liveness in both profiles, the holding window in the default one ----

  private async ensureLease(): Promise<string> {
    if (this.leaseId) return this.leaseId;
    const ttl = this.options.config.leaseTtlSeconds;
    const sendTime = monotonicMs();
    const granted = await this.options.store.grantLease(ttl);
    if (granted.ttlSeconds !== ttl) {
      this.options.logger.warn({ requested: ttl, granted: granted.ttlSeconds }, 'etcd granted a different lease TTL than requested; fencing follows the granted one');
    }
    this.leaseId = granted.id;
    await this.options.store.put(this.options.keys.alive(this.options.self.node), JSON.stringify(this.options.self), granted.id);
    // A fresh grant is as good as a renewal sent when we asked for it.
    this.acknowledgeLease(sendTime, granted.ttlSeconds);
    this.options.logger.info({ lease: granted.id, ttl: granted.ttlSeconds }, 'lease granted');
    return granted.id;
  }

  private async renewLease(): Promise<void> {
    if (this.stopped || this.leaseRenewalInFlight) return;
    this.leaseRenewalInFlight = true;
    try {
      if (!this.leaseId) {
        await this.ensureLease();
        // Not awaited: a slow campaign must not hold up the keepalives behind it.
        void this.campaign();
        return;
      }
      const leaseId = this.leaseId;
      const sendTime = monotonicMs();
      const ttlSeconds = await this.options.store.renewLease(leaseId, this.options.config.leaseTtlSeconds * 1000);
      if (this.isStale(leaseId)) return;
      if (ttlSeconds <= 0) {
        this.loseLease('the lease expired in etcd');
        return;
      }
      this.acknowledgeLease(sendTime, ttlSeconds);
      this.options.observer?.renewed?.('lease', monotonicMs() - sendTime, this.marginMs());
      this.noteRecovered();
    } catch (error) {
      this.noteError('lease renewal failed', error);
    } finally {
      this.leaseRenewalInFlight = false;
    }
  }

  private acknowledgeLease(sendTime: number, ttlSeconds: number): void {
    this.leaseFencing.acknowledge(sendTime, ttlSeconds * 1000);
    this.armFenceTimer();
    if (this.ownsKey) this.options.onChange('lease renewed');
  }

  private loseLease(reason: string): void {
    this.options.logger.warn({ reason, lease: this.leaseId }, 'lost the lease');
    if (this.ownsKey) this.options.observer?.losing?.('lease_lost', reason);
    this.leaseId = null;
    this.ownsKey = false;
    this.leaseFencing.reset();
    this.holdFencing.reset();
    this.options.onChange(reason);
  }

  /** Wakes the agent at the earliest deadline, so the VIP goes the moment it must. */
  private armFenceTimer(): void {
    clearTimeout(this.fenceTimer);
    const deadlines = [this.leaseFencing.deadline];
    if (this.fast && this.ownsKey) deadlines.push(this.holdFencing.deadline);
    const deadline = Math.min(...deadlines);
    if (!Number.isFinite(deadline)) return;
    this.fenceTimer = setTimeout(() => {
      if (this.ownsKey && this.holdingUntil() === null) {
        this.options.logger.warn({ term: this.currentLeader?.term }, 'fencing deadline passed without an acknowledged renewal');
        this.options.observer?.losing?.('fenced', 'the fencing deadline passed without an acknowledged renewal');
        this.options.onChange('fencing deadline passed');
      }
    }, Math.max(0, deadline - monotonicMs()));
  }

  // ---- the fast profile's compare-and-swap hold ----

  private async renewHold(): Promise<void> {
    if (this.stopped || !this.ownsKey || this.handingOff || !this.leaseId || !this.ownValue) return;
    if (this.holdRenewalsInFlight >= MAX_HOLD_RENEWALS_IN_FLIGHT) return;
    const leaseId = this.leaseId;
    this.holdRenewalsInFlight += 1;
    const sendTime = monotonicMs();
    try {
      // Compared on our own value, not on the revision: several renewals may be in flight,
      // and none can succeed once a takeover has written another node's record.
      const result = await this.options.store.compareValueAndPut(this.options.keys.leader, this.ownValue, leaseId);
      if (!this.ownsKey || this.isStale(leaseId)) return;
      if (result.swapped) {
        const wasHolding = this.holdingUntil() !== null;
        this.holdFencing.acknowledge(sendTime, this.options.config.holdTimeoutMs);
        this.armFenceTimer();
        this.options.observer?.renewed?.('hold', monotonicMs() - sendTime, this.marginMs());
        if (!wasHolding) this.options.onChange('hold renewed');
        this.noteRecovered();
        return;
      }
      const current = result.current;
      this.ownsKey = false;
      this.options.logger.warn({ term: this.currentLeader?.term }, 'another node took the leader key');
      this.options.observer?.losing?.('lease_lost', 'another node took the leader key');
      this.updateLeader(current);
      this.options.onChange('another node took the leader key');
    } catch (error) {
      this.noteError('hold renewal failed', error);
    } finally {
      this.holdRenewalsInFlight -= 1;
    }
  }

  /** Fast-profile follower: restart the silence timer whenever the leader key changes. */
  private noteLeaderRevision(stored: StoredValue | null): void {
    if (!this.fast) return;
    if (!stored || this.ownsKey) {
      clearTimeout(this.takeoverTimer);
      this.lastSeen = null;
      return;
    }
    if (this.lastSeen?.modRevision === stored.modRevision) return;
    // Seen now, so the write was sent before now: our timer can only run out late, never early.
    this.lastSeen = { modRevision: stored.modRevision, atMs: monotonicMs(), raftTerm: this.options.store.raftTerm };
    clearTimeout(this.takeoverTimer);
    this.takeoverTimer = setTimeout(() => void this.takeover(), this.options.config.holdTimeoutMs);
  }

  private async takeover(): Promise<void> {
    const seen = this.lastSeen;
    const leaseId = this.leaseId;
    if (this.stopped || !this.eligible || this.ownsKey || !leaseId || !seen) return;
    if (!this.leaseFencing.isValid(monotonicMs())) return;
    // Silence counts within one etcd leadership only (docs/safety.md, "Riding out an etcd
    // leader election"): if etcd changed leader since we saw the revision, the holder could
    // not write meanwhile, and its window starts again from this read.
    try {
      const current = await this.options.store.readWithTerm(this.options.keys.leader);
      if (this.isStale(leaseId) || this.ownsKey || this.lastSeen !== seen) return;
      if (current.stored?.modRevision !== seen.modRevision) {
        this.updateLeader(current.stored);
        if (!current.stored) void this.campaign();
        return;
      }
      if (current.raftTerm > seen.raftTerm) {
        this.restartSilence(seen, current.raftTerm);
        return;
      }
    } catch (error) {
      this.noteError('takeover failed', error);
      if (this.lastSeen === seen) this.takeoverTimer = setTimeout(() => void this.resumeSilence(seen), this.options.config.renewIntervalMs);
      return;
    }
    const previous = this.currentLeader;
    // The new term exceeds every earlier one: each was at most the revision of a write we have seen.
    const record = { ...this.options.self, since: new Date().toISOString(), term: seen.modRevision + 1 };
    const value = JSON.stringify(record);
    const sendTime = monotonicMs();
    try {
      const result = await this.options.store.compareAndSwap(this.options.keys.leader, value, leaseId, seen.modRevision);
      if (this.isStale(leaseId)) return;
      if (!result.swapped) {
        this.updateLeader(result.current);
        return;
      }
      const silentMs = sendTime - seen.atMs;
      this.acquired('takeover', record, value, sendTime, true);
      await this.recordMove(previous, `${previous?.node ?? 'the holder'} sent no renewal for ${Math.round(silentMs)}ms`);
    } catch (error) {
      this.noteError('takeover failed', error);
      if (this.lastSeen === seen) this.takeoverTimer = setTimeout(() => void this.resumeSilence(seen), this.options.config.renewIntervalMs);
    }
  }

  /**
   * etcd did not answer the takeover (a leader election, or our member is gone), so the
   * holder could not write either: its silence counts again from the first read that gets
   * an answer (docs/safety.md, "Riding out an etcd leader election"). This only delays a
   * takeover, never hastens one. Without it, the failed takeover was not retried and waited
   * for the dead holder's lease, which the new etcd leader had just extended.
   */
  private async resumeSilence(seen: SeenRevision): Promise<void> {
    if (this.stopped || this.ownsKey || this.lastSeen !== seen) return;
    try {
      const { stored, raftTerm } = await this.options.store.readWithTerm(this.options.keys.leader);
      if (this.stopped || this.ownsKey || this.lastSeen !== seen) return;
      if (stored?.modRevision === seen.modRevision) {
        this.restartSilence(seen, raftTerm);
        return;
      }
      this.updateLeader(stored);
      if (!stored) void this.campaign();
    } catch (error) {
      this.noteError('takeover failed', error);
      if (this.lastSeen === seen) this.takeoverTimer = setTimeout(() => void this.resumeSilence(seen), this.options.config.renewIntervalMs);
    }
  }

  /** The key is still at the revision seen, as an answered read just showed: count from now. */
  private restartSilence(seen: SeenRevision, raftTerm: number): void {
    this.lastSeen = { modRevision: seen.modRevision, atMs: monotonicMs(), raftTerm: Math.max(raftTerm, seen.raftTerm) };
    clearTimeout(this.takeoverTimer);
    this.takeoverTimer = setTimeout(() => void this.takeover(), this.options.config.holdTimeoutMs);
  }

  // ---- taking a vacant key ----

  private async poll(): Promise<void> {
    await this.campaign();
    if (this.ownsKey) await this.checkMoveRequest();
  }

  private async campaign(): Promise<void> {
    if (this.campaignInFlight) {
      this.campaignAgain = true;
      return;
    }
    this.campaignInFlight = true;
    try {
      do {
        this.campaignAgain = false;
        await this.campaignOnce();
      } while (this.campaignAgain && !this.stopped);
    } finally {
      this.campaignInFlight = false;
    }
  }

  private async campaignOnce(): Promise<void> {
    const leaseId = this.leaseId;
    if (this.stopped || !this.eligible || this.ownsKey || this.claiming || !leaseId) return;
    if (!this.leaseFencing.isValid(monotonicMs())) return;
    const previous = this.currentLeader ?? this.lastLeader;
    const record: LeaderRecord = { ...this.options.self, since: new Date().toISOString() };
    const value = JSON.stringify(record);
    const sendTime = monotonicMs();
    try {
      const result = await this.options.store.campaign(this.options.keys.leader, this.options.keys.handoff, value, leaseId);
      // Stopped; the lease went meanwhile, and with it any key written under it; or a
      // handoff claimed meanwhile (the key then carries our lease: nothing to do).
      if (this.isStale(leaseId) || (this.ownsKey && !result.won)) return;
      if (result.won && result.leader) {
        const term = result.leader.createRevision;
        const release = parseRecord<ReleaseRecord>(await this.options.store.get(this.options.keys.lastRelease).catch(() => null));
        if (this.isStale(leaseId)) return;
        // A holder that released cleanly removed the VIP first: nothing can still answer for it.
        const clean = release !== null && release.vipRemoved && previous !== null && release.term === previous.term;
        this.acquired('campaign', { ...record, term }, value, sendTime, !clean);
        const reason = clean ? `${release.node} released: ${release.reason}` : previous ? `the lease of ${previous.node} expired` : 'no node held the VIP';
        await this.recordMove(previous, reason);
      } else if (result.leader?.lease === leaseId) {
        await this.reclaim(result.leader, leaseId, sendTime);
      } else if (!result.leader && result.handoff) {
        await this.claimHandoff(result.handoff, previous);
      } else {
        this.updateLeader(result.leader);
      }
      this.noteRecovered();
    } catch (error) {
      if (/requested lease not found/i.test((error as Error).message)) {
        // Only the lease this campaign used: a newer one may already be granted.
        if (this.leaseId === leaseId) this.loseLease('the lease expired in etcd');
      } else {
        this.noteError('campaign failed', error);
      }
    }
  }

  /**
   * The key still carries our lease (a resign that never reached etcd, or a renewal that
   * failed without a takeover): take it back. In the fast profile this must be a write:
   * followers time the holder's silence from the last write they saw, so a read alone
   * would grant a holding window no follower knows of.
   */
  private async reclaim(stored: StoredValue, leaseId: string, readSendTime: number): Promise<void> {
    const leader = parseLeader(stored);
    if (!leader) return;
    let sendTime = readSendTime;
    if (this.fast) {
      sendTime = monotonicMs();
      const result = await this.options.store.compareAndSwap(this.options.keys.leader, stored.value, leaseId, stored.modRevision);
      if (this.isStale(leaseId)) return;
      if (!result.swapped) {
        this.updateLeader(result.current);
        return;
      }
    }
    this.acquired(this.acquisition, leader, stored.value, sendTime, this.probeNeeded);
  }

  private async claimHandoff(stored: StoredValue, previous: Leader | null): Promise<void> {
    const handoff = parseRecord<HandoffRecord>(stored);
    const leaseId = this.leaseId;
    if (!handoff || handoff.to !== this.options.self.node || !leaseId || this.claiming || this.ownsKey) return;
    const record: LeaderRecord = { ...this.options.self, since: new Date().toISOString() };
    const value = JSON.stringify(record);
    const sendTime = monotonicMs();
    this.claiming = true;
    let revision: number | null;
    try {
      revision = await this.options.store.claimHandoff(this.options.keys.leader, stored, value, leaseId);
    } finally {
      this.claiming = false;
    }
    if (revision === null || this.isStale(leaseId)) return;
    // The old holder removed the VIP before handing off: no probe needed.
    this.acquired('handoff', { ...record, term: revision }, value, sendTime, false);
    await this.recordMove(previous ?? null, handoff.reason, handoff.from);
  }

  /** `value` is the leader key exactly as written; `record` adds the term etcd assigned. */
  private acquired(how: Acquisition, record: Leader, value: string, sendTime: number, probe: boolean): void {
    this.ownsKey = true;
    this.acquisition = how;
    this.probeNeeded = probe;
    this.ownValue = value;
    this.currentLeader = { ...record };
    this.lastLeader = this.currentLeader;
    this.lastSeen = null;
    clearTimeout(this.takeoverTimer);
    if (this.fast) this.holdFencing.acknowledge(sendTime, this.options.config.holdTimeoutMs);
    this.armFenceTimer();
    this.options.logger.info({ term: record.term, how, probe }, 'won the VIP');
    if (!this.eligible) {
      void this.resign('became ineligible while campaigning');
      return;
    }
    this.options.onChange('won the election');
  }

  private async recordMove(previous: Leader | null, reason: string, fromOverride?: string): Promise<void> {
    const event: MoveEvent = {
      from: fromOverride ?? previous?.node ?? null,
      to: this.options.self.node,
      reason,
      term: this.currentLeader?.term ?? null,
      time: new Date().toISOString(),
    };
    this.options.observer?.won?.(event);
    try {
      await recordMove(this.options.store, this.options.keys, event);
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'could not record the move in the history');
    }
  }

  // ---- planned moves ----

  private async checkMoveRequest(): Promise<void> {
    try {
      const request = parseRecord<MoveRequest>(await this.options.store.get(this.options.keys.moveRequest));
      if (request) await this.handleMoveRequest(request);
    } catch (error) {
      this.noteError('could not read move requests', error);
    }
  }

  private async handleMoveRequest(request: MoveRequest): Promise<void> {
    if (!this.ownsKey || this.handingOff || !this.leaseId) return;
    const { keys, store, logger } = this.options;
    if (request.to === this.options.self.node) {
      await store.delete(keys.moveRequest);
      return;
    }
    if (!(await store.get(keys.alive(request.to)))) {
      logger.warn({ to: request.to }, 'refusing a move to a node that is not running');
      await store.delete(keys.moveRequest);
      return;
    }
    const term = this.currentLeader?.term ?? 0;
    const reason = `planned move to ${request.to} requested by ${request.requestedBy}`;
    // Granted before the VIP goes, so the outage holds one etcd write fewer; the reservation
    // expires with it if the target never claims it.
    const handoffLease = await store.grantLease(this.options.config.leaseTtlSeconds);
    if (!this.ownsKey || this.handingOff) return;
    this.handingOff = true;
    try {
      // The VIP must be gone from here before the target can take the key.
      this.options.observer?.losing?.('handoff', reason);
      this.options.onChange('handing off');
      await this.options.releaseVip();
      const handoff: HandoffRecord = { from: this.options.self.node, to: request.to, term, reason };
      const released = await store.resign(keys.leader, this.leaseId, {
        put: [
          { key: keys.handoff, value: JSON.stringify(handoff), lease: handoffLease.id },
          { key: keys.lastRelease, value: JSON.stringify(this.releaseRecord(term, reason)) },
        ],
        delete: [keys.moveRequest],
      });
      this.ownsKey = false;
      logger.info({ to: request.to, term, released }, 'handed the VIP off');
    } finally {
      this.handingOff = false;
      this.options.onChange('handed off');
    }
  }

  // ---- watching ----

  private updateLeader(stored: StoredValue | null): void {
    const leader = parseLeader(stored);
    const before = this.currentLeader;
    this.currentLeader = leader;
    if (leader) this.lastLeader = leader;
    if (this.ownsKey && (!stored || stored.lease !== this.leaseId)) {
      this.ownsKey = false;
      this.options.logger.warn({ term: leader?.term }, 'the leader key is no longer ours');
      this.options.observer?.losing?.('lease_lost', 'the leader key is no longer ours');
      this.options.onChange('the leader key is no longer ours');
    } else if (before?.term !== leader?.term) {
      this.options.onChange('leader changed');
    }
    this.noteLeaderRevision(stored);
  }

  private async watch(): Promise<void> {
    const { store, keys } = this.options;
    try {
      const leaderWatch = await store.watchKey(keys.leader);
      leaderWatch.on('put', (kv) => {
        const stored = storedFromWatch(kv);
        if (this.ownsKey && stored.lease === this.leaseId) return;
        this.updateLeader(stored);
      });
      leaderWatch.on('delete', () => {
        this.updateLeader(null);
        void this.campaign();
      });
      leaderWatch.on('error', (error) => this.noteError('leader watch failed', error));
      this.watchers.push(leaderWatch);

      // The target of a planned move claims as soon as it sees the reservation, without
      // first losing a campaign to it.
      const handoffWatch = await store.watchKey(keys.handoff);
      handoffWatch.on('put', (kv) => {
        if (this.stopped || !this.eligible || this.ownsKey || !this.leaseId) return;
        void this.claimHandoff(storedFromWatch(kv), this.currentLeader ?? this.lastLeader).catch((error: unknown) => this.noteError('claiming the handoff failed', error));
      });
      handoffWatch.on('error', (error) => this.noteError('handoff watch failed', error));
      this.watchers.push(handoffWatch);

      const moveWatch = await store.watchKey(keys.moveRequest);
      moveWatch.on('put', (kv) => {
        const request = parseRecord<MoveRequest>(storedFromWatch(kv));
        if (request) void this.handleMoveRequest(request);
      });
      moveWatch.on('error', (error) => this.noteError('move-request watch failed', error));
      this.watchers.push(moveWatch);
    } catch (error) {
      this.noteError('could not watch etcd; polling instead', error);
    }
  }

  /** Time left to hold the VIP, for metrics; null when this node may not hold it. */
  private marginMs(): number | null {
    const until = this.holdingUntil();
    return until === null ? null : until - monotonicMs();
  }

  private noteError(what: string, error: unknown): void {
    const message = `${what}: ${(error as Error).message}`;
    // Log a failure once, not every renewal interval.
    if (message !== this.lastError) this.options.logger.warn({ err: (error as Error).message }, what);
    this.lastError = message;
  }

  private noteRecovered(): void {
    if (this.lastError) this.options.logger.info('etcd reachable again');
    this.lastError = '';
  }
}
