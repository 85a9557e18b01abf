import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import type { ElectionConfig } from '../../src/config/config';
import { Election } from '../../src/election/election';
import { type MoveRequest } from '../../src/store/records';
import { EtcdStore } from '../../src/store/etcd-store';
import { ClusterKeys } from '../../src/store/keys';
import { run, waitFor } from '../../lab/shell';

/** A free TCP port on loopback (etcd binds it a moment later; loopback only, so no lab needed). */
async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

const FAST: ElectionConfig = {
  profile: 'fast',
  leaseTtlSeconds: 2,
  leaseRenewIntervalMs: 400,
  renewIntervalMs: 40,
  holdTimeoutMs: 200,
  fencingMarginMs: 40,
};

interface Candidate {
  name: string;
  election: Election;
  store: EtcdStore;
  /** Every loss of the VIP this node saw, with its cause. */
  losses: string[];
  holdRenewals: number;
}

/**
 * The fast profile's election against a real etcd, without namespaces: a holder must keep
 * the key by its own renewals, whichever way it won it (campaign, handoff), and no
 * follower may take it over while it renews.
 */
describe('fast-profile election against etcd', { timeout: 120_000 }, () => {
  let etcd: ChildProcess;
  let dataDir: string;
  let endpoint: string;
  const candidates: Candidate[] = [];
  const keys = new ClusterKeys(`election-test-${process.pid}`);

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'vipd-election-'));
    const [client, peer] = [await freePort(), await freePort()];
    endpoint = `http://127.0.0.1:${client}`;
    const peerUrl = `http://127.0.0.1:${peer}`;
    etcd = spawn(
      'etcd',
      ['--name', 'test', '--data-dir', dataDir, '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
        '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `test=${peerUrl}`,
        '--heartbeat-interval', '100', '--election-timeout', '1000'],
      { stdio: 'ignore' },
    );
    await waitFor('etcd to answer', async () => (await run('etcdctl', ['--endpoints', endpoint, '--dial-timeout=1s', 'endpoint', 'health'])).code === 0, 20_000, 100);
  });

  after(async () => {
    for (const candidate of candidates) {
      await candidate.election.stop(false);
      candidate.store.close();
    }
    etcd?.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function start(name: string): Promise<Candidate> {
    const store = new EtcdStore({ endpoints: [endpoint], callTimeoutMs: 1000 });
    const candidate: Candidate = { name, store, losses: [], holdRenewals: 0, election: undefined as unknown as Election };
    candidate.election = new Election({
      store,
      keys,
      self: { node: name, ip: '192.0.2.1', mac: '02:00:00:00:00:01' },
      config: FAST,
      followerPollMs: 100,
      logger: pino({ level: 'silent' }),
      onChange: () => undefined,
      releaseVip: async () => undefined,
      observer: {
        losing: (cause, reason) => candidate.losses.push(`${cause}: ${reason}`),
        renewed: (kind) => {
          if (kind === 'hold' && candidate.election.holdingUntil() !== null) candidate.holdRenewals += 1;
        },
      },
    });
    candidates.push(candidate);
    await candidate.election.start();
    await candidate.election.setEligible(true, 'test');
    return candidate;
  }

  async function holdsAndRenews(candidate: Candidate, renewals: number): Promise<void> {
    const before = candidate.holdRenewals;
    await waitFor(`${candidate.name} to renew its hold ${renewals} times`, () => {
      assert.deepEqual(candidate.losses, [], `${candidate.name} lost the VIP`);
      return candidate.holdRenewals - before >= renewals;
    }, 10_000, 10);
  }

  test('the node that wins by campaign keeps the key by its own renewals', async () => {
    const first = await start('node-a');
    await waitFor('node-a to win', () => first.election.holdingUntil() !== null, 10_000, 10);
    const second = await start('node-b');
    await holdsAndRenews(first, 10);
    assert.equal(second.election.leader()?.node, 'node-a');
    assert.equal(second.election.holdingUntil(), null);
  });

  test('the target of a planned move keeps the key by its own renewals, and the old holder does not take it back', async () => {
    const [holder, target] = candidates;
    assert.ok(holder && target);
    const request: MoveRequest = { to: target.name, requestedBy: 'test', requestedAt: new Date().toISOString() };
    await holder.store.put(keys.moveRequest, JSON.stringify(request));
    await waitFor('node-b to take the VIP', () => target.election.holdingUntil() !== null, 10_000, 10);
    const term = target.election.leader()?.term;
    await holdsAndRenews(target, 10);
    assert.equal(target.election.leader()?.term, term, 'the term changed: someone took the key after the handoff');
    assert.equal(holder.election.holdingUntil(), null);
  });
});
