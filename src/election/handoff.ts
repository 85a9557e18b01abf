import type { Logger } from 'pino';
import type { Watcher } from 'etcd3';
import { monotonicMs } from '../clock';
import { unhealthyTargetReason, unsteadyTargetReason } from '../health/cluster';
import { parseRecord, type HandoffRecord, type Leader, type MoveRequest, type ReleaseRecord } from '../store/records';
import { storedFromWatch, type EtcdStore, type StoredValue } from '../store/etcd-store';
import type { ClusterKeys } from '../store/keys';
import { readCordon } from '../store/maintenance';

/** What planned moves may ask of the election they serve. */
export interface MovesHost {
  readonly store: EtcdStore;
  readonly keys: ClusterKeys;
  readonly node: string;
  readonly leaseTtlSeconds: number;
  readonly logger: Logger;
  /** Removes the VIP from this node; `cause` tells hooks why it left. */
  releaseVip(cause: PlannedMoveCause): Promise<void>;
  /** The lease and term this node holds the key under (not while handing it off), or null. */
  held(): { leaseId: string; term: number } | null;
  /** The lease to claim with while this node is a follower, or null. */
  followerLease(): string | null;
  /** Whether a watched reservation may be claimed now. */
  mayClaim(): boolean;
  isStale(leaseId: string): boolean;
  /** The holder to name in the history as the one the VIP came from. */
  previousHolder(): Leader | null;
  newRecord(): Omit<Leader, 'term'>;
  releaseRecord(term: number, reason: string): ReleaseRecord;
  // The role's transitions for a planned move; each returns false when the role had moved on.
  beginHandoff(to: string, reason: string, cause: PlannedMoveCause): boolean;
  endHandoff(handedOff: boolean): void;
  beginClaim(): void;
  endClaim(): void;
  wonByHandoff(record: Leader, value: string, sendTime: number, previous: Leader | null, reason: string, from: string): Promise<void>;
  noteError(what: string, error: unknown): void;
}

/** Why a planned move happens: asked for by a person, or the holder's health checks fail. */
export type PlannedMoveCause = 'handoff' | 'health';

/**
 * Planned moves: the holder removes the VIP, then in one transaction deletes the leader key
 * and reserves it for the target (the handoff key); only the target may claim it.
 */
export class PlannedMoves {
  constructor(private readonly host: MovesHost) {}

  /** The holder polls as well: a move request put while its watch was down is still served. */
  async check(): Promise<void> {
    try {
      const request = parseRecord<MoveRequest>(await this.host.store.get(this.host.keys.moveRequest));
      if (request) await this.handle(request);
    } catch (error) {
      this.host.noteError('could not read move requests', error);
    }
  }

  async watch(track: (watcher: Watcher) => void): Promise<void> {
    const { store, keys } = this.host;
    // The target claims as soon as it sees the reservation, without first losing a campaign to it.
    const handoffWatch = await store.watchKey(keys.handoff);
    handoffWatch.on('put', (kv) => {
      if (!this.host.mayClaim()) return;
      void this.claim(storedFromWatch(kv), this.host.previousHolder()).catch((error: unknown) => this.host.noteError('claiming the handoff failed', error));
    });
    handoffWatch.on('error', (error) => this.host.noteError('handoff watch failed', error));
    track(handoffWatch);

    const moveWatch = await store.watchKey(keys.moveRequest);
    moveWatch.on('put', (kv) => {
      const request = parseRecord<MoveRequest>(storedFromWatch(kv));
      if (request) void this.handle(request);
    });
    moveWatch.on('error', (error) => this.host.noteError('move-request watch failed', error));
    track(moveWatch);
  }

  /** Claims a reservation if it names this node. */
  async claim(stored: StoredValue, previous: Leader | null): Promise<void> {
    const handoff = parseRecord<HandoffRecord>(stored);
    const leaseId = this.host.followerLease();
    if (!handoff || handoff.to !== this.host.node || !leaseId) return;
    const record = this.host.newRecord();
    const value = JSON.stringify(record);
    const sendTime = monotonicMs();
    this.host.beginClaim();
    let revision: number | null;
    try {
      revision = await this.host.store.claimHandoff(this.host.keys.leader, stored, value, leaseId);
    } finally {
      this.host.endClaim();
    }
    if (revision === null || this.host.isStale(leaseId)) return;
    await this.host.wonByHandoff({ ...record, term: revision }, value, sendTime, previous, handoff.reason, handoff.from);
  }

  private async handle(request: MoveRequest): Promise<void> {
    const held = this.host.held();
    if (!held) return;
    const { keys, store, logger } = this.host;
    if (request.to === this.host.node) {
      await store.delete(keys.moveRequest);
      return;
    }
    if (!(await store.get(keys.alive(request.to)))) {
      logger.warn({ to: request.to }, 'refusing a move to a node that is not running');
      await store.delete(keys.moveRequest);
      return;
    }
    const cause: PlannedMoveCause = request.cause === 'health' ? 'health' : 'handoff';
    // An unhealthy target is not eligible and would never claim the reservation: the VIP would be gone until it expires.
    // A move for health also waits while the target's own checks have started failing (agent/health-gate.ts).
    const unhealthy = await (cause === 'health' ? unsteadyTargetReason : unhealthyTargetReason)(store, keys, request.to);
    if (unhealthy) {
      logger.warn({ to: request.to, reason: unhealthy }, 'refusing a move to a node that is not healthy');
      await store.delete(keys.moveRequest);
      return;
    }
    // A cordoned target stands back while this node's uncordoned peers run: it would not claim (issue 14).
    if (await readCordon(store, keys, request.to)) {
      logger.warn({ to: request.to }, 'refusing a move to a cordoned node');
      await store.delete(keys.moveRequest);
      return;
    }
    const reason =
      cause === 'health'
        ? `health: ${request.why ?? 'checks failing'}; planned move to ${request.to}${request.id ? ` (move ${request.id})` : ''}`
        : `planned move to ${request.to} requested by ${request.requestedBy}${request.id ? ` (move ${request.id})` : ''}`;
    await this.give(request.to, reason, cause);
  }

  /** The holder hands the VIP on of its own accord (its agent is stopping); false if it does not hold it. */
  async handOff(to: string, reason: string): Promise<boolean> {
    return await this.give(to, reason, 'handoff');
  }

  private async give(to: string, reason: string, cause: PlannedMoveCause): Promise<boolean> {
    const held = this.host.held();
    if (!held) return false;
    const { keys, store, logger } = this.host;
    const { leaseId, term } = held;
    // Granted before the VIP goes, so the outage holds one etcd write fewer; the reservation
    // expires with it if the target never claims it.
    const handoffLease = await store.grantLease(this.host.leaseTtlSeconds);
    if (!this.host.beginHandoff(to, reason, cause)) return false;
    let handedOff = false;
    try {
      // The VIP must be gone from here before the target can take the key.
      await this.host.releaseVip(cause);
      const handoff: HandoffRecord = { from: this.host.node, to, term, reason };
      const released = await store.resign(keys.leader, leaseId, {
        put: [
          { key: keys.handoff, value: JSON.stringify(handoff), lease: handoffLease.id },
          { key: keys.lastRelease, value: JSON.stringify(this.host.releaseRecord(term, reason)) },
        ],
        delete: [keys.moveRequest],
      });
      handedOff = true;
      logger.info({ to, term, released }, 'handed the VIP off');
    } finally {
      this.host.endHandoff(handedOff);
    }
    return handedOff;
  }
}
