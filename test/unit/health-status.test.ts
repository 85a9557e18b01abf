import assert from 'node:assert/strict';
import { test } from 'node:test';
import { changeAsJson, formatChangeLine, formatStatusLine } from '../../src/status/change-text';
import { healthEventOf } from '../../src/store/records';
import { describeManagementAddress, formatManagementAddressTable, type NodeHealthStatus } from '../../src/status/management-address';

const leader = { node: 'node-1', ip: '192.0.2.11', mac: '8c:dc:d4:b5:f0:01', since: '2026-12-07T10:00:00.000Z', term: 7 };
const failingApi = { check: 'api', detail: 'HTTP 503', since: '2026-12-07T10:05:00.000Z' };

function nodes(...states: Array<[string, NodeHealthStatus['health'], boolean]>): NodeHealthStatus[] {
  return states.map(([name, health, running]) => ({ name, running, health, since: '2026-12-07T10:05:00.000Z', failing: health === 'failing' ? [failingApi] : [] }));
}

function view(list: NodeHealthStatus[]) {
  return describeManagementAddress({ cluster: 'demo', address: '192.0.2.10', mode: 'static', interface: 'mgmt-br', leader, nodes: list });
}

test('status says the holder holds while unhealthy, and whether it can move', () => {
  assert.equal(view(nodes(['node-1', 'failing', true], ['node-2', 'failing', true])).status.message, 'held by node-1; held while unhealthy (check api failing (HTTP 503)): no running node is healthy to move it to');
  assert.equal(view(nodes(['node-1', 'failing', true], ['node-2', 'passing', true])).status.message, 'held by node-1; held while unhealthy (check api failing (HTTP 503)): moving to a healthy node');
  assert.equal(view(nodes(['node-1', 'failing', true], ['node-2', 'passing', false])).status.message, 'held by node-1; held while unhealthy (check api failing (HTTP 503)): no running node is healthy to move it to');
  assert.equal(view(nodes(['node-1', 'passing', true], ['node-2', 'failing', true])).status.message, 'held by node-1');
});

test('the status table lists every node\'s health and failing checks', () => {
  const table = formatManagementAddressTable(view(nodes(['node-1', 'passing', true], ['node-2', 'failing', true], ['node-3', 'unknown', false])), new Date('2026-12-07T11:00:00.000Z'));
  assert.match(table, /^NODES +node-1: running, healthy since 2026-12-07T10:05:00.000Z \(holder\)$/m);
  assert.match(table, /^ +node-2: running, unhealthy: check api failing \(HTTP 503\) since 2026-12-07T10:05:00.000Z$/m);
  assert.match(table, /^ +node-3: not running, health unknown$/m);
});

test('a health change is one line in vipd events and one JSON object with -o json', () => {
  const change = {
    type: 'health' as const,
    event: healthEventOf({
      node: 'node-2',
      healthy: false,
      failing: ['api'],
      since: '2026-12-07T10:05:00.000Z',
      updatedAt: '2026-12-07T10:05:01.000Z',
      checks: [{ name: 'api', kind: 'http', target: 'https://127.0.0.1:6443/readyz', passing: false, since: '2026-12-07T10:05:00.000Z', consecutiveFailures: 3, consecutiveSuccesses: 0, fall: 3, rise: 2, lastResult: { ok: false, detail: 'HTTP 503', output: '', durationMs: 3, time: '2026-12-07T10:05:00.000Z' } }],
    }),
  };
  assert.equal(formatChangeLine(change), '2026-12-07T10:05:00.000Z  health node-2 is unhealthy: check api failing (HTTP 503)');
  assert.deepEqual(JSON.parse(changeAsJson(change)), { type: 'health', node: 'node-2', healthy: false, failing: [{ check: 'api', detail: 'HTTP 503' }], time: '2026-12-07T10:05:00.000Z' });
  assert.equal(formatChangeLine({ type: 'health', event: { node: 'node-2', healthy: true, failing: [], time: 'T' } }), 'T  health node-2 is healthy: every check passes');
});

test('vipd status -w names the nodes whose checks fail', () => {
  const line = formatStatusLine(view(nodes(['node-1', 'failing', true], ['node-2', 'passing', true])), [{ name: 'node-1', healthy: true, failingChecks: ['api'] }, { name: 'node-2', healthy: true, failingChecks: [] }], 'T');
  assert.equal(line, 'T  held by node-1 (192.0.2.11, 8c:dc:d4:b5:f0:01), term 7; 2 of 2 nodes healthy; checks failing on node-1 (api); held by node-1; held while unhealthy (check api failing (HTTP 503)): moving to a healthy node');
});
