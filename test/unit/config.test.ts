import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig, minimumLeaseTtlSeconds, parseDuration, resolveConfig } from '../../src/config/config';
import { rejects } from './config-rejects';

const valid = {
  cluster: 'demo',
  node: { name: 'node-1', interface: 'mgmt-br' },
  vip: { mode: 'static', address: '192.0.2.10' },
  etcd: { endpoints: ['http://192.0.2.11:2379'] },
};

test('the contract example is accepted, with defaults filled in', () => {
  const config = resolveConfig(valid);
  assert.equal(config.node.name, 'node-1');
  assert.equal(config.election.leaseTtlSeconds, 2);
  assert.equal(config.election.renewIntervalMs, 400);
  assert.equal(config.announce.burstCount, 6);
  assert.equal(config.announce.refreshIntervalMs, 10_000);
});

test('DHCP mode: the requested IP and the MAC are optional', () => {
  const dhcp = resolveConfig({ ...valid, vip: { mode: 'dhcp' } });
  assert.deepEqual(dhcp.vip, { mode: 'dhcp', address: null, hwaddr: null, releaseOnStop: false });
  const full = resolveConfig({ ...valid, vip: { mode: 'dhcp', address: '192.0.2.10', hwaddr: '02:00:00:09:7F:3F', dhcp: { releaseOnStop: true } } });
  assert.deepEqual(full.vip, { mode: 'dhcp', address: '192.0.2.10', hwaddr: '02:00:00:09:7f:3f', releaseOnStop: true });
});

test('the fast profile fills in its own timing', () => {
  const fast = resolveConfig({ ...valid, election: { profile: 'fast' } });
  assert.equal(fast.election.profile, 'fast');
  assert.equal(fast.election.renewIntervalMs, 40);
  assert.equal(fast.election.holdTimeoutMs, 200);
  assert.equal(fast.election.fencingMarginMs, 40);
  assert.equal(fast.election.leaseRenewIntervalMs, 400);
  assert.throws(() => resolveConfig({ ...valid, election: { holdTimeout: '300ms' } }), /election\.holdTimeout: applies to the fast profile only/);
  assert.throws(() => resolveConfig({ ...valid, election: { profile: 'fast', holdTimeout: '3s' } }), /election\.holdTimeout: must be shorter than election\.leaseTTL/);
  assert.throws(() => resolveConfig({ ...valid, election: { profile: 'fast', renewInterval: '100ms' } }), /election\.renewInterval/);
});

test('IPv6 VIPs are accepted', () => {
  assert.equal(resolveConfig({ ...valid, vip: { mode: 'static', address: '2001:db8::10' } }).vip.address, '2001:db8::10');
});

test('every error names its field', () => {
  rejects({ ...valid, cluster: 'Demo Cluster' }, 'cluster', /lowercase/);
  rejects({ ...valid, node: { interface: 'mgmt-br', name: '../etc' } }, 'node.name', /node name/);
  rejects({ ...valid, node: { name: 'n1' } }, 'node.interface', /is required/);
  rejects({ ...valid, node: { name: 'n1', interface: 'an-interface-name-too-long' } }, 'node.interface', /1 to 15/);
  rejects({ ...valid, vip: { mode: 'static', address: '192.0.2.256' } }, 'vip.address', /IPv4 or IPv6/);
  rejects({ ...valid, vip: { mode: 'floating', address: '192.0.2.10' } }, 'vip.mode', /"static" or "dhcp"/);
  rejects({ ...valid, vip: { mode: 'static' } }, 'vip.address', /required in static mode/);
  rejects({ ...valid, vip: { mode: 'static', address: '192.0.2.10', hwaddr: '02:00:00:00:00:01' } }, 'vip.hwaddr', /DHCP mode only/);
  rejects({ ...valid, vip: { mode: 'dhcp', hwaddr: '03:00:00:00:00:01' } }, 'vip.hwaddr', /multicast/);
  rejects({ ...valid, vip: { mode: 'dhcp', hwaddr: '00:00:00:00:00:00' } }, 'vip.hwaddr', /all zeros/);
  rejects({ ...valid, vip: { mode: 'dhcp', hwaddr: '02:00:00:00:01' } }, 'vip.hwaddr', /MAC address like/);
  rejects({ ...valid, vip: { mode: 'dhcp', hwaddr: '02:00:00:00:00:01:02' } }, 'vip.hwaddr', /MAC address like/);
  rejects({ ...valid, vip: { mode: 'dhcp', address: '2001:db8::10' } }, 'vip.address', /IPv4 only/);
  rejects({ ...valid, vip: { mode: 'dhcp', dhcp: { releaseOnStop: 'yes' } } }, 'vip.dhcp.releaseOnStop', /true or false/);
  rejects({ ...valid, etcd: { endpoints: [] } }, 'etcd.endpoints', /at least one/);
  rejects({ ...valid, etcd: { endpoints: ['192.0.2.11:2379'] } }, 'etcd.endpoints[0]', /etcd client URL/);
  rejects({ ...valid, extra: 1 }, 'extra', /unknown field/);
  rejects({ ...valid, vip: { mode: 'static', adress: '192.0.2.10' } }, 'vip.adress', /unknown field \(allowed here: mode, address, hwaddr, dhcp\)/);
  rejects({ ...valid, election: { leaseTTL: '2500ms' } }, 'election.leaseTTL', /whole number of seconds/);
  rejects({ ...valid, election: { leaseTTL: '1s' } }, 'election.leaseTTL', /at least 2s/);
  rejects({ ...valid, election: { leaseTTL: '-2s' } }, 'election.leaseTTL', /duration/);
  rejects({ ...valid, election: { renewInterval: '2s' } }, 'election.renewInterval', /room for two renewals/);
  rejects({ ...valid, announce: { burstCount: 0 } }, 'announce.burstCount', /1 to 50/);
  rejects({ ...valid, announce: { refreshInterval: '5ms' } }, 'announce.refreshInterval', /at least 100ms/);
});

test("etcd's shortest lease follows its election timeout", () => {
  assert.equal(minimumLeaseTtlSeconds(1000), 2);
  assert.equal(minimumLeaseTtlSeconds(500), 1);
  assert.equal(minimumLeaseTtlSeconds(5000), 8);
  const slowEtcd = { ...valid, etcd: { endpoints: ['http://192.0.2.11:2379'], electionTimeout: '5s' }, election: { leaseTTL: '3s' } };
  assert.throws(() => resolveConfig(slowEtcd), /at least 8s/);
});

test('durations', () => {
  assert.equal(parseDuration('400ms'), 400);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('2m'), 120_000);
  assert.throws(() => parseDuration('10'), /not a duration/);
});

test('files: unreadable, not YAML, not a mapping', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vipd-config-'));
  try {
    assert.throws(() => loadConfig(join(dir, 'missing.yaml')), /--config: cannot read/);
    writeFileSync(join(dir, 'broken.yaml'), 'cluster: [demo\n');
    assert.throws(() => loadConfig(join(dir, 'broken.yaml')), /not valid YAML at line/);
    writeFileSync(join(dir, 'list.yaml'), '- a\n- b\n');
    assert.throws(() => loadConfig(join(dir, 'list.yaml')), /must hold a YAML mapping/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
