import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Lab, type LabNode } from '../../lab/lab';
import { VipObserver } from '../../lab/observer';
import { waitFor } from '../../lab/shell';
import { assertNeverTwoHolders, explained, singleHolder , useLab } from './helpers';

const HWADDR = '02:00:00:09:7f:40';
const RESERVED = '192.0.2.61';

interface DhcpStatus {
  status: { holder: string | null; address: string | null; message: string; dhcp?: { state: string; reason: string | null; expiresAt: string | null; boundAt: string | null } };
}

async function dhcpStatus(lab: Lab, node: LabNode): Promise<DhcpStatus['status']> {
  const result = await lab.vipd(node, ['status', '--config', node.configPath, '-o', 'json']);
  return (JSON.parse(result.stdout) as DhcpStatus).status;
}

// dnsmasq's shortest lease is two minutes: T1 comes at 60 s and expiry at 120 s.
describe('DHCP lease renewal, loss and return', { timeout: 400_000 }, () => {
  let lab: Lab;
  let observer: VipObserver;

  useLab(
    {
      nodes: 2,
      config: { vip: { mode: 'dhcp', hwaddr: HWADDR, address: RESERVED } },
      watch: RESERVED,
      prepare: (lab) => lab.startDhcpServer({ reservations: [{ mac: HWADDR, ip: RESERVED }], leaseTime: '2m' }),
    },
    (fixture) => ({ lab, observer } = fixture),
  );

  test('the lease is renewed at T1 from the VIP itself', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer, 30_000);
      const first = await dhcpStatus(lab, holder);
      assert.equal(first.dhcp?.state, 'bound');
      await waitFor('a renewal', async () => (await dhcpStatus(lab, holder)).dhcp?.boundAt !== first.dhcp?.boundAt, 90_000, 1000);
      const renewed = await dhcpStatus(lab, holder);
      assert.ok(Date.parse(renewed.dhcp?.expiresAt ?? '') > Date.parse(first.dhcp?.expiresAt ?? ''));
      assert.deepEqual(observer.currentHolders(), [holder.name], 'no move on renewal');
    }));

  test('with the server gone past the lease time, the VIP is dropped and status says why', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      await lab.stopDhcpServer();
      await waitFor('the VIP to be dropped', () => observer.currentHolders().length === 0, 150_000, 200);
      const status = await waitFor('status to show the lost lease', async () => {
        const current = await dhcpStatus(lab, holder);
        return current.dhcp?.state === 'lost' ? current : undefined;
      }, 10_000);
      assert.match(status.dhcp?.reason ?? '', /lease expired/);
      assert.match(status.message, /not served: the DHCP lease expired/);
      assert.equal(status.holder, holder.name, 'the holder keeps the election: a lost lease is not the node\'s fault');
      assert.equal(status.address, null);
    }));

  test('with the server back, the VIP returns', () =>
    explained(lab, async () => {
      await lab.startDhcpServer({ reservations: [{ mac: HWADDR, ip: RESERVED }], leaseTime: '2m' });
      const holder = await singleHolder(lab, observer, 30_000);
      await lab.waitClientReaches(holder.name, 20_000, RESERVED);
      assert.equal((await dhcpStatus(lab, holder)).dhcp?.state, 'bound');
      assertNeverTwoHolders(observer);
    }));
});
