import type { Logger } from 'pino';
import type { Watcher } from 'etcd3';
import { type EtcdStore, type StoredValue } from './etcd-store';
import { FencingDeadline, monotonicMs } from './fencing';
import type { ClusterKeys } from './keys';

/** What the leader key says about the holder. */
export interface LeaderRecord {
  node: string;
  ip: string;
  mac: string;
  /** Wall-clock time the holder won the key, ISO 8601. */
  since: string;
}

export interface Leader extends LeaderRecord {
  /** The fencing number: the etcd revision that created the leader key. Grows with every new holder. */
  term: number;
}

export function parseLeader(stored: StoredValue | null): Leader | null {
  if (!stored) return null;
  try {
    const record = JSON.parse(stored.value) as LeaderRecord;
    return { ...record, term: stored.createRevision };
  } catch {
    return null;
  }
}

export interface ElectionOptions {
  store: EtcdStore;
  keys: ClusterKeys;
  self: Omit<LeaderRecord, 'since'>;
  leaseTtlSeconds: number;
  renewIntervalMs: number;
  fencingMarginMs: number;
  /** How often a follower checks for a vacant key even without a watch event. */
  followerPollMs?: number;
  logger: Logger;
  /** Called whenever holdingUntil() or leader() may have changed. */
  onChange: (reason: string) => void;
}

/**
 * Who should hold the VIP. A node may hold it while it owns the leader key in etcd and its
 * fencing deadline has not passed. The leader key is bound to the node's lease, so etcd
 * deletes it when the lease expires; only then can another node win it.
 */
export class Election {
  private leaseId: string | null = null;
  private ownsKey = false;
  private eligible = false;
  private stopped = false;
  private renewalInFlight = false;
  private currentLeader: Leader | null = null;
  private readonly fencing: FencingDeadline;
  private renewTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private fenceTimer: NodeJS.Timeout | undefined;
  private watcher: Watcher | null = null;
  private lastError = '';

  constructor(private readonly options: ElectionOptions) {
    this.fencing = new FencingDeadline(options.fencingMarginMs);
  }

  /** The monotonic time until which this node may hold the VIP, or null if it may not. */
  holdingUntil(): number | null {
    if (!this.ownsKey || !this.fencing.isValid(monotonicMs())) return null;
    return this.fencing.deadline;
  }

  /** The holder as last seen (ourselves included), or null when the key is vacant. */
  leader(): Leader | null {
    return this.currentLeader;
  }

  get isEligible(): boolean {
    return this.eligible;
  }

  async start(): Promise<void> {
    this.renewTimer = setInterval(() => void this.renew(), this.options.renewIntervalMs);
    this.pollTimer = setInterval(() => void this.campaign(), this.options.followerPollMs ?? 1000);
    await this.watchLeader();
    await this.renew();
  }

  /** A node that is not healthy (link down) must neither hold nor try to win the VIP. */
  async setEligible(eligible: boolean, reason: string): Promise<void> {
    if (this.eligible === eligible) return;
    this.eligible = eligible;
    this.options.logger.info({ eligible, reason }, eligible ? 'node is eligible to hold the VIP' : 'node is not eligible to hold the VIP');
    if (eligible) {
      await this.campaign();
    } else {
      await this.resign(reason);
    }
  }

