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
  readonly campaigns: PendingCampaign[] = [];
  readonly watchers = new Map<string, EventEmitter & { cancel(): Promise<void> }>();

  async grantLease(ttlSeconds: number): Promise<{ id: string; ttlSeconds: number }> {
    const id = String(++this.nextLease);
    this.liveLeases.add(id);
    return { id, ttlSeconds };
  }
  async renewLease(leaseId: string): Promise<number> {
    return this.liveLeases.has(leaseId) ? 2 : 0;
  }
  async campaign(_leader: string, _handoff: string, value: string, leaseId: string): Promise<CampaignResult> {
    return await new Promise((answer) => this.campaigns.push({ leaseId, value, answer }));
  }
  async watchKey(key: string): Promise<EventEmitter & { cancel(): Promise<void> }> {
    const watcher = Object.assign(new EventEmitter(), { cancel: async () => undefined });
    this.watchers.set(key, watcher);
    return watcher;
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

/** Runs `body` against an eligible, started election on a scripted store, then stops it. */
async function withElection(body: (store: ScriptedStore, election: Election) => Promise<void>): Promise<void> {
  const store = new ScriptedStore();
  const election = new Election({
    store: store as unknown as EtcdStore,
    keys,
    self: { node: 'node-1', ip: '192.0.2.11', mac: '02:00:00:00:00:01' },
    config: DEFAULT_PROFILE,
    followerPollMs: 60_000,
    logger: pino({ level: 'silent' }),
    onChange: () => undefined,
    releaseVip: async () => undefined,
  });
  await election.setEligible(true, 'test');
  void election.start();
  try {
    await body(store, election);
  } finally {
    await election.stop(false);
  }
}

test('a campaign won under a lease that expired while the answer was on its way does not make this node a holder', () =>
  withElection(async (store, election) => {
    // First campaign: another node holds the VIP.
    await waitFor('the first campaign', () => store.campaigns.length === 1, 5_000, 5);
    store.campaigns[0]?.answer(lost);
    // The key goes; this node campaigns under lease 1, and the answer is slow.
    const watcher = await waitFor('the leader watch', () => store.watchers.get(keys.leader), 5_000, 5);
    watcher.emit('delete');
    await waitFor('the second campaign', () => store.campaigns.length === 2, 5_000, 5);
    // Meanwhile lease 1 expires, and the election takes lease 2.
    store.liveLeases.delete('1');
    await waitFor('a second lease', () => store.liveLeases.has('2'), 5_000, 5);
    await new Promise((resolve) => setTimeout(resolve, 100));
    // The slow answer: won, under lease 1, whose key etcd has since deleted with the lease.
    const slow = store.campaigns[1];
    assert.equal(slow?.leaseId, '1');
    slow?.answer({ won: true, leader: { key: keys.leader, value: slow.value, createRevision: 455, modRevision: 455, lease: '1' }, handoff: null });
    // Whatever it campaigns next finds the other node.
    const answered = new Set<PendingCampaign>(store.campaigns.slice(0, 2));
    const deadline = Date.now() + 500;
    while (Date.now() < deadline) {
      for (const pending of store.campaigns) {
        if (answered.has(pending)) continue;
        answered.add(pending);
        pending.answer(lost);
      }
      assert.equal(election.holdingUntil(), null, 'holding the VIP on a term whose key is gone');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal(election.leader()?.node, 'node-2');
  }));

test('campaigns go one at a time; a trigger during one runs another once it is answered', () =>
  withElection(async (store) => {
    await waitFor('the first campaign', () => store.campaigns.length === 1, 5_000, 5);
    const watcher = await waitFor('the leader watch', () => store.watchers.get(keys.leader), 5_000, 5);
    watcher.emit('delete');
    watcher.emit('delete');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(store.campaigns.length, 1, 'a second campaign was sent while the first was in flight');
    store.campaigns[0]?.answer(lost);
    await waitFor('the campaign the triggers asked for', () => store.campaigns.length === 2, 5_000, 5);
    store.campaigns[1]?.answer(lost);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(store.campaigns.length, 2);
  }));
