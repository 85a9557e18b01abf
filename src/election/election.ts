import { parseLeader, parseRecord, type Leader, type LeaderRecord, type MoveEvent, type ReleaseRecord } from '../store/records';
import type { Logger } from 'pino';
import type { Watcher } from 'etcd3';
import type { ElectionConfig } from '../config/config';
import { storedFromWatch, type EtcdStore, type StoredValue } from '../store/etcd-store';
import { monotonicMs } from '../clock';
import { FencingDeadline } from './fencing';
import type { ClusterKeys } from '../store/keys';
import { recordMove } from '../store/history';
import { holdFor, type Hold } from './hold';
import { PlannedMoves, type PlannedMoveCause } from './handoff';

/** Optional listener for metrics and hooks. Calls are synchronous and must return quickly. */
export interface ElectionObserver {
  /** This node won the key; the move as the history records it. */
  won?(event: MoveEvent): void;
  /** An acknowledged renewal: its round trip, and the time left to hold the VIP (null when not holding). */
  renewed?(kind: 'lease' | 'hold', latencyMs: number, marginMs: number | null): void;
  /** This node may no longer hold the VIP, and why. */
  losing?(cause: 'fenced' | 'lease_lost' | PlannedMoveCause, reason: string): void;
  /**
   * This node became the key's holder, or stopped being it (the key, not yet the VIP): the
   * place for work that follows the key, such as moving etcd's own leadership here.
   */
  holderChanged?(holder: boolean): void;
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
  releaseVip: (cause: PlannedMoveCause) => Promise<void>;
  observer?: ElectionObserver;
  /**
   * How long to wait before campaigning for a vacant key, or taking over a silent holder's
   * (issue 14: less preferred nodes wait, so the most preferred wins). Only ever delays.
   */
  campaignDelayMs?: () => number;
  /**
   * Whether the holder's node still answers on the segment (fast profile): asked before
   * giving a holder a new window after an etcd leader change, which a dead node cannot use.
   */
  holderAnswers?: (holder: Leader) => Promise<boolean>;
}

/** How this node came to hold the key, which decides whether it must probe before adding the VIP. */
export type Acquisition = 'campaign' | 'handoff' | 'takeover';

type LossCause = 'lease_lost' | PlannedMoveCause;

/** `value` is the leader key exactly as written: fast-profile renewals compare on it. */
type Holding = { kind: 'holder'; how: Acquisition; value: string; probe: boolean };

/** This node's part in the election. Key ownership only: the fencing deadline decides the VIP. */
export type Role =
  | { kind: 'follower' }
  /** A handoff claim is in flight: a campaign meanwhile would only race it. */
  | { kind: 'claiming' }
  | Holding
  /** The VIP is being removed before the key goes to `to`; a failed handoff holds again. */
  | { kind: 'handing-off'; to: string; held: Holding }
  | { kind: 'stopped' };

/** Every transition the election makes; anything else is a bug and is refused. */
const TRANSITIONS: Record<Role['kind'], ReadonlyArray<Role['kind']>> = {
  follower: ['claiming', 'holder', 'stopped'],
  claiming: ['follower', 'holder', 'stopped'],
  holder: ['holder', 'handing-off', 'follower', 'stopped'],
  'handing-off': ['holder', 'follower', 'stopped'],
  stopped: [],
};

/** Runs a task one at a time; a request while it runs asks for one more run after it. */
class OneAtATime {
  private state: 'idle' | 'running' | 'again' = 'idle';

  constructor(private readonly task: () => Promise<void>, private readonly done: () => boolean) {}

  async run(): Promise<void> {
    if (this.state !== 'idle') {
      this.state = 'again';
      return;
    }
    try {
      do {
        this.state = 'running';
        await this.task();
      } while (this.askedAgain() && !this.done());
    } finally {
      this.state = 'idle';
    }
  }

  private askedAgain(): boolean {
    return this.state === 'again';
  }
}

