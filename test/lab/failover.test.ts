import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Lab } from '../../lab/lab';
import { VipObserver } from '../../lab/observer';
import { waitFor } from '../../lab/shell';
import { assertNeverTwoHolders, explained, singleHolder, startAgentAndWait, takeoverFrom, useLab } from './helpers';

const LEASE_TTL_SECONDS = 2;

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

  test('etcd stopped: the holder drops the VIP by its fencing deadline', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      const stoppedAt = process.hrtime.bigint();
      await lab.stopEtcd('SIGKILL');
      await waitFor('the VIP to be dropped', () => observer.currentHolders().length === 0, 10_000, 20);
      const droppedAt = observer.lastRelease(holder.name);
      assert.ok(droppedAt !== null);
      // Safety, not speed: the lease could pass to another node LEASE_TTL after the last renewal
      // was sent, which was before etcd stopped. The VIP must be gone by then.
      const afterStopMs = Number(droppedAt - stoppedAt) / 1e6;
      assert.ok(afterStopMs <= LEASE_TTL_SECONDS * 1000, `VIP dropped ${afterStopMs}ms after etcd stopped`);
      assertNeverTwoHolders(observer);
    }));

  test('etcd back: one node holds the VIP again and the client reaches it', () =>
    explained(lab, async () => {
      await lab.startEtcd();
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
