/**
 * Keeps the embedded etcd's raft leadership off the node that holds the VIP.
 *
 * If one node carries both, its death costs an etcd leader election first, and the new etcd
 * leader then extends every lease by its TTL plus the election timeout (etcd's lessor
 * Promote, run when a new leader applies its first entry): the VIP waits for both. With the
 * leadership elsewhere, the holder's death is only the holder's.
 *
 * Only the leader's own member can hand leadership over (etcd's MoveLeader RPC answers
 * ErrNotLeader anywhere else), so the holder asks its own member, and only while that
 * member leads. The transfer is raft's (MsgTimeoutNow): the target campaigns at once, with
 * no election timeout; writes pause for about one round trip.
 */
import type { Logger } from 'pino';
import type { EtcdStore } from '../store/etcd-store';

export interface LeadershipOptions {
  store: EtcdStore;
  /** This node's own etcd member. */
  ownEndpoint: string;
  /** Whether this node holds the VIP now. */
  holding: () => boolean;
  /** How often the holder checks who leads etcd. */
  intervalMs: number;
  /** Deadline of each status or transfer call. */
  callTimeoutMs: number;
  logger: Logger;
}

export interface LeadershipStatus {
  memberId: string;
  leaderId: string;
  raftIndex: bigint;
}

export class EtcdLeadership {
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  private checkAgain = false;
  private stopped = false;
  private lastError = '';

  constructor(private readonly options: LeadershipOptions) {}

  start(): void {
    this.timer = setInterval(() => this.nudge(), this.options.intervalMs);
  }

  /** Checks now: the agent calls this when this node starts holding the VIP. */
  nudge(): void {
    if (this.stopped) return;
    if (this.checking) {
      this.checkAgain = true;
      return;
    }
    this.checking = true;
    void this.check()
      .catch((error: unknown) => this.noteError(error))
      .finally(() => {
        this.checking = false;
        if (this.checkAgain) {
          this.checkAgain = false;
          this.nudge();
        }
      });
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  async status(endpoint: string): Promise<LeadershipStatus> {
    const response = await this.options.store.clientFor(endpoint).maintenance.status({ deadline: Date.now() + this.options.callTimeoutMs });
    return { memberId: String(response.header.member_id), leaderId: String(response.leader), raftIndex: BigInt(response.raftIndex) };
  }

  private async check(): Promise<void> {
    const { store, ownEndpoint, logger } = this.options;
    if (!this.options.holding()) return;
    const own = await this.status(ownEndpoint);
    if (own.leaderId !== own.memberId) return;
    const members = await store.listMembers();
    // The most up-to-date voter that answers: it wins the transfer's election at once.
    let best: { id: string; name: string; raftIndex: bigint } | null = null;
    for (const member of members) {
      if (member.isLearner || member.id === own.memberId || member.clientURLs.length === 0) continue;
      try {
        const status = await this.status(member.clientURLs[0]!);
        if (status.leaderId !== own.memberId) continue;
        if (!best || status.raftIndex > best.raftIndex) best = { id: member.id, name: member.name, raftIndex: status.raftIndex };
      } catch {
        // Down or frozen: not a transferee.
      }
    }
    if (!best || !this.options.holding()) return;
    await store.clientFor(ownEndpoint).maintenance.moveLeader({ targetID: best.id }, { deadline: Date.now() + 4 * this.options.callTimeoutMs });
    this.lastError = '';
    logger.info({ to: best.name }, 'moved etcd leadership off the VIP holder');
  }

  private noteError(error: unknown): void {
    const message = (error as Error).message;
    if (message !== this.lastError) this.options.logger.warn({ err: message }, 'could not keep etcd leadership off the VIP holder');
    this.lastError = message;
  }
}
