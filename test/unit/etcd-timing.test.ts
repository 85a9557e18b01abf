import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bestElectionMs, deriveEtcdTiming, rideOutBudgetMs, timingProblem, worstElectionMs } from '../../src/config/etcd-timing';
import { resolveConfig } from '../../src/config/config';
import { InputError } from '../../src/config/schema-check';

const embedded = {
  endpoints: ['https://192.0.2.11:2379'],
  tls: { ca: '/d/pki/ca.pem', cert: '/d/pki/etcd-client.pem', key: '/d/pki/etcd-client-key.pem' },
  embedded: { dataDir: '/d/etcd', pkiDir: '/d/pki', clientURL: 'https://192.0.2.11:2379', peerURL: 'https://192.0.2.11:2380', initialCluster: 'node-1=https://192.0.2.11:2380', initialClusterState: 'new' },
};

function config(etcd: Record<string, unknown>, election: Record<string, unknown> = {}) {
  return resolveConfig({ cluster: 'demo', node: { name: 'node-1', interface: 'mgmt-br' }, vip: { mode: 'static', address: '192.0.2.10' }, etcd, election });
}

describe('embedded etcd timing follows the election profile', () => {
  test('default profile: the worst etcd election fits what the holder can go without a renewal', () => {
    const { election } = config(embedded);
    const timing = deriveEtcdTiming(election);
    assert.deepEqual(timing, { heartbeatMs: 63, electionTimeoutMs: 630 });
    assert.ok(worstElectionMs(timing) <= rideOutBudgetMs(election));
    assert.equal(config(embedded).etcd.electionTimeoutMs, 630);
  });

  test('fast profile: the floor of 10 heartbeats of 10 ms, where an etcd election can end before the fencing deadline but usually does not', () => {
    const { election } = config(embedded, { profile: 'fast' });
    const timing = deriveEtcdTiming(election);
    assert.deepEqual(timing, { heartbeatMs: 10, electionTimeoutMs: 100 });
    assert.ok(bestElectionMs(timing) < election.holdTimeoutMs - election.fencingMarginMs);
    assert.ok(worstElectionMs(timing) > rideOutBudgetMs(election));
  });

  test('an election timeout under 50 ms, or one no etcd election can end inside, is refused', () => {
    assert.throws(() => config({ ...embedded, electionTimeout: '30ms' }), (error: unknown) => error instanceof InputError && /etcd\.electionTimeout/.test(error.message) && /at least 50ms/.test(error.message));
    assert.throws(() => config({ ...embedded, electionTimeout: '1s' }, { profile: 'fast' }), (error: unknown) => error instanceof InputError && /VIP would drop at every change of etcd leader/.test(error.message));
    assert.equal(timingProblem(1000, config(embedded).election), null);
  });

  test('an external etcd keeps its own setting: vipd does not run it', () => {
    assert.equal(config({ endpoints: ['http://192.0.2.11:2379'] }, { profile: 'fast' }).etcd.electionTimeoutMs, 1000);
  });
});
