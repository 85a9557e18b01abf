import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Lab, type LabNode } from '../../lab/lab';
import { VipObserver } from '../../lab/observer';
import { waitFor } from '../../lab/shell';
import { assertNeverTwoHolders, explained, singleHolder, startAgentAndWait , useLab } from './helpers';

const HWADDR = '02:00:00:09:7f:3f';
const RESERVED = '192.0.2.60';

interface StatusJson {
  metadata: { annotations: Record<string, string> };
  status: { holder: string | null; address: string | null; message: string; dhcp?: { state: string; reason: string | null; leasedIP: string | null; leaseSeconds: number | null; expiresAt: string | null } };
}

async function statusJson(lab: Lab, node: LabNode): Promise<StatusJson> {
  const result = await lab.vipd(node, ['status', '--config', node.configPath, '-o', 'json']);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as StatusJson;
}

/** Waits until a node other than `former` serves `address`, the client reaches it, and only it has the macvlan. */
async function servedElsewhere(lab: Lab, observer: VipObserver, former: LabNode, address: string): Promise<LabNode> {
  const next = await waitFor(
    `a node other than ${former.name} to serve ${address}`,
    () => {
      const holders = observer.currentHolders();
      return holders.length === 1 && holders[0] !== former.name ? holders[0] : undefined;
    },
    30_000,
    20,
  );
  await lab.waitClientReaches(next, 20_000, address);
  await waitFor(`only ${next} to have the VIP macvlan`, async () => {
    const found = await lab.nodesWithMacvlan();
    return found.length === 1 && found[0] === next;
  }, 10_000);
  return lab.node(next);
}

describe('DHCP mode with a reservation on dnsmasq', { timeout: 300_000 }, () => {
  let lab: Lab;
  let observer: VipObserver;

  useLab(
    {
      nodes: 3,
      config: { vip: { mode: 'dhcp', hwaddr: HWADDR, address: RESERVED } },
      watch: RESERVED,
      prepare: (lab) => lab.startDhcpServer({ reservations: [{ mac: HWADDR, ip: RESERVED }] }),
    },
    (fixture) => ({ lab, observer } = fixture),
  );

  test('the holder gets the reserved address on a macvlan with the VIP\'s own MAC', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer, 30_000);
      await lab.waitClientReaches(holder.name, 20_000, RESERVED);
      assert.equal(await lab.clientNeighbourMac(RESERVED), HWADDR);
      assert.deepEqual(await lab.nodesWithMacvlan(), [holder.name]);

      const node = lab.nodes[0]!;
      const annotations = await lab.vipd(node, ['status', '--config', node.configPath, '-o', 'jsonpath={.metadata.annotations}']);
      assert.equal(
        annotations.stdout,
        // Keys sorted, as kubectl prints a map.
        JSON.stringify({ 'kube-vip.io/hwaddr': HWADDR, 'kube-vip.io/requestedIP': RESERVED, 'kube-vip.io/vipHost': holder.name }),
      );
      const status = await statusJson(lab, node);
      assert.equal(status.status.address, RESERVED);
      assert.equal(status.status.dhcp?.state, 'bound');
      assert.equal(status.status.dhcp?.leasedIP, RESERVED);
      assert.equal(status.status.dhcp?.leaseSeconds, 120);
      assert.ok(Date.parse(status.status.dhcp?.expiresAt ?? '') > Date.now());
      assertNeverTwoHolders(observer);
    }));

  test('vipd dhcp reservation prints the MAC, the IP and lines for dnsmasq, ISC dhcpd and Kea', () =>
    explained(lab, async () => {
      const node = lab.nodes[1]!;
      const result = await lab.vipd(node, ['dhcp', 'reservation', '--config', node.configPath]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`MAC\\s+${HWADDR}`));
      assert.match(result.stdout, new RegExp(`REQUESTED IP\\s+${RESERVED.replace(/\./g, '\\.')}`));
      assert.ok(result.stdout.includes(`dhcp-host=${HWADDR},${RESERVED}`));
      assert.ok(result.stdout.includes(`host vipd-lab { hardware ethernet ${HWADDR}; fixed-address ${RESERVED}; }`));
      assert.ok(result.stdout.includes(`{"hw-address":"${HWADDR}","ip-address":"${RESERVED}"}`));
    }));

  for (const fault of ['SIGKILL', 'link down', 'SIGTERM'] as const) {
    test(`failover by ${fault}: the new holder gets the same address with the same MAC, and no macvlan stays behind`, () =>
      explained(lab, async () => {
        const holder = await singleHolder(lab, observer, 30_000);
        if (fault === 'link down') await lab.setLink(holder, false);
        else assert.equal(await lab.stopAgent(holder, fault), fault === 'SIGTERM' ? 0 : null);
        try {
          await servedElsewhere(lab, observer, holder, RESERVED);
          assert.equal(await lab.clientNeighbourMac(RESERVED), HWADDR);
        } finally {
          if (fault === 'link down') await lab.setLink(holder, true);
          else await startAgentAndWait(lab, holder);
        }
        assertNeverTwoHolders(observer);
      }));
  }
});

describe('DHCP mode without a reservation', { timeout: 300_000 }, () => {
  let lab: Lab;
  let observer: VipObserver;
  const REQUESTED = '192.0.2.70';

  useLab(
    { nodes: 2, config: { vip: { mode: 'dhcp', address: REQUESTED } }, watch: REQUESTED, prepare: (lab) => lab.startDhcpServer() },
    (fixture) => ({ lab, observer } = fixture),
  );

  test('the requested IP is honoured when free, under a MAC generated once for the cluster', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer, 30_000);
      await lab.waitClientReaches(holder.name, 20_000, REQUESTED);
      const status = await statusJson(lab, lab.nodes[0]!);
      const generated = status.metadata.annotations['kube-vip.io/hwaddr'] ?? '';
      assert.match(generated, /^02:00:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/);
      assert.equal(await lab.clientNeighbourMac(REQUESTED), generated);
      // The same MAC after a move, so the server hands out the same address.
      assert.equal(await lab.stopAgent(holder, 'SIGTERM'), 0);
      await servedElsewhere(lab, observer, holder, REQUESTED);
      assert.equal(await lab.clientNeighbourMac(REQUESTED), generated);
      assertNeverTwoHolders(observer);
    }));
});