/**
 * Who should hold the VIP. A node may hold it while it owns the leader key in etcd and its
 * fencing deadline has not passed.
 *
 * Default profile: the key is bound to the holder's lease; etcd deletes it when the lease
 * expires, and only then can another node win it. The deadline counts from the keepalives.
 *
 * Fast profile: on top of that, a compare-and-swap hold (hold.ts) whose deadline counts from
 * the holder's last acknowledged rewrite. See docs/safety.md.
 */
export class Election {
  private role: Role = { kind: 'follower' };
  private leaseId: string | null = null;
  private eligible = false;
  private leaseRenewalInFlight = false;
  /**
   * Two campaigns in flight can answer out of order: one reads the key the other created,
   * and the creator's "won" then lands after the key and its lease are gone (seen in chaos:
   * a node re-won a dead term on a fresh lease and held beside the holder).
   */
  private readonly campaigns = new OneAtATime(() => this.campaignOnce(), () => this.role.kind === 'stopped');
  private currentLeader: Leader | null = null;
  /** The last holder seen, kept after its key is gone: the history names who the VIP came from. */
  private lastLeader: Leader | null = null;
  /** How the key was last won: a key taken back under our own lease keeps it. */
  private lastWin: { how: Acquisition; probe: boolean } = { how: 'campaign', probe: true };
  /** Deadline from lease keepalives: the lease itself, and the kernel lifetime's bound. */
  private readonly leaseFencing: FencingDeadline;
  private readonly hold: Hold;
  private readonly moves: PlannedMoves;
  private readonly timers: NodeJS.Timeout[] = [];
  private fenceTimer: NodeJS.Timeout | undefined;
  private campaignTimer: NodeJS.Timeout | undefined;
  private readonly watchers: Watcher[] = [];
  private lastError = '';

  constructor(private readonly options: ElectionOptions) {
    this.leaseFencing = new FencingDeadline(options.config.fencingMarginMs);
    const { store, keys, config, logger } = options;
    const noteError = (what: string, error: unknown): void => this.noteError(what, error);
    const isStale = (leaseId: string): boolean => this.isStale(leaseId);
    this.hold = holdFor({
      store,
      keys,
      config,
      held: () => (this.role.kind === 'holder' && this.leaseId ? { leaseId: this.leaseId, value: this.role.value } : null),
      ownsKey: () => this.ownsKey(),
      holding: () => this.holdingUntil() !== null,
      isStale,
      candidateLease: () => this.candidateLease(),
      newRecord: (term) => ({ ...this.newRecord(), term }),
      renewed: (sendTime, lapsed) => this.holdRenewed(sendTime, lapsed),
      keyTaken: (current) => {
        this.options.logger.warn({ term: this.currentLeader?.term }, 'another node took the leader key');
        this.become({ kind: 'follower' }, 'another node took the leader key', 'lease_lost');
        this.updateLeader(current);
        this.options.onChange('another node took the leader key');
      },
      saw: (current) => this.updateLeader(current),
      following: () => this.role.kind !== 'stopped' && !this.ownsKey(),
      campaign: () => void this.campaign(),
      extraSilenceMs: () => options.campaignDelayMs?.() ?? 0,
      leader: () => this.currentLeader,
      ...(options.holderAnswers ? { holderAnswers: options.holderAnswers } : {}),
      tookOver: (record, value, sendTime, previous, silentMs) =>
        this.won('takeover', record, value, sendTime, true, previous, `${previous?.node ?? 'the holder'} sent no renewal for ${Math.round(silentMs)}ms`),
      noteError,
    });
    this.moves = new PlannedMoves({
      store,
      keys,
      node: options.self.node,
      leaseTtlSeconds: config.leaseTtlSeconds,
      logger,
      releaseVip: (cause) => this.options.releaseVip(cause),
      held: () => (this.role.kind === 'holder' && this.leaseId ? { leaseId: this.leaseId, term: this.currentLeader?.term ?? 0 } : null),
      followerLease: () => (this.role.kind === 'follower' ? this.leaseId : null),
      mayClaim: () => this.role.kind !== 'stopped' && this.eligible && !this.ownsKey() && this.leaseId !== null,
      isStale,
      previousHolder: () => this.currentLeader ?? this.lastLeader,
      newRecord: () => this.newRecord(),
      releaseRecord: (term, reason) => this.releaseRecord(term, reason),
      beginHandoff: (to, reason, cause) => {
        if (this.role.kind !== 'holder' || !this.become({ kind: 'handing-off', to, held: this.role }, reason, cause)) return false;
        this.options.onChange('handing off');
        return true;
      },
      endHandoff: (handedOff) => {
        if (this.role.kind === 'handing-off') this.become(handedOff ? { kind: 'follower' } : this.role.held, handedOff ? 'handed off' : 'handoff failed');
        this.options.onChange('handed off');
      },
      beginClaim: () => this.become({ kind: 'claiming' }, 'claiming a handoff'),
      endClaim: () => {
        if (this.role.kind === 'claiming') this.become({ kind: 'follower' }, 'claim answered');
      },
      wonByHandoff: (record, value, sendTime, previous, reason, from) =>
        // The old holder removed the VIP before handing off: no probe needed.
        this.won('handoff', record, value, sendTime, false, previous, reason, from),
      noteError,
    });
  }