  /**
   * Gives up the key so another node can take it at once. The caller must have removed the
   * VIP before calling this.
   */
  async resign(reason: string): Promise<void> {
    if (!this.ownsKey || !this.leaseId) return;
    this.ownsKey = false;
    this.options.onChange(reason);
    try {
      await this.options.store.resign(this.options.keys.leader, this.leaseId);
      this.options.logger.info({ reason, term: this.currentLeader?.term }, 'resigned the VIP');
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'could not resign in etcd; the lease will expire instead');
    }
  }

  /** Stops everything; with revoke, deletes the lease (and so the leader key) at once. */
  async stop(revoke: boolean): Promise<void> {
    this.stopped = true;
    clearInterval(this.renewTimer);
    clearInterval(this.pollTimer);
    clearTimeout(this.fenceTimer);
    this.ownsKey = false;
    this.fencing.reset();
    // Cancelling talks to etcd; never let an unreachable etcd hold up a shutdown.
    const cancelled = this.watcher?.cancel().catch(() => undefined);
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

  private async ensureLease(): Promise<string> {
    if (this.leaseId) return this.leaseId;
    const granted = await this.options.store.grantLease(this.options.leaseTtlSeconds);
    if (granted.ttlSeconds !== this.options.leaseTtlSeconds) {
      this.options.logger.warn(
        { requested: this.options.leaseTtlSeconds, granted: granted.ttlSeconds },
        'etcd granted a different lease TTL than requested; fencing follows the granted one',
      );
    }
    const sendTime = monotonicMs();
    this.leaseId = granted.id;
    await this.options.store.put(this.options.keys.alive(this.options.self.node), JSON.stringify(this.options.self), granted.id);
    // A fresh grant is as good as a renewal sent when we asked for it.
    this.acknowledge(sendTime, granted.ttlSeconds);
    this.options.logger.info({ lease: granted.id, ttl: granted.ttlSeconds }, 'lease granted');
    return granted.id;
  }

  private async renew(): Promise<void> {
    if (this.stopped || this.renewalInFlight) return;
    this.renewalInFlight = true;
    try {
      if (!this.leaseId) {
        await this.ensureLease();
        await this.campaign();
        return;
      }
      const leaseId = this.leaseId;
      const sendTime = monotonicMs();
      const ttlSeconds = await this.options.store.renewLease(leaseId, this.options.leaseTtlSeconds * 1000);
      if (this.stopped || leaseId !== this.leaseId) return;
      if (ttlSeconds <= 0) {
        this.loseLease('the lease expired in etcd');
        return;
      }
      this.acknowledge(sendTime, ttlSeconds);
      this.noteRecovered();
    } catch (error) {
      this.noteError('lease renewal failed', error);
    } finally {
      this.renewalInFlight = false;
    }
  }

  private acknowledge(sendTime: number, ttlSeconds: number): void {
    const deadline = this.fencing.acknowledge(sendTime, ttlSeconds);
    clearTimeout(this.fenceTimer);
    this.fenceTimer = setTimeout(() => {
      if (this.ownsKey && !this.fencing.isValid(monotonicMs())) {
        this.options.logger.warn({ term: this.currentLeader?.term }, 'fencing deadline passed without an acknowledged renewal');
        this.options.onChange('fencing deadline passed');
      }
    }, Math.max(0, deadline - monotonicMs()));
    if (this.ownsKey) this.options.onChange('lease renewed');
  }

  private loseLease(reason: string): void {
    this.options.logger.warn({ reason, lease: this.leaseId }, 'lost the lease');
    this.leaseId = null;
    this.ownsKey = false;
    this.fencing.reset();
    this.options.onChange(reason);
  }

  private async campaign(): Promise<void> {
    if (this.stopped || !this.eligible || this.ownsKey || !this.leaseId) return;
    if (!this.fencing.isValid(monotonicMs())) return;
    const since = new Date().toISOString();
    const record: LeaderRecord = { ...this.options.self, since };
    try {
      const result = await this.options.store.campaign(this.options.keys.leader, JSON.stringify(record), this.leaseId);
      if (this.stopped) return;
      if (result.won) {
        // Another check: we may have become ineligible while the request was in flight.
        this.ownsKey = true;
        this.currentLeader = parseLeader(result.leader);
        this.options.logger.info({ term: this.currentLeader?.term }, 'won the VIP');
        if (!this.eligible) {
          await this.resign('became ineligible while campaigning');
          return;
        }
        this.options.onChange('won the election');
      } else if (result.leader?.lease === this.leaseId) {
        // Still ours from before a resign that never reached etcd: take it back.
        this.ownsKey = true;
        this.currentLeader = parseLeader(result.leader);
        this.options.onChange('reclaimed the leader key');
      } else {
        this.updateLeader(result.leader);
      }
      this.noteRecovered();
    } catch (error) {
      if (/requested lease not found/i.test((error as Error).message)) {
        this.loseLease('the lease expired in etcd');
      } else {
        this.noteError('campaign failed', error);
      }
    }
  }

  private updateLeader(stored: StoredValue | null): void {
    const leader = parseLeader(stored);
    const before = this.currentLeader;
    this.currentLeader = leader;
    if (this.ownsKey && (!stored || stored.lease !== this.leaseId)) {
      this.ownsKey = false;
      this.options.logger.warn({ term: leader?.term }, 'the leader key is no longer ours');
      this.options.onChange('the leader key is no longer ours');
    } else if (before?.term !== leader?.term) {
      this.options.onChange('leader changed');
    }
  }

  private async watchLeader(): Promise<void> {
    try {
      const watcher = await this.options.store.watchKey(this.options.keys.leader);
      watcher.on('put', (kv) => {
        this.updateLeader({
          key: kv.key.toString(),
          value: kv.value.toString(),
          createRevision: Number(kv.create_revision),
          lease: String(kv.lease),
        });
      });
      watcher.on('delete', () => {
        this.updateLeader(null);
        void this.campaign();
      });
      watcher.on('error', (error) => this.noteError('leader watch failed', error));
      this.watcher = watcher;
    } catch (error) {
      this.noteError('could not watch the leader key; polling instead', error);
    }
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
