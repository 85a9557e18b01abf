import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import pino from 'pino';
import type { ElectionConfig } from '../../src/config/config';
import { Election } from '../../src/election/election';
import type { CampaignResult, EtcdStore, StoredValue } from '../../src/store/etcd-store';
import { ClusterKeys } from '../../src/store/keys';
import { waitFor } from '../../lab/shell';

const DEFAULT_PROFILE: ElectionConfig = {
  profile: 'default',
  leaseTtlSeconds: 2,
  leaseRenewIntervalMs: 30,
  renewIntervalMs: 30,
  holdTimeoutMs: 2000,
  fencingMarginMs: 200,
};

interface PendingCampaign {
  leaseId: string;
  value: string;
  answer: (result: CampaignResult) => void;
}

/** The part of etcd the default profile's election uses, with campaigns answered by the test. */
class ScriptedStore {
  private nextLease = 0;
  readonly liveLeases = new Set<string>();
  /** Every lease a renewal was sent for, in order. */
  readonly renewals: string[] = [];
  /** Campaigns sent and not yet answered, and the most there ever were at once. */
  inFlight = 0;
  maxInFlight = 0;
  readonly campaigns: PendingCampaign[] = [];
  readonly watchers = new Map<string, EventEmitter & { cancel(): Promise<void> }>();

  async grantLease(ttlSeconds: number): Promise<{ id: string; ttlSeconds: number }> {
    const id = String(++this.nextLease);
    this.liveLeases.add(id);
    return { id, ttlSeconds };
  }
  async renewLease(leaseId: string): Promise<number> {
    this.renewals.push(leaseId);
    return this.liveLeases.has(leaseId) ? 2 : 0;
  }
  async campaign(_leader: string, _handoff: string, value: string, leaseId: string): Promise<CampaignResult> {
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    return await new Promise((resolve) =>
      this.campaigns.push({
        leaseId,
        value,
        answer: (result) => {
          this.inFlight -= 1;
          resolve(result);
        },
      }),
    );
  }
  async watchKey(key: string): Promise<EventEmitter & { cancel(): Promise<void> }> {
    const watcher = Object.assign(new EventEmitter(), { cancel: async () => undefined });
    this.watchers.set(key, watcher);
    return watcher;
  }
  /** What a read of the leader key finds, and how many reads were made. */
  leaderKey: StoredValue | null = null;
  reads = 0;
  async readWithTerm(): Promise<{ stored: StoredValue | null; raftTerm: number }> {
    this.reads += 1;
    return { stored: this.leaderKey, raftTerm: 1 };
  }
  async put(): Promise<void> {}
  async get(): Promise<StoredValue | null> {
    return null;
  }
  async getPrefix(): Promise<StoredValue[]> {
    return [];
  }
  async deleteRange(): Promise<void> {}
  async delete(): Promise<void> {}
  async resign(): Promise<boolean> {
    return true;
  }
  async revokeLease(): Promise<void> {}
}

const keys = new ClusterKeys('race');
const otherHolder: StoredValue = {
  key: keys.leader,
  value: JSON.stringify({ node: 'node-2', ip: '192.0.2.12', mac: '02:00:00:00:00:02', since: '2026-12-07T00:00:00.000Z' }),
  createRevision: 460,
  modRevision: 460,
  lease: '99',
};
const lost: CampaignResult = { won: false, leader: otherHolder, handoff: null };
const lostToNode3: CampaignResult = { won: false, leader: { ...otherHolder, value: otherHolder.value.replace(/node-2/g, 'node-3'), lease: '98' }, handoff: null };

/**
 * Runs `body` against an eligible, started election on a scripted store, then stops it.
 * `heldOn` lists every change after which the election said it held the VIP.
 */
async function withElection(body: (store: ScriptedStore, election: Election, heldOn: string[]) => Promise<void>, followerPollMs = 60_000): Promise<void> {
  const store = new ScriptedStore();
  const heldOn: string[] = [];
  const election: Election = new Election({
    store: store as unknown as EtcdStore,
    keys,
    self: { node: 'node-1', ip: '192.0.2.11', mac: '02:00:00:00:00:01' },
    config: DEFAULT_PROFILE,
    followerPollMs,
    logger: pino({ level: 'silent' }),
    onChange: (reason) => {
      if (election.holdingUntil() !== null) heldOn.push(reason);
    },
    releaseVip: async () => undefined,
  });
  await election.setEligible(true, 'test');
  void election.start();
  try {
    await body(store, election, heldOn);
  } finally {
    await election.stop(false);
  }
}

