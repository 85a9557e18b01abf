import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeManagementAddress, formatManagementAddressTable, lastSeenOf } from '../../src/status/management-address';
import { renderOutput } from '../../src/output/output';
import { parse as parseYaml } from 'yaml';

const held = describeManagementAddress({
  cluster: 'demo',
  address: '192.0.2.10',
  mode: 'static',
  interface: 'mgmt-br',
  leader: { node: 'node-1', ip: '192.0.2.11', mac: '8c:dc:d4:b5:f0:fd', since: '2026-01-01T00:00:00.000Z', term: 42 },
});

test('the object has the Harvester shape and annotations', () => {
  assert.equal(held.kind, 'ManagementAddress');
  assert.equal(held.metadata.name, 'management-address');
  assert.deepEqual(held.metadata.annotations, {
    'kube-vip.io/vipHost': 'node-1',
    'kube-vip.io/hwaddr': '8c:dc:d4:b5:f0:fd',
    'kube-vip.io/requestedIP': '192.0.2.10',
  });
  assert.deepEqual(held.spec, { address: '192.0.2.10', mode: 'static', interface: 'mgmt-br' });
  assert.equal(held.status.holder, 'node-1');
  assert.equal(held.status.holderIP, '192.0.2.11');
  assert.equal(held.status.term, 42);
});

test('-o json, yaml and jsonpath', () => {
  const table = () => 'TABLE';
  assert.deepEqual(JSON.parse(renderOutput('json', held, table)), held);
  assert.deepEqual(parseYaml(renderOutput('yaml', held, table)), held);
  assert.equal(renderOutput('jsonpath={.metadata.annotations.kube-vip\\.io/vipHost}', held, table), 'node-1');
  assert.equal(
    renderOutput('jsonpath={.metadata.annotations}', held, table),
    // Keys sorted, as kubectl prints a map.
    '{"kube-vip.io/hwaddr":"8c:dc:d4:b5:f0:fd","kube-vip.io/requestedIP":"192.0.2.10","kube-vip.io/vipHost":"node-1"}',
  );
  assert.equal(renderOutput(undefined, held, table), 'TABLE');
  assert.throws(() => renderOutput('xml', held, table), /-o: unknown output format "xml"/);
  assert.throws(() => renderOutput('jsonpath={.metadata', held, table), /-o: bad jsonpath template/);
});

test('the table reads at a glance, and says so when nobody holds the VIP', () => {
  const text = formatManagementAddressTable(held, new Date('2026-01-01T00:00:30.000Z'));
  assert.match(text, /^MANAGEMENT ADDRESS\s+192\.0\.2\.10 \(static\)$/m);
  assert.match(text, /^HOLDER\s+node-1 \(192\.0\.2\.11\)$/m);
  assert.match(text, /^SINCE\s+2026-01-01T00:00:00\.000Z \(30s ago\)$/m);
  const vacant = describeManagementAddress({ cluster: 'demo', address: '192.0.2.10', mode: 'static', interface: 'mgmt-br', leader: null });
  assert.match(formatManagementAddressTable(vacant), /^HOLDER\s+none: no node holds the VIP$/m);
  assert.deepEqual(vacant.metadata.annotations, { 'kube-vip.io/requestedIP': '192.0.2.10' });
});

test('last seen: a node that is not alive was last seen at the latest of its registration, its departure and its last win of the VIP', () => {
  const node = { name: 'node-2', registeredAt: '2026-12-07T10:00:00.000Z' };
  const moves = [
    { to: 'node-2', time: '2026-12-07T10:05:00.000Z' },
    { to: 'node-1', time: '2026-12-07T10:06:00.000Z' },
    { to: 'node-2', time: '2026-12-07T10:07:00.000Z' },
  ];
  // No departure recorded (no watch was open when its liveness key vanished): it held the VIP at 10:07.
  assert.equal(lastSeenOf(node, undefined, moves), '2026-12-07T10:07:00.000Z');
  // A recorded departure after that wins.
  assert.equal(lastSeenOf(node, '2026-12-07T10:08:30.000Z', moves), '2026-12-07T10:08:30.000Z');
  // Never a holder, no departure: when it registered, never "never".
  assert.equal(lastSeenOf({ name: 'node-3', registeredAt: '2026-12-07T09:00:00.000Z' }, undefined, moves), '2026-12-07T09:00:00.000Z');
  // A damaged value is ignored, not shown.
  assert.equal(lastSeenOf(node, 'yesterday', []), '2026-12-07T10:00:00.000Z');
});
