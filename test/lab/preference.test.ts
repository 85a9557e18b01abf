/**
 * Issue 14: node preference, cordons and live reload, on three nodes with the 10 ms observer.
 * Priorities: node-1 50, node-2 100, node-3 200.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import type { Lab, LabNode } from '../../lab/lab';
import type { VipObserver } from '../../lab/observer';
import { waitFor } from '../../lab/shell';
import { assertNeverTwoHolders, countInLog, explained, singleHolder, startAgentAndWait, takeoverFrom, useLab } from './helpers';

const PRIORITY: Record<string, number> = { 'node-1': 50, 'node-2': 100, 'node-3': 200 };
const PREEMPT_DELAY_MS = 3000;

interface StoredMove {
  from: string | null;
  to: string;
  reason: string;
  term: number;
}

interface StatusNode {
  name: string;
  priority?: number | null;
  cordon?: { strict: boolean } | null;
}

describe('node preference, cordons and live reload', { timeout: 900_000 }, () => {
  let lab: Lab;
  let observer: VipObserver;

  useLab({ nodes: 3 }, (fixture) => {
    ({ lab, observer } = fixture);
    for (const node of lab.nodes) writeConfigOf(node);
  });

  function writeConfigOf(node: LabNode, extra: { preempt?: boolean; priority?: number; file?: Record<string, unknown> } = {}): void {
    const election = extra.preempt ? { preempt: true, preemptDelay: `${PREEMPT_DELAY_MS}ms` } : {};
    lab.writeConfig(node, { node: { name: node.name, interface: 'mgmt-br', priority: extra.priority ?? PRIORITY[node.name] }, election, ...extra.file });
  }

  async function moves(): Promise<StoredMove[]> {
    const out = await lab.etcdctl('get', '--prefix', '/vipd/lab/events/', '--print-value-only');
    return out.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as StoredMove);
  }

  async function statusNodes(via: LabNode): Promise<StatusNode[]> {
    const result = await lab.vipd(via, ['status', '--config', via.configPath, '-o', 'json']);
    assert.equal(result.code, 0, result.stderr);
    return (JSON.parse(result.stdout) as { status: { nodes: StatusNode[] } }).status.nodes;
  }

  /** Waits until `node` holds the VIP (and only it). */
  async function holds(node: LabNode, timeoutMs = 30_000): Promise<void> {
    await waitFor(`${node.name} to hold the VIP`, () => observer.currentHolders().join() === node.name, timeoutMs, 20);
  }

  /** Watches for `ms`: `holder` keeps the VIP and no move is recorded. A measurement window, not a synchronisation. */
  async function staysPut(holder: LabNode, ms: number): Promise<void> {
    const before = (await moves()).length;
    const until = Date.now() + ms;
    while (Date.now() < until) {
      assert.deepEqual(observer.currentHolders().filter((name) => name !== holder.name), [], `the VIP left ${holder.name}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal((await moves()).length, before, 'a move was recorded');
  }

  /** The longest time no node held the VIP across the last change of holder (the outage of that move), in ms. */
  function lastGapMs(from: LabNode, to: LabNode): number {
    const gone = observer.lastRelease(from.name);
    const taken = [...observer.intervals].reverse().find((entry) => entry.node === to.name)?.from;
    assert.ok(gone !== null && taken !== undefined);
    return Number(taken - gone) / 1e6;
  }

  async function reload(node: LabNode, message: string): Promise<void> {
    const before = countInLog(node, message);
    assert.ok(node.agent?.kill('SIGHUP'), `${node.name} has no agent to signal`);
    await waitFor(`${node.name} to log "${message}"`, () => countInLog(node, message) > before, 20_000, 50);
  }

  const [n1, n2, n3] = [0, 1, 2].map((index) => (): LabNode => lab.nodes[index]!);

  test('a stopping holder hands the VIP off by a planned move; after a restart of every agent the highest priority gets the VIP', (t: TestContext) =>
    explained(lab, async () => {
      // The first start of a cluster has no priorities on record yet: whoever campaigns first wins.
      const first = await singleHolder(lab, observer, 60_000);
      await waitFor('every priority on record', async () => (await lab.etcdctl('get', '--prefix', '/vipd/lab/priorities/', '--keys-only')).split('\n').filter(Boolean).length === 3, 20_000, 100);
      // A holder hands off only to a running node: wait until every agent runs.
      await waitFor('every agent running', async () => (await lab.etcdctl('get', '--prefix', '/vipd/lab/alive/', '--keys-only')).split('\n').filter(Boolean).length === 3, 60_000, 100);
      // systemctl stop on the holder: a planned move, not a drop and a campaign.
      assert.equal(await lab.stopAgent(first, 'SIGTERM'), 0);
      const next = await takeoverFrom(lab, observer, first);
      assert.equal(countInLog(first, 'handed the VIP off'), 1);
      assert.match((await moves()).at(-1)!.reason, new RegExp(`^agent stopping on ${first.name}; planned move to ${next.name}`));
      t.diagnostic(`stop of the holder: ${lastGapMs(first, next).toFixed(0)} ms without a holder`);
      for (const node of lab.nodes) await lab.stopAgent(node, 'SIGTERM');
      // Lowest priority first: it must still leave the VIP to node-3.
      for (const node of [n1(), n2(), n3()]) lab.startAgent(node);
      await holds(n3(), 60_000);
      assert.equal((await moves()).at(-1)!.to, 'node-3');
      assertNeverTwoHolders(observer);
    }));

  test('the highest priority fails: the next priority takes over; it returns and, with preempt off, does not take the VIP back', () =>
    explained(lab, async () => {
      await holds(n3());
      await startAgentAndWaitIfStopped([n1(), n2()]);
      await lab.stopAgent(n3(), 'SIGKILL');
      const next = await takeoverFrom(lab, observer, n3());
      assert.equal(next.name, 'node-2', 'node-2 (priority 100) should win over node-1 (priority 50)');
      await startAgentAndWait(lab, n3());
      await staysPut(n2(), PREEMPT_DELAY_MS + 3000);
      assertNeverTwoHolders(observer);
    }));

  test('with preempt on, it takes the VIP back once, after the delay, by a planned move', (t: TestContext) =>
    explained(lab, async () => {
      await holds(n2());
      await lab.stopAgent(n3(), 'SIGTERM');
      writeConfigOf(n3(), { preempt: true });
      const before = (await moves()).length;
      // node-2's log spans the whole file: it may have handed off in the first test.
      const handoffsBefore = countInLog(n2(), 'handed the VIP off');
      const started = Date.now();
      lab.startAgent(n3());
      await holds(n3());
      const waited = Date.now() - started;
      assert.ok(waited >= PREEMPT_DELAY_MS, `took the VIP back after ${waited} ms, before the ${PREEMPT_DELAY_MS} ms delay`);
      const added = (await moves()).slice(before);
      assert.equal(added.length, 1, `one move, not ${added.length}: ${JSON.stringify(added)}`);
      assert.match(added[0]!.reason, /^planned move to node-3 requested by preemption by node-3 \(priority 200 over node-2's 100\)/);
      assert.equal(countInLog(n2(), 'handed the VIP off') - handoffsBefore, 1, 'node-2 handed the VIP off once');
      t.diagnostic(`preemption: ${lastGapMs(n2(), n3()).toFixed(0)} ms without a holder`);
      await staysPut(n3(), 3000);
      assertNeverTwoHolders(observer);
    }));

  test('cordoning the holder moves the VIP; it stays off through the failure of another node while an uncordoned node lives', () =>
    explained(lab, async () => {
      await holds(n3());
      const result = await lab.vipd(n1(), ['cordon', 'node-3', '--reason', 'kernel upgrade', '--config', n1().configPath]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /node node-3 cordoned by vipd cordon on .*: kernel upgrade/);
      await holds(n2());
      assert.match((await moves()).at(-1)!.reason, /^planned move to node-2 requested by cordon of node-3/);
      await lab.stopAgent(n2(), 'SIGKILL');
      const next = await takeoverFrom(lab, observer, n2());
      assert.equal(next.name, 'node-1', 'the VIP went to the cordoned node-3 while node-1 was uncordoned');
      await startAgentAndWait(lab, n2());
      const nodes = await statusNodes(n1());
      assert.deepEqual(nodes.map((node) => [node.name, node.priority, node.cordon?.strict ?? null]), [['node-1', 50, null], ['node-2', 100, null], ['node-3', 200, false]]);
      const events = await lab.vipd(n1(), ['events', '--config', n1().configPath]);
      assert.match(events.stdout, /admin  node-3 cordoned by vipd cordon on .*: kernel upgrade/);
      assertNeverTwoHolders(observer);
    }));

  test('the cordon survives a restart of the cordoned node\'s agent', () =>
    explained(lab, async () => {
      await holds(n1());
      await lab.stopAgent(n3(), 'SIGTERM');
      await startAgentAndWait(lab, n3());
      await staysPut(n1(), PREEMPT_DELAY_MS + 2000);
      assert.equal((await statusNodes(n1())).find((node) => node.name === 'node-3')?.cordon?.strict, false);
    }));

  test('uncordon: the node may take the VIP again (here by preemption, after its delay)', () =>
    explained(lab, async () => {
      const result = await lab.vipd(n2(), ['uncordon', 'node-3', '--config', n2().configPath]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.trim(), 'node node-3 uncordoned');
      await holds(n3());
      assert.match((await moves()).at(-1)!.reason, /preemption by node-3/);
      assert.equal((await statusNodes(n1())).find((node) => node.name === 'node-3')?.cordon ?? null, null);
      assertNeverTwoHolders(observer);
    }));

  test('a reload changes the priority in place; the history records it', () =>
    explained(lab, async () => {
      await holds(n3());
      writeConfigOf(n1(), { priority: 300 });
      await reload(n1(), 'reloaded the config');
      await waitFor('node-1 to run with priority 300', async () => (await statusNodes(n2())).find((node) => node.name === 'node-1')?.priority === 300, 20_000, 100);
      const events = await lab.vipd(n2(), ['events', '--config', n2().configPath]);
      assert.match(events.stdout, /admin  node-1 reloaded the config: node\.priority\/election\.preempt changed/);
      // Preempt is off on node-1: a higher priority alone moves nothing.
      await staysPut(n3(), 2000);
      writeConfigOf(n1());
      await reload(n1(), 'reloaded the config');
    }));

  test('a reload with a bad file keeps the old config and names the field', () =>
    explained(lab, async () => {
      writeConfigOf(n2(), { file: { announce: { burstCount: 0 } } });
      await reload(n2(), 'refused the new config; the running one stays');
      assert.ok(n2().agent, 'the agent exited');
      const events = await lab.vipd(n2(), ['events', '--config', n1().configPath]);
      assert.match(events.stdout, /admin  node-2 refused the new config, kept the running one: announce\.burstCount: /);
      writeConfigOf(n2());
    }));

  test('a reload that changes the VIP is refused with a clear message; the VIP stays', () =>
    explained(lab, async () => {
      await holds(n3());
      writeConfigOf(n3(), { preempt: true, file: { vip: { mode: 'static', address: '192.0.2.20' } } });
      await reload(n3(), 'refused the new config; the running one stays');
      const events = await lab.vipd(n1(), ['events', '--config', n1().configPath]);
      assert.match(events.stdout, /admin  node-3 refused the new config, kept the running one: vip\.address cannot change while the agent runs; restart it/);
      await staysPut(n3(), 2000);
      assert.ok(n3().agent, 'the agent exited');
      writeConfigOf(n3(), { preempt: true });
      assertNeverTwoHolders(observer);
    }));

  // These two start from whatever state the tests above left: every agent running, any holder.
  test('a reload adds a health check in place: the holder fails it and hands the VIP on; a reload without it clears it', () =>
    explained(lab, async () => {
      await startAgentAndWaitIfStopped(lab.nodes);
      const holder = await singleHolder(lab, observer);
      const pid = holder.agent?.pid;
      // Nothing listens on port 1: the check fails from its first probe.
      const failing = { health: { checks: [{ name: 'api', tcp: '127.0.0.1:1', interval: '200ms', fall: 2, rise: 1 }] } };
      writeConfigOf(holder, { file: failing });
      await reload(holder, 'reloaded the config');
      let next: LabNode;
      try {
        next = await takeoverFrom(lab, observer, holder);
        assert.match((await moves()).at(-1)!.reason, new RegExp(`^health: check api failing: connection refused; planned move to ${next.name}`));
        assert.equal(holder.agent?.pid, pid, 'the agent was restarted, not reloaded');
        const events = await lab.vipd(next, ['events', '--config', next.configPath]);
        // Written with the lab's defaults, so a preempt left on by an earlier test may change too.
        assert.match(events.stdout, new RegExp(`admin  ${holder.name} reloaded the config: health(, [^\\n]*)? changed`));
      } finally {
        writeConfigOf(holder);
        await reload(holder, 'reloaded the config');
      }
      await waitFor(`${holder.name} to publish itself healthy`, async () => (await lab.vipd(next, ['status', '--config', next.configPath])).stdout.includes(`${holder.name}: running, healthy`), 20_000, 100);
      assertNeverTwoHolders(observer);
    }));

  test('a strictly cordoned node never takes the VIP, even as the only node left; status says why', () =>
    explained(lab, async () => {
      await startAgentAndWaitIfStopped(lab.nodes);
      const holder = await singleHolder(lab, observer);
      const [strict, other] = lab.nodes.filter((node) => node !== holder) as [LabNode, LabNode];
      const result = await lab.vipd(other, ['cordon', strict.name, '--strict', '--config', other.configPath]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`^node ${strict.name} cordoned \\(strict\\) by vipd cordon on `));
      const seen = observer.intervals.length;
      // The holder stops: its planned move skips the strictly cordoned node.
      await lab.stopAgent(holder, 'SIGTERM');
      await holds(other);
      assert.match((await moves()).at(-1)!.reason, new RegExp(`^agent stopping on ${holder.name}; planned move to ${other.name}`));
      // The last other node stops: nobody may take the VIP.
      await lab.stopAgent(other, 'SIGTERM');
      await waitFor('the VIP to be released', () => observer.currentHolders().length === 0, 20_000, 20);
      const until = Date.now() + 6000; // three lease TTLs: a measurement window, not a synchronisation
      while (Date.now() < until) {
        assert.deepEqual(observer.currentHolders(), [], `a holder appeared while only the strictly cordoned ${strict.name} runs`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const status = await lab.vipd(strict, ['status', '--config', strict.configPath]);
      assert.match(status.stdout, /^HOLDER\s+none: no node holds the VIP$/m);
      assert.match(status.stdout, new RegExp(`^NOTE\\s+no node holds the VIP; the only running node is strictly cordoned \\(${strict.name}\\) and never takes it`, 'm'));
      assert.match(status.stdout, new RegExp(`${strict.name}: running, .*cordoned \\(strict\\) by vipd cordon on `));
      // The others return: the VIP comes back, never to the cordoned node.
      lab.startAgent(holder);
      lab.startAgent(other);
      await singleHolder(lab, observer, 60_000);
      const uncordoned = await lab.vipd(other, ['uncordon', strict.name, '--config', other.configPath]);
      assert.equal(uncordoned.code, 0, uncordoned.stderr);
      assert.deepEqual(observer.intervals.slice(seen).filter((entry) => entry.node === strict.name), [], `${strict.name} held the VIP`);
      assertNeverTwoHolders(observer);
    }));

  async function startAgentAndWaitIfStopped(nodes: LabNode[]): Promise<void> {
    for (const node of nodes) if (!node.agent) await startAgentAndWait(lab, node);
  }
});