test('a campaign won under a lease that expired while the answer was on its way does not make this node a holder', () =>
  withElection(async (store, election, heldOn) => {
    // First campaign: another node holds the VIP.
    await waitFor('the first campaign', () => store.campaigns.length === 1, 5_000, 5);
    store.campaigns[0]?.answer(lost);
    // The key goes; this node campaigns under lease 1, and the answer is slow.
    const watcher = await waitFor('the leader watch', () => store.watchers.get(keys.leader), 5_000, 5);
    watcher.emit('delete');
    await waitFor('the second campaign', () => store.campaigns.length === 2, 5_000, 5);
    // Meanwhile lease 1 expires, and the election takes lease 2. The round that took it asks
    // for a campaign under it: sent at once (two in flight), or held back until the slow one
    // is answered, in which case the next round renews lease 2. Either way that round is over.
    store.liveLeases.delete('1');
    await waitFor('the round that took lease 2 to end', () => store.renewals.includes('2') || store.campaigns.some((c) => c.leaseId === '2'), 5_000, 5);
    // The slow answer: won, under lease 1, whose key etcd has since deleted with the lease.
    const slow = store.campaigns[1];
    assert.equal(slow?.leaseId, '1');
    slow?.answer({ won: true, leader: { key: keys.leader, value: slow.value, createRevision: 455, modRevision: 455, lease: '1' }, handoff: null });
    // Whatever it campaigns next finds node-3 holding; wait until the election says so.
    const answered = new Set<PendingCampaign>(store.campaigns.slice(0, 2));
    await waitFor(
      'the election to follow node-3',
      () => {
        for (const pending of store.campaigns) {
          if (answered.has(pending)) continue;
          answered.add(pending);
          pending.answer(lostToNode3);
        }
        return election.leader()?.node === 'node-3' || heldOn.length > 0;
      },
      5_000,
      5,
    );
    assert.deepEqual(heldOn, [], 'held the VIP on a term whose key is gone');
    assert.equal(election.holdingUntil(), null);
    assert.equal(election.leader()?.node, 'node-3');
    assert.equal(store.maxInFlight, 1, 'two campaigns were in flight at once');
  }));

test('campaigns go one at a time; a trigger during one runs another once it is answered', () =>
  withElection(async (store, election) => {
    await waitFor('the first campaign', () => store.campaigns.length === 1, 5_000, 5);
    const watcher = await waitFor('the leader watch', () => store.watchers.get(keys.leader), 5_000, 5);
    watcher.emit('delete');
    watcher.emit('delete');
    store.campaigns[0]?.answer(lost);
    // The two triggers during the first campaign ask for one more, sent only after the answer.
    await waitFor('the campaign the triggers asked for', () => store.campaigns.length >= 2, 5_000, 5);
    assert.equal(store.maxInFlight, 1, 'a second campaign was sent while the first was in flight');
    store.campaigns[1]?.answer(lostToNode3);
    // Once that answer is taken in (the election follows node-3), no third campaign follows.
    await waitFor('the election to follow node-3', () => election.leader()?.node === 'node-3', 5_000, 5);
    assert.equal(store.campaigns.length, 2);
    assert.equal(store.maxInFlight, 1);
  }));

test("a follower's poll reads the leader key and campaigns only when it is vacant (a failed campaign still costs etcd a raft entry)", () =>
  withElection(async (store) => {
    // Before the first poll (the election has only just been started).
    store.leaderKey = otherHolder;
    await waitFor('the first campaign', () => store.campaigns.length === 1, 5_000, 5);
    store.campaigns[0]?.answer(lost);
    await waitFor('five polls', () => store.reads >= 5, 5_000, 5);
    assert.equal(store.campaigns.length, 1, 'no campaign while another node holds the key');
    store.leaderKey = null;
    await waitFor('a campaign once the key is vacant', () => store.campaigns.length === 2, 5_000, 5);
    store.campaigns[1]?.answer(lost);
  }, 10));