  /** The monotonic time until which this node may hold the VIP, or null if it may not. */
  holdingUntil(): number | null {
    if (this.role.kind !== 'holder') return null;
    const now = monotonicMs();
    if (!this.leaseFencing.isValid(now)) return null;
    const until = Math.min(this.leaseFencing.deadline, this.hold.deadline());
    return now < until ? until : null;
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
    return this.lastWin.probe;
  }

  /** The holder as last seen (ourselves included), or null when the key is vacant. */
  leader(): Leader | null {
    return this.currentLeader;
  }

  get isEligible(): boolean {
    return this.eligible;
  }

  /** Whether this node owns the leader key now, handing it off included. */
  get ownsLeaderKey(): boolean {
    return this.ownsKey();
  }

  async start(): Promise<void> {
    this.timers.push(setInterval(() => void this.renewLease(), this.options.config.leaseRenewIntervalMs));
    this.hold.start();
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
      this.hold.stopFollowing();
      await this.resign(reason);
    }
  }

  /**
   * Gives up the key so another node can take it at once. The caller must have removed the
   * VIP before calling this.
   */
  async resign(reason: string): Promise<void> {
    if (!this.ownsKey() || !this.leaseId) return;
    const term = this.currentLeader?.term ?? 0;
    this.become({ kind: 'follower' }, reason);
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
    this.become({ kind: 'stopped' }, reason);
    for (const timer of this.timers) clearInterval(timer);
    clearTimeout(this.fenceTimer);
    clearTimeout(this.campaignTimer);
    this.hold.stop();
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

  // ---- the state machine ----

  /**
   * The one place the role changes. `cause` names the loss reported to the observer when
   * this node stops holding; a handoff reports its own loss when it begins.
   */
  private become(next: Role, reason: string, cause?: LossCause): boolean {
    const before = this.role;
    if (!TRANSITIONS[before.kind].includes(next.kind)) {
      if (before.kind !== 'stopped') this.options.logger.warn({ from: before.kind, to: next.kind, reason }, 'refused an election transition');
      return false;
    }
    this.role = next;
    const wasHolder = before.kind === 'holder';
    const isHolder = next.kind === 'holder';
    if (wasHolder && !isHolder && cause) this.options.observer?.losing?.(cause, reason);
    if (wasHolder !== isHolder) this.options.observer?.holderChanged?.(isHolder);
    return true;
  }

  /** Whether this node owns the leader key, handing it off included. */
  private ownsKey(): boolean {
    return this.role.kind === 'holder' || this.role.kind === 'handing-off';
  }

  /** The lease to campaign or take over with, or null while this node may not try. */
  private candidateLease(): string | null {
    if (this.role.kind === 'stopped' || !this.eligible || this.ownsKey() || !this.leaseId) return null;
    return this.leaseFencing.isValid(monotonicMs()) ? this.leaseId : null;
  }

  /**
   * An answer from etcd counts only for the lease it was sent under: once that lease is gone,
   * so is any key written with it, and a newer lease's grant must not vouch for it.
   */
  private isStale(leaseId: string): boolean {
    return this.role.kind === 'stopped' || this.leaseId !== leaseId;
  }

  private newRecord(): LeaderRecord {
    return { ...this.options.self, since: new Date().toISOString() };
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
    if (this.role.kind === 'stopped' || this.leaseRenewalInFlight) return;
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
    if (this.ownsKey()) this.options.onChange('lease renewed');
  }

  private holdRenewed(sendTime: number, lapsed: boolean): void {
    this.armFenceTimer();
    this.options.observer?.renewed?.('hold', monotonicMs() - sendTime, this.marginMs());
    if (lapsed) this.options.onChange('hold renewed');
    this.noteRecovered();
  }

  private loseLease(reason: string): void {
    this.options.logger.warn({ reason, lease: this.leaseId }, 'lost the lease');
    this.leaseId = null;
    if (this.ownsKey()) this.become({ kind: 'follower' }, reason, 'lease_lost');
    this.leaseFencing.reset();
    this.hold.reset();
    this.options.onChange(reason);
  }

  /** Wakes the agent at the earliest deadline, so the VIP goes the moment it must. */
  private armFenceTimer(): void {
    clearTimeout(this.fenceTimer);
    const deadline = Math.min(this.leaseFencing.deadline, this.ownsKey() ? this.hold.deadline() : Infinity);
    if (!Number.isFinite(deadline)) return;
    this.fenceTimer = setTimeout(() => {
      if (this.role.kind === 'holder' && this.holdingUntil() === null) {
        this.options.logger.warn({ term: this.currentLeader?.term }, 'fencing deadline passed without an acknowledged renewal');
        this.options.observer?.losing?.('fenced', 'the fencing deadline passed without an acknowledged renewal');
        this.options.onChange('fencing deadline passed');
      }
    }, Math.max(0, deadline - monotonicMs()));
  }

  // ---- taking a vacant key ----

  private async poll(): Promise<void> {
    if (this.hold.pollReadsFirst) await this.campaignIfVacant();
    else await this.campaign();
    if (this.ownsKey()) await this.moves.check();
  }

  /**
   * The poll is the safety net beside the leader watch, so it reads the key before it
   * campaigns: a campaign is a transaction with a put, and etcd runs every such transaction
   * through raft (a log entry and an fsync on every member) even when its compare fails.
   * Followers sent one a second for nothing (issue 12). Default profile only (hold.ts).
   */
  private async campaignIfVacant(): Promise<void> {
    if (!this.candidateLease() || this.role.kind === 'claiming') return;
    let stored: StoredValue | null;
    try {
      stored = (await this.options.store.readWithTerm(this.options.keys.leader)).stored;
    } catch (error) {
      this.noteError('could not read the leader key', error);
      return;
    }
    this.noteRecovered();
    // Vacant, or still carrying our lease (a resign that never reached etcd): the campaign decides.
    if (stored === null || stored.lease === this.leaseId) await this.campaign();
    else this.updateLeader(stored);
  }

  private async campaign(): Promise<void> {
    const delayMs = this.candidateLease() ? (this.options.campaignDelayMs?.() ?? 0) : 0;
    if (delayMs <= 0) {
      await this.campaigns.run();
      return;
    }
    // Campaigns asked for meanwhile join this one; after the wait it runs whatever the delay says then.
    this.campaignTimer ??= setTimeout(() => {
      this.campaignTimer = undefined;
      void this.campaigns.run();
    }, delayMs);
  }

  /**
   * A planned move this holder starts itself (issue 14: its agent is stopping): the VIP leaves
   * here first, then only `to` may take the key. Resolves false if this node does not hold it.
   */
  async handOffTo(to: string, reason: string): Promise<boolean> {
    return await this.moves.handOff(to, reason);
  }

  private async campaignOnce(): Promise<void> {
    const leaseId = this.candidateLease();
    if (!leaseId || this.role.kind === 'claiming') return;
    const previous = this.currentLeader ?? this.lastLeader;
    const record = this.newRecord();
    const value = JSON.stringify(record);
    const sendTime = monotonicMs();
    try {
      const result = await this.options.store.campaign(this.options.keys.leader, this.options.keys.handoff, value, leaseId);
      // Stopped; the lease went meanwhile, and with it any key written under it; or a
      // handoff claimed meanwhile (the key then carries our lease: nothing to do).
      if (this.isStale(leaseId) || (this.ownsKey() && !result.won)) return;
      if (result.won && result.leader) {
        const term = result.leader.createRevision;
        const release = parseRecord<ReleaseRecord>(await this.options.store.get(this.options.keys.lastRelease).catch(() => null));
        if (this.isStale(leaseId)) return;
        // A holder that released cleanly removed the VIP first: nothing can still answer for it.
        const clean = release !== null && release.vipRemoved && previous !== null && release.term === previous.term;
        const reason = clean ? `${release.node} released: ${release.reason}` : previous ? `the lease of ${previous.node} expired` : 'no node held the VIP';
        await this.won('campaign', { ...record, term }, value, sendTime, !clean, previous, reason);
      } else if (result.leader?.lease === leaseId) {
        await this.reclaim(result.leader, leaseId, sendTime);
      } else if (!result.leader && result.handoff) {
        await this.moves.claim(result.handoff, previous);
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

  /** The key still carries our lease (a resign that never reached etcd, or a renewal that failed without a takeover). */
  private async reclaim(stored: StoredValue, leaseId: string, readSendTime: number): Promise<void> {
    const leader = parseLeader(stored);
    if (!leader) return;
    const sendTime = await this.hold.reclaim(stored, leaseId, readSendTime);
    if (sendTime === null) return;
    this.acquired(this.lastWin.how, leader, stored.value, sendTime, this.lastWin.probe);
  }

  /** `value` is the leader key exactly as written; `record` adds the term etcd assigned. */
  private acquired(how: Acquisition, record: Leader, value: string, sendTime: number, probe: boolean): void {
    this.currentLeader = { ...record };
    this.lastLeader = this.currentLeader;
    this.lastWin = { how, probe };
    this.become({ kind: 'holder', how, value, probe }, 'won the election');
    this.hold.acquired(sendTime);
    this.armFenceTimer();
    this.options.logger.info({ term: record.term, how, probe }, 'won the VIP');
    if (!this.eligible) {
      void this.resign('became ineligible while campaigning');
      return;
    }
    this.options.onChange('won the election');
  }

  /** A win by a write of ours (not a key taken back): acquired, and recorded in the history. */
  private async won(how: Acquisition, record: Leader, value: string, sendTime: number, probe: boolean, previous: Leader | null, reason: string, from?: string): Promise<void> {
    this.acquired(how, record, value, sendTime, probe);
    const event: MoveEvent = {
      from: from ?? previous?.node ?? null,
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

  // ---- watching ----

  private updateLeader(stored: StoredValue | null): void {
    const leader = parseLeader(stored);
    const before = this.currentLeader;
    this.currentLeader = leader;
    if (leader) this.lastLeader = leader;
    if (this.ownsKey() && (!stored || stored.lease !== this.leaseId)) {
      this.options.logger.warn({ term: leader?.term }, 'the leader key is no longer ours');
      this.become({ kind: 'follower' }, 'the leader key is no longer ours', 'lease_lost');
      this.options.onChange('the leader key is no longer ours');
    } else if (before?.term !== leader?.term) {
      this.options.onChange('leader changed');
    }
    this.hold.observed(stored, this.ownsKey());
  }

  private async watch(): Promise<void> {
    const { store, keys } = this.options;
    try {
      const leaderWatch = await store.watchKey(keys.leader);
      leaderWatch.on('put', (kv) => {
        const stored = storedFromWatch(kv);
        if (this.ownsKey() && stored.lease === this.leaseId) return;
        this.updateLeader(stored);
      });
      leaderWatch.on('delete', () => {
        this.updateLeader(null);
        void this.campaign();
      });
      leaderWatch.on('error', (error) => this.noteError('leader watch failed', error));
      this.watchers.push(leaderWatch);
      await this.moves.watch((watcher) => this.watchers.push(watcher));
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
