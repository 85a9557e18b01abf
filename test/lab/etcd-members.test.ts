import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Lab, type LabNode } from '../../lab/lab';
import { VipObserver } from '../../lab/observer';
import { mustRun, waitFor } from '../../lab/shell';
import { assertNeverTwoHolders, explained, singleHolder, takeoverFrom, stopObserver } from './helpers';

interface EndpointStatus {
  Endpoint: string;
  Status: { header: { member_id: number; revision: number }; leader: number };
}

/**
 * A three-member etcd, each node's agent talking to its own member only, as `vipd init` and
 * `vipd join` set up embedded members. A frozen member (SIGSTOP: it accepts connections
 * and never answers, like a hung or powered-off machine) must not move the VIP unless it is
 * the holder's own.
 */
describe('fast profile on a three-member etcd: a frozen member', { timeout: 300_000 }, () => {
  let lab: Lab;
  let observer: VipObserver;
  let endpoints: string[] = [];
  const frozen = new Set<number>();

  async function status(): Promise<EndpointStatus[]> {
    const live = endpoints.filter((_, index) => !frozen.has(index));
    const out = await mustRun('ip', ['netns', 'exec', lab.etcdNs, 'etcdctl', '--endpoints', live.join(','), '--command-timeout=2s', 'endpoint', 'status', '-w', 'json']);
    return JSON.parse(out) as EndpointStatus[];
  }

  function freeze(index: number): void {
    process.kill(lab.etcdMemberPid(index), 'SIGSTOP');
    frozen.add(index);
  }

  function thaw(index: number): void {
    process.kill(lab.etcdMemberPid(index), 'SIGCONT');
    frozen.delete(index);
  }

  const memberOf = (node: LabNode): number => lab.nodes.indexOf(node);

  before(async () => {
    lab = await Lab.create({ nodes: 3, config: { election: { profile: 'fast' } } });
    endpoints = await lab.startEtcdCluster(3);
    lab.nodes.forEach((node, index) => lab.writeConfig(node, { etcd: { endpoints: [endpoints[index]] } }));
    observer = await VipObserver.start(lab.vip, lab.nodes);
    for (const node of lab.nodes) lab.startAgent(node);
  });

  after(async () => {
    for (const index of [...frozen]) thaw(index);
    try {
      stopObserver(observer);
    } finally {
      await lab?.destroy();
    }
  });

  test("another node's member, not etcd's leader: no move while the holder renews 100 times", () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      const before = await status();
      const leader = before.findIndex((entry) => entry.Status.header.member_id === entry.Status.leader);
      const victim = [0, 1, 2].find((index) => index !== leader && index !== memberOf(holder));
      assert.ok(victim !== undefined);
      const movesBefore = observer.intervals.length;
      const revisionBefore = Math.max(...before.map((entry) => entry.Status.header.revision));
      freeze(victim);
      try {
        // The holder rewrites the leader key every 40 ms: 100 revisions is about 4 s of renewals.
        await waitFor('the holder to renew 100 times with a member frozen', async () => Math.max(...(await status()).map((entry) => entry.Status.header.revision)) >= revisionBefore + 100, 30_000, 250);
        assert.deepEqual(observer.currentHolders(), [holder.name]);
        assert.equal(observer.intervals.length, movesBefore, 'the VIP moved');
      } finally {
        thaw(victim);
      }
      assertNeverTwoHolders(observer);
    }));

  test("the holder's own member: the VIP moves to a node whose member answers", () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      freeze(memberOf(holder));
      try {
        await takeoverFrom(lab, observer, holder, 30_000);
      } finally {
        thaw(memberOf(holder));
      }
      assertNeverTwoHolders(observer);
    }));
});
