import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Lab } from '../../lab/lab';
import { VipObserver } from '../../lab/observer';
import { waitFor } from '../../lab/shell';
import { assertNeverTwoHolders, countInLog, explained, singleHolder, startAgentAndWait, takeoverFrom, useLab } from './helpers';

const FENCED = 'fencing deadline passed without an acknowledged renewal';

describe('static IPv4 VIP on three nodes', { timeout: 300_000 }, () => {
  let lab: Lab;
  let observer: VipObserver;

  useLab({ nodes: 3 }, (fixture) => ({ lab, observer } = fixture));

  test('exactly one node holds the VIP', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      assert.deepEqual(await lab.holders(), [holder.name]);
      assertNeverTwoHolders(observer);
    }));

  test('the client pings the VIP and reaches the holder over TCP', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      assert.equal(await lab.waitClientReaches(holder.name), holder.name);
      assertNeverTwoHolders(observer);
    }));

  test('vipd status shows the holder, its MAC and the requested IP', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      const node = lab.nodes[2]!;
      const jsonpath = await lab.vipd(node, [
        'status', '--config', node.configPath, '-o', 'jsonpath={.metadata.annotations.kube-vip\\.io/vipHost}',
      ]);
      assert.equal(jsonpath.code, 0, jsonpath.stderr);
      assert.equal(jsonpath.stdout, holder.name);

      const annotations = await lab.vipd(node, ['status', '--config', node.configPath, '-o', 'jsonpath={.metadata.annotations}']);
      const parsed = JSON.parse(annotations.stdout) as Record<string, string>;
      assert.equal(parsed['kube-vip.io/vipHost'], holder.name);
      assert.equal(parsed['kube-vip.io/requestedIP'], lab.vip);
      assert.match(parsed['kube-vip.io/hwaddr'] ?? '', /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);

      const json = JSON.parse((await lab.vipd(node, ['status', '--config', node.configPath, '-o', 'json'])).stdout) as {
        kind: string;
        spec: { address: string; mode: string };
        status: { holder: string; holderIP: string; term: number; since: string };
      };
      assert.equal(json.kind, 'ManagementAddress');
      assert.deepEqual([json.spec.address, json.spec.mode], [lab.vip, 'static']);
      assert.equal(json.status.holderIP, holder.ip);
      assert.ok(json.status.term > 0);
      assert.ok(!Number.isNaN(Date.parse(json.status.since)));

      const table = await lab.vipd(node, ['status', '--config', node.configPath]);
      assert.match(table.stdout, new RegExp(`HOLDER\\s+${holder.name} \\(${holder.ip.replace(/\./g, '\\.')}\\)`));
      assertNeverTwoHolders(observer);
    }));

  test('holder agent SIGKILL: another node takes the VIP and the client reaches it', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      await lab.stopAgent(holder, 'SIGKILL');
      await takeoverFrom(lab, observer, holder);
      assertNeverTwoHolders(observer);
      await startAgentAndWait(lab, holder);
    }));

  test('holder interface down: another node takes the VIP and the client reaches it', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      await lab.setLink(holder, false);
      try {
        await takeoverFrom(lab, observer, holder);
      } finally {
        await lab.setLink(holder, true);
      }
      assertNeverTwoHolders(observer);
    }));

  test('holder SIGTERM: it exits 0, another node takes the VIP at once', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      const termBefore = await currentTerm(lab);
      assert.equal(await lab.stopAgent(holder, 'SIGTERM'), 0);
      // The VIP was removed before the lease was revoked.
      assert.ok(!(await lab.holders()).includes(holder.name));
      await takeoverFrom(lab, observer, holder);
      assert.ok((await currentTerm(lab)) > termBefore, 'the term grows with every new holder');
      assertNeverTwoHolders(observer);
      await startAgentAndWait(lab, holder);
    }));

  test('etcd stopped: the holder drops the VIP on its fencing deadline, before any other node has it', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      const fencedBefore = countInLog(holder, FENCED);
      const seenBefore = observer.intervals.length;
      await lab.stopEtcd('SIGKILL');
      try {
        await waitFor('the VIP to be dropped', () => observer.currentHolders().length === 0, 30_000, 20);
        // Dropped by the fencing deadline (no acknowledged renewal), not by some other path.
        await waitFor(`${holder.name} to log that its fencing deadline passed`, () => countInLog(holder, FENCED) > fencedBefore, 10_000, 50);
      } finally {
        await lab.startEtcd();
      }
      const goneAt = observer.lastRelease(holder.name);
      assert.ok(goneAt !== null);
      // Safety, not speed: once etcd is back the VIP may go anywhere, but only after the old
      // holder was seen without it (its first sample without the VIP, not its last with it).
      await singleHolder(lab, observer, 30_000);
      const early = observer.intervals.slice(seenBefore).filter((entry) => entry.node !== holder.name && entry.from <= goneAt);
      assert.deepEqual(early, [], `a node had the VIP before ${holder.name} was seen without it`);
      assertNeverTwoHolders(observer);
    }));

  test('etcd back: one node holds the VIP again and the client reaches it', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer, 30_000);
      await lab.waitClientReaches(holder.name);
      assertNeverTwoHolders(observer);
    }));
});

describe('static IPv6 VIP on three nodes', { timeout: 300_000 }, () => {
  let lab: Lab;
  let observer: VipObserver;

  useLab({ nodes: 3, ipv6: true }, (fixture) => ({ lab, observer } = fixture));

  test('one holder, and the VIP moves on SIGTERM and on SIGKILL with the client following', () =>
    explained(lab, async () => {
      const first = await singleHolder(lab, observer);
      await lab.waitClientReaches(first.name);
      assert.equal(await lab.stopAgent(first, 'SIGTERM'), 0);
      const second = await takeoverFrom(lab, observer, first);
      await lab.stopAgent(second, 'SIGKILL');
      await takeoverFrom(lab, observer, second);
      assertNeverTwoHolders(observer);
    }));
});

async function currentTerm(lab: Lab): Promise<number> {
  const node = lab.nodes[0]!;
  const result = await lab.vipd(node, ['status', '--config', node.configPath, '-o', 'jsonpath={.status.term}']);
  return Number(result.stdout);
}
