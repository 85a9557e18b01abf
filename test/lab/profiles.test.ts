import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Lab, type LabNode } from '../../lab/lab';
import { VipObserver } from '../../lab/observer';
import { mustRun, waitFor } from '../../lab/shell';
import { assertNeverTwoHolders, countInLog, explained, singleHolder, startAgentAndWait, takeoverFrom, useLab } from './helpers';

interface StoredMove {
  from: string | null;
  to: string;
  reason: string;
  term: number;
}

async function moveHistory(lab: Lab): Promise<StoredMove[]> {
  const out = await lab.etcdctl('get', '--prefix', '/vipd/lab/events/', '--print-value-only');
  return out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as StoredMove);
}

async function move(lab: Lab, via: LabNode, to: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return await lab.vipd(via, ['move', '--to', to, '--config', via.configPath]);
}

/** The lines an agent logs when it finds it may no longer hold the VIP (src/election/election.ts). */
const STEP_DOWN = ['fencing deadline passed without an acknowledged renewal', 'another node took the leader key', 'the leader key is no longer ours', 'lost the lease'];

function stepDownLines(node: LabNode): number {
  return STEP_DOWN.reduce((sum, message) => sum + countInLog(node, message), 0);
}

/** SIGSTOP/SIGCONT of a node's agent: a holder that is alive but not scheduled. */
async function signalAgent(node: LabNode, signal: 'SIGSTOP' | 'SIGCONT'): Promise<void> {
  assert.ok(node.agent?.pid, `${node.name} has no agent`);
  await mustRun('kill', [`-${signal.slice(3)}`, String(node.agent.pid)]);
}

for (const profile of ['default', 'fast'] as const) {
  describe(`${profile} profile: planned moves, freeze, kill, link down`, { timeout: 300_000 }, () => {
    let lab: Lab;
    let observer: VipObserver;

    useLab({ nodes: 3, config: { election: { profile } } }, (fixture) => ({ lab, observer } = fixture));

    test('a planned move puts the VIP on the chosen node, and the history records it', () =>
      explained(lab, async () => {
        const holder = await singleHolder(lab, observer);
        const target = lab.nodes.find((node) => node !== holder)!;
        const result = await move(lab, holder, target.name);
        assert.equal(result.code, 0, result.stderr);
        // The holder is read just before the move; an overloaded machine can move it in between.
        assert.match(result.stdout, new RegExp(`moved the VIP from (?!${target.name})\\S+ to ${target.name}`));
        await lab.waitClientReaches(target.name);
        const last = (await moveHistory(lab)).at(-1);
        assert.notEqual(last?.from, target.name);
        assert.equal(last?.to, target.name);
        assert.match(last?.reason ?? '', /planned move/);
        assertNeverTwoHolders(observer);
      }));

    test('moves to an unknown or stopped node are refused with the reason', () =>
      explained(lab, async () => {
        const holder = await singleHolder(lab, observer);
        const unknown = await move(lab, holder, 'node-9');
        assert.equal(unknown.code, 2);
        assert.match(unknown.stderr, /--to: unknown node "node-9"/);
        const bystander = lab.nodes.find((node) => node !== holder)!;
        assert.equal(await lab.stopAgent(bystander, 'SIGTERM'), 0);
        const stopped = await move(lab, holder, bystander.name);
        assert.equal(stopped.code, 2);
        assert.match(stopped.stderr, new RegExp(`node "${bystander.name}" is not healthy`));
        assert.deepEqual(observer.currentHolders(), [holder.name]);
        await startAgentAndWait(lab, bystander);
      }));

    test('a frozen holder (SIGSTOP) loses the VIP without it ever being on two nodes, and steps down on SIGCONT', () =>
      explained(lab, async () => {
        const holder = await singleHolder(lab, observer);
        await signalAgent(holder, 'SIGSTOP');
        let before = 0;
        try {
          const next = await takeoverFrom(lab, observer, holder);
          assert.notEqual(next.name, holder.name);
        } finally {
          // Frozen, it cannot log: whatever it logs from here on, it logs after the thaw.
          before = stepDownLines(holder);
          await signalAgent(holder, 'SIGCONT');
        }
        // Thawed, the old holder finds its deadline long past or the key taken, and says so.
        await waitFor(`${holder.name} to log, after the thaw, that it lost the VIP`, () => stepDownLines(holder) > before, 20_000, 50);
        // And it stays away.
        const holders = observer.currentHolders();
        assert.equal(holders.length, 1);
        assert.notEqual(holders[0], holder.name);
        assertNeverTwoHolders(observer);
      }));

    test('holder agent SIGKILL and holder link down: another node takes the VIP', () =>
      explained(lab, async () => {
        const first = await singleHolder(lab, observer);
        await lab.stopAgent(first, 'SIGKILL');
        const second = await takeoverFrom(lab, observer, first);
        await startAgentAndWait(lab, first);
        await lab.setLink(second, false);
        try {
          await takeoverFrom(lab, observer, second);
        } finally {
          await lab.setLink(second, true);
        }
        assertNeverTwoHolders(observer);
      }));

    test('every change of holder is in the history with a growing term', () =>
      explained(lab, async () => {
        const history = await moveHistory(lab);
        assert.ok(history.length >= 4, `history: ${JSON.stringify(history)}`);
        for (let i = 1; i < history.length; i += 1) assert.ok(history[i]!.term > history[i - 1]!.term);
        assertNeverTwoHolders(observer);
      }));
  });
}
