import assert from 'node:assert/strict';
import { test } from 'node:test';
import { byPreference, campaignDelayMs, decideEligibility, decidePreempt, MAX_RANK, type PeerFacts, type PreferenceFacts } from '../../src/agent/preference';
import { resolveConfig } from '../../src/config/config';
import { reloadedSections, unreloadableChange } from '../../src/config/reload';
import { describeManagementAddress, formatManagementAddressTable, type NodeHealthStatus } from '../../src/status/management-address';

const peer = (name: string, priority = 100, cordon: PeerFacts['cordon'] = 'none', steady = true): PeerFacts => ({ name, priority, cordon, steady });
const facts = (overrides: Partial<PreferenceFacts>): PreferenceFacts => ({ unhealthy: null, failed: false, holdsKey: false, cordon: 'none', peers: [], ...overrides });

test('preference order: higher priority first, then the name, whatever the input order', () => {
  assert.deepEqual(byPreference([peer('node-1', 100), peer('node-3', 200), peer('node-2', 200)]).map((node) => node.name), ['node-2', 'node-3', 'node-1']);
});

test('an uncordoned node follows the health rules alone; an unhealthy holder moves to the most preferred steady peer', () => {
  assert.equal(decideEligibility(facts({})).eligible, true);
  const decision = decideEligibility(facts({ unhealthy: 'check api failing', failed: true, holdsKey: true, peers: [peer('node-1', 50), peer('node-3', 300), peer('node-2', 300, 'none', false)] }));
  assert.deepEqual([decision.eligible, decision.moveTo, decision.moveCause], [true, 'node-3', 'health']);
});

test('a health move never goes to a cordoned peer', () => {
  const decision = decideEligibility(facts({ unhealthy: 'check api failing', failed: true, holdsKey: true, peers: [peer('node-2', 500, 'cordoned')] }));
  assert.deepEqual([decision.moveTo, decision.heldWhileUnhealthy], [null, true]);
});

test('a cordoned holder asks for a planned move to the most preferred uncordoned steady peer, and stays eligible meanwhile', () => {
  const decision = decideEligibility(facts({ holdsKey: true, cordon: 'cordoned', peers: [peer('node-2', 100), peer('node-3', 150), peer('node-4', 900, 'cordoned')] }));
  assert.deepEqual([decision.eligible, decision.moveTo, decision.moveCause], [true, 'node-3', 'cordon']);
});

test('a cordoned holder with nowhere to go keeps the VIP and says so; under --strict it gives it up', () => {
  const plain = decideEligibility(facts({ holdsKey: true, cordon: 'cordoned', peers: [peer('node-2', 100, 'cordoned')] }));
  assert.deepEqual([plain.eligible, plain.moveTo, plain.heldWhileCordoned], [true, null, true]);
  const strict = decideEligibility(facts({ holdsKey: true, cordon: 'strict', peers: [] }));
  assert.deepEqual([strict.eligible, strict.moveTo], [false, null]);
});

test('a cordoned follower stands back while an uncordoned healthy node runs, and takes a vacant VIP when none does; strict never', () => {
  assert.equal(decideEligibility(facts({ cordon: 'cordoned', peers: [peer('node-2', 1)] })).eligible, false);
  assert.equal(decideEligibility(facts({ cordon: 'cordoned', peers: [] })).eligible, true);
  assert.equal(decideEligibility(facts({ cordon: 'cordoned', peers: [peer('node-2', 100, 'cordoned')] })).eligible, true);
  assert.equal(decideEligibility(facts({ cordon: 'strict', peers: [] })).eligible, false);
});

test('a strictly cordoned peer is no reason for an unhealthy node to stand back: it never takes the VIP', () => {
  assert.equal(decideEligibility(facts({ unhealthy: 'check api failing', failed: true, peers: [peer('node-2', 100, 'strict')] })).eligible, true);
  assert.equal(decideEligibility(facts({ unhealthy: 'check api failing', failed: true, peers: [peer('node-2', 100, 'cordoned')] })).eligible, false);
});

const delay = (priority: number, competitors: number[], extra: Partial<Parameters<typeof campaignDelayMs>[0]> = {}): number =>
  campaignDelayMs({ priority, competitors, starting: [], sinceStartMs: 60_000, startWindowMs: 6000, stepMs: 100, ...extra });

test('campaign delay: 0 for the most preferred and for equal priorities, one step per distinct higher priority, capped', () => {
  assert.equal(delay(200, [100, 150]), 0);
  assert.equal(delay(100, [100, 100]), 0);
  assert.equal(delay(150, [200, 100]), 100);
  assert.equal(delay(100, [200, 150, 150]), 200);
  assert.equal(delay(0, [1, 2, 3, 4, 5, 6, 7]), MAX_RANK * 100);
});

test('campaign delay just after start: waits out the start window for a preferred node that is registered but not running yet', () => {
  assert.equal(delay(100, [], { starting: [200], sinceStartMs: 1000 }), 5000);
  assert.equal(delay(100, [], { starting: [50], sinceStartMs: 1000 }), 0);
  assert.equal(delay(100, [], { starting: [200], sinceStartMs: 7000 }), 0, 'after the window a node that never came is not waited for');
});

const preempt = (overrides: Partial<Parameters<typeof decidePreempt>[0]>) =>
  decidePreempt({ preempt: true, delayMs: 30_000, self: 'node-3', priority: 200, holder: { name: 'node-1', priority: 100 }, preferredForMs: 31_000, candidates: [], ...overrides });

