import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compare, formatTables, summarizeScenario, type SystemResult } from '../../bench/report';
import { emptyRecord, type ScenarioId, type TrialRecord } from '../../bench/scenarios';
import type { SystemId } from '../../bench/systems';
import { hex, parseWithBigIds } from '../../lab/embedded-cluster';

function trial(system: SystemId, scenario: ScenarioId, index: number, outageMs: number | null): TrialRecord {
  return { ...emptyRecord(system, scenario, index), ok: outageMs !== null, outageMs, ...(outageMs === null ? { error: 'failed' } : {}) };
}

function result(id: SystemId, trials: TrialRecord[]): SystemResult {
  const scenarios: SystemResult['scenarios'] = {};
  for (const scenario of new Set(trials.map((each) => each.scenario))) scenarios[scenario] = summarizeScenario(trials.filter((each) => each.scenario === scenario));
  return { id, label: id, available: true, reason: null, error: null, settings: {}, footprint: null, scenarios, trials, failures: [], overlaps: [] };
}

test('the vipd/keepalived ratio is taken over the trial indices both systems completed', () => {
  // vipd failed trial 3, keepalived trial 1: only trial 2 pairs up.
  const vipd = result('vipd-fast', [trial('vipd-fast', 'node-kill', 1, 100), trial('vipd-fast', 'node-kill', 2, 300), trial('vipd-fast', 'node-kill', 3, null)]);
  const keepalived = result('keepalived-matched', [trial('keepalived-matched', 'node-kill', 1, null), trial('keepalived-matched', 'node-kill', 2, 100), trial('keepalived-matched', 'node-kill', 3, 50)]);
  const outage = compare([vipd, keepalived]).find((entry) => entry.scenario === 'node-kill' && entry.metric === 'outageMs');
  assert.ok(outage);
  assert.equal(outage.paired, 1);
  assert.equal(outage.unpaired, 2);
  assert.equal(outage.median, 3);
  const table = formatTables([vipd, keepalived], compare([vipd, keepalived]));
  assert.match(table, /holder's processes SIGKILL +200\/300\/300 \(1 failed\) +75\/100\/100 \(1 failed\) +3\.00 \(1 paired\)/);
});

test('with no trial index completed by both, the ratio cell says it is unpaired', () => {
  const vipd = result('vipd-fast', [trial('vipd-fast', 'daemon-kill', 1, 100), trial('vipd-fast', 'daemon-kill', 2, null)]);
  const keepalived = result('keepalived-matched', [trial('keepalived-matched', 'daemon-kill', 1, null), trial('keepalived-matched', 'daemon-kill', 2, 100)]);
  const comparisons = compare([vipd, keepalived]);
  const outage = comparisons.find((entry) => entry.scenario === 'daemon-kill' && entry.metric === 'outageMs');
  assert.equal(outage?.median, null);
  assert.equal(outage?.paired, 0);
  assert.match(formatTables([vipd, keepalived], comparisons), /holder's daemon SIGKILL .*n\/a \(unpaired\)/);
});

test("etcd's uint64 member ids survive parsing, as the hex move-leader takes", () => {
  const parsed = parseWithBigIds('[{"Endpoint":"https://192.0.2.11:2379","Status":{"header":{"cluster_id":14841639068965178418,"member_id":10276657743932975437,"revision":5,"raft_term":2},"leader":10276657743932975437,"raftTerm":2}}]') as Array<{ Status: { header: { member_id: string }; leader: string } }>;
  assert.equal(parsed[0]!.Status.header.member_id, '10276657743932975437');
  assert.equal(hex(parsed[0]!.Status.leader), '8e9e05c52164694d');
});

test('the service figure has its own table, with only the service scenario in it', () => {
  const withService = (system: SystemId, scenario: ScenarioId, index: number, serviceMs: number | null): TrialRecord => ({ ...trial(system, scenario, index, 50), serviceMs });
  const vipd = result('vipd-default', [withService('vipd-default', 'holder-service-dies', 1, 2600), withService('vipd-default', 'link-down', 1, null)]);
  const keepalived = result('keepalived-1', [withService('keepalived-1', 'holder-service-dies', 1, 2000), withService('keepalived-1', 'link-down', 1, null)]);
  const comparisons = compare([vipd, keepalived]);
  assert.equal(comparisons.find((entry) => entry.scenario === 'holder-service-dies' && entry.metric === 'serviceMs')?.median, 1.3);
  assert.equal(comparisons.some((entry) => entry.scenario === 'link-down' && entry.metric === 'serviceMs'), false);
  const table = formatTables([vipd, keepalived], comparisons);
  const section = table.split('\n\n').find((part) => part.includes('Service death'))!;
  assert.match(section, /holder's service dies +2600\/2600\/2600 +2000\/2000\/2000 +1\.30/);
  assert.doesNotMatch(section, /holder's link down/);
});
