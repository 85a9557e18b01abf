/**
 * The fast profile's takeover after an etcd leader change (src/election/hold.ts): a holder
 * whose node still answers on the segment gets a new window; a node that is gone does not.
 * Either way the plain rule's wait (holdTimeout after the last write seen) has passed first.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ElectionConfig } from '../../src/config/config';
import { holdFor, type HoldHost } from '../../src/election/hold';
import type { EtcdStore, StoredValue } from '../../src/store/etcd-store';
import { ClusterKeys } from '../../src/store/keys';
import type { Leader } from '../../src/store/records';
import { waitFor } from '../../lab/shell';

const FAST: ElectionConfig = {
  profile: 'fast',
  leaseTtlSeconds: 2,
  leaseRenewIntervalMs: 400,
  renewIntervalMs: 10,
  holdTimeoutMs: 60,
  fencingMarginMs: 10,
};

const keys = new ClusterKeys('hold');
const holder: Leader = { node: 'node-2', ip: '192.0.2.12', mac: '02:00:00:00:00:02', since: '2026-12-07T00:00:00.000Z', term: 7 };
const seen: StoredValue = { key: keys.leader, value: JSON.stringify(holder), createRevision: 40, modRevision: 41, lease: '9' };

interface Scripted {
  reads: number;
  swaps: number;
  probes: string[];
  tookOver: number;
}

/** A follower's hold over a store whose raft term moves on before every read of the key. */
async function followAcrossLeaderChange(holderAnswers: ((holder: Leader) => Promise<boolean>) | undefined, body: (script: Scripted) => Promise<void>): Promise<void> {
  const script: Scripted = { reads: 0, swaps: 0, probes: [], tookOver: 0 };
  const store = {
    raftTerm: 1,
    async readWithTerm(): Promise<{ stored: StoredValue | null; raftTerm: number }> {
      // etcd changes leader again before every read.
      script.reads += 1;
      return { stored: seen, raftTerm: 1 + script.reads };
    },
    async compareAndSwap(): Promise<{ swapped: boolean; current: StoredValue | null }> {
      script.swaps += 1;
      return { swapped: true, current: null };
    },
  };
  const host: HoldHost = {
    store: store as unknown as EtcdStore,
    keys,
    config: FAST,
    held: () => null,
    ownsKey: () => false,
    holding: () => false,
    isStale: () => false,
    candidateLease: () => '5',
    newRecord: (term) => ({ ...holder, node: 'node-1', ip: '192.0.2.11', term }),
    renewed: () => undefined,
    keyTaken: () => undefined,
    saw: () => undefined,
    following: () => script.tookOver === 0,
    campaign: () => undefined,
    leader: () => holder,
    ...(holderAnswers
      ? {
          holderAnswers: async (asked: Leader) => {
            script.probes.push(asked.ip);
            return await holderAnswers(asked);
          },
        }
      : {}),
    tookOver: async () => {
      script.tookOver += 1;
    },
    noteError: () => undefined,
  };
  const hold = holdFor(host);
  hold.start();
  hold.observed(seen, false);
  try {
    await body(script);
  } finally {
    hold.stop();
  }
}

test('after an etcd leader change, a holder whose node is silent on the segment is taken over at once, not given a new window', async () => {
  await followAcrossLeaderChange(async () => false, async (script) => {
    await waitFor('the takeover', () => (script.tookOver > 0 ? true : undefined), 2000, 5);
    assert.equal(script.swaps, 1);
    assert.equal(script.reads, 1, 'one read, at the end of the first window: no second window');
    assert.deepEqual(script.probes, ['192.0.2.12'], "the holder's own node address was asked");
  });
});

test('after an etcd leader change, a holder whose node answers gets a new window, as before', async () => {
  await followAcrossLeaderChange(async () => true, async (script) => {
    await waitFor('two windows', () => (script.reads >= 2 ? true : undefined), 2000, 5);
    assert.equal(script.swaps, 0, 'no takeover while the holder answers and etcd keeps changing leader');
    assert.ok(script.probes.length >= 2);
  });
});

test('without a way to ask the segment, the holder gets a new window, as before; a failed probe counts as an answer', async () => {
  await followAcrossLeaderChange(undefined, async (script) => {
    await waitFor('two windows', () => (script.reads >= 2 ? true : undefined), 2000, 5);
    assert.equal(script.swaps, 0);
  });
  await followAcrossLeaderChange(async () => {
    throw new Error('no raw socket');
  }, async (script) => {
    await waitFor('two windows', () => (script.reads >= 2 ? true : undefined), 2000, 5);
    assert.equal(script.swaps, 0);
  });
});