test('preemption: only with preempt on, only from a less preferred holder, only after the whole delay', () => {
  assert.deepEqual(preempt({}), { preempt: true, waitMs: null });
  assert.deepEqual(preempt({ preempt: false }), { preempt: false, waitMs: null });
  assert.deepEqual(preempt({ holder: { name: 'node-1', priority: 200 } }), { preempt: false, waitMs: null }, 'equal priority: the VIP stays');
  assert.deepEqual(preempt({ holder: null }), { preempt: false, waitMs: null }, 'a vacant VIP is campaigned for, not preempted');
  assert.deepEqual(preempt({ preferredForMs: 10_000 }), { preempt: false, waitMs: 20_000 });
  assert.deepEqual(preempt({ preferredForMs: null }), { preempt: false, waitMs: null }, 'unhealthy or cordoned now');
});

test('preemption: only the most preferred candidate asks, so two preferred nodes do not both pull the VIP', () => {
  assert.equal(preempt({ candidates: [{ name: 'node-2', priority: 300 }] }).preempt, false);
  assert.equal(preempt({ candidates: [{ name: 'node-2', priority: 200 }] }).preempt, false, 'a tie goes to the name');
  assert.equal(preempt({ candidates: [{ name: 'node-4', priority: 200 }, { name: 'node-1', priority: 100 }] }).preempt, true);
});

const base = { cluster: 'c', node: { name: 'n', interface: 'eth0' }, vip: { mode: 'static', address: '192.0.2.10' }, etcd: { endpoints: ['http://192.0.2.2:2379'] } };

test('config: node.priority defaults to 100, preempt to false with a 30 s delay; preemptDelay needs preempt', () => {
  assert.deepEqual(resolveConfig(base).preference, { priority: 100, preempt: false, preemptDelayMs: 30_000 });
  assert.deepEqual(resolveConfig({ ...base, node: { ...base.node, priority: 250 }, election: { preempt: true, preemptDelay: '5s' } }).preference, { priority: 250, preempt: true, preemptDelayMs: 5000 });
  assert.throws(() => resolveConfig({ ...base, node: { ...base.node, priority: 1001 } }), /node\.priority/);
  assert.throws(() => resolveConfig({ ...base, node: { ...base.node, priority: 1.5 } }), /node\.priority/);
  assert.throws(() => resolveConfig({ ...base, election: { preemptDelay: '5s' } }), /election\.preemptDelay: applies only with election\.preempt: true/);
});

test('reload: log level, hooks, health, announcements, priority and preemption change in place; anything else is refused naming the field', () => {
  const running = resolveConfig(base);
  const safe = resolveConfig({ ...base, node: { ...base.node, priority: 7 }, election: { preempt: true }, log: { level: 'debug' }, announce: { burstCount: 3 } });
  assert.equal(unreloadableChange(running, safe), null);
  assert.deepEqual(reloadedSections(running, safe), ['log.level', 'announce', 'node.priority/election.preempt']);
  const refused = (file: Record<string, unknown>): string | null => unreloadableChange(running, resolveConfig({ ...base, ...file }));
  assert.match(refused({ vip: { mode: 'static', address: '192.0.2.11' } }) ?? '', /^vip\.address cannot change while the agent runs/);
  assert.match(refused({ cluster: 'other' }) ?? '', /^cluster cannot change/);
  assert.match(refused({ node: { name: 'm', interface: 'eth0' } }) ?? '', /^node\.name cannot change/);
  assert.match(refused({ node: { name: 'n', interface: 'eth1' } }) ?? '', /^node\.interface cannot change/);
  assert.match(refused({ etcd: { endpoints: ['http://192.0.2.2:2379', 'http://192.0.2.3:2379'] } }) ?? '', /^etcd\.endpoints cannot change/);
  assert.match(refused({ election: { leaseTTL: '3s' } }) ?? '', /^election\.leaseTTL cannot change/);
});

test('status with no holder says so when every running node is strictly cordoned, and not when another runs', () => {
  const node = (name: string, running: boolean, strict: boolean | null): NodeHealthStatus => ({
    name,
    running,
    health: 'passing',
    since: null,
    failing: [],
    cordon: strict === null ? null : { strict, by: 'vipd cordon on host-1', reason: null, since: '2026-12-07T10:00:00.000Z' },
  });
  const vacant = (nodes: NodeHealthStatus[]) => describeManagementAddress({ cluster: 'demo', address: '192.0.2.10', mode: 'static', interface: 'mgmt-br', leader: null, nodes });
  const strictOnly = vacant([node('node-1', true, true), node('node-2', false, null), node('node-3', false, false)]);
  assert.equal(strictOnly.status.message, 'no node holds the VIP; the only running node is strictly cordoned (node-1) and never takes it: uncordon one (vipd uncordon NODE)');
  assert.match(formatManagementAddressTable(strictOnly), /^NOTE\s+no node holds the VIP; the only running node is strictly cordoned \(node-1\)/m);
  assert.equal(vacant([node('node-1', true, true), node('node-2', true, false)]).status.message, 'no node holds the VIP', 'a plain cordon may take it');
  assert.equal(vacant([node('node-1', false, true)]).status.message, 'no node holds the VIP', 'nothing runs');
});
