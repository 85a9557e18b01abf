import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { Lab, type LabNode } from '../../lab/lab';
import { mustRun, waitFor } from '../../lab/shell';
import { VipObserver } from '../../lab/observer';
import { assertNeverTwoHolders, explained, singleHolder, startAgentAndWait, stopObserver } from './helpers';

describe('checks before anything changes', { timeout: 300_000 }, () => {
  let lab: Lab;
  let node1: LabNode;
  let node2: LabNode;
  let observer: VipObserver;

  before(async () => {
    lab = await Lab.create({ nodes: 2 });
    await lab.startEtcd();
    observer = await VipObserver.start(lab.vip, lab.nodes);
    [node1, node2] = lab.nodes as [LabNode, LabNode];
  });

  after(async () => {
    try {
      stopObserver(observer);
    } finally {
      await lab?.destroy();
    }
  });

  /** Everything vipd has stored, with revisions: any write would show. */
  async function etcdSnapshot(): Promise<string> {
    const out = await lab.etcdctl('get', '--prefix', '/vipd/', '-w', 'json');
    const kvs = (JSON.parse(out) as { kvs?: unknown[] }).kvs ?? [];
    return JSON.stringify(kvs);
  }

  async function addressSnapshot(node: LabNode): Promise<string> {
    const links = JSON.parse(await mustRun('ip', ['-n', node.namespace, '-j', 'addr', 'show'])) as Array<{
      ifname: string;
      addr_info: Array<{ local: string; prefixlen: number }>;
    }>;
    return JSON.stringify(links.map((link) => [link.ifname, link.addr_info.map((entry) => `${entry.local}/${entry.prefixlen}`)]));
  }

  function baseConfig(node: LabNode): Record<string, unknown> {
    return {
      cluster: 'lab',
      node: { name: node.name, interface: 'mgmt-br' },
      vip: { mode: 'static', address: lab.vip },
      etcd: { endpoints: [lab.etcdEndpoint] },
    };
  }

  let configCount = 0;
  function writeRaw(text: string): string {
    configCount += 1;
    const path = join(lab.dir, `bad-${configCount}.yaml`);
    writeFileSync(path, text);
    return path;
  }

  test('with no agent running, status says no node holds the VIP and exits 0', () =>
    explained(lab, async () => {
      const result = await lab.vipd(node1, ['status', '--config', node1.configPath]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /no node holds the VIP/);
      const json = JSON.parse((await lab.vipd(node1, ['status', '--config', node1.configPath, '-o', 'json'])).stdout) as {
        status: { held: boolean; holder: null };
        metadata: { annotations: Record<string, string> };
      };
      assert.equal(json.status.held, false);
      assert.equal(json.status.holder, null);
      assert.deepEqual(json.metadata.annotations, { 'kube-vip.io/requestedIP': lab.vip });
    }));

  test('the first node starts and holds the VIP', () =>
    explained(lab, async () => {
      await startAgentAndWait(lab, node1);
      await waitFor('node-1 to hold the VIP', async () => (await lab.holders()).includes('node-1'), 20_000);
    }));

  const badConfigs: Array<{ name: string; config: (node: LabNode) => unknown; raw?: string; error: RegExp }> = [
    {
      name: 'an interface that does not exist',
      config: (node) => ({ ...baseConfig(node), node: { name: node.name, interface: 'nope0' } }),
      error: /node\.interface: there is no interface "nope0"/,
    },
    {
      name: 'a VIP outside the management subnet',
      config: (node) => ({ ...baseConfig(node), vip: { mode: 'static', address: '198.51.100.10' } }),
      error: /vip\.address: 198\.51\.100\.10 is not inside the subnet of any address on mgmt-br/,
    },
    {
      name: "a VIP equal to this node's own IP",
      config: (node) => ({ ...baseConfig(node), vip: { mode: 'static', address: '192.0.2.12' } }),
      error: /vip\.address: 192\.0\.2\.12 is already an address of this node/,
    },
    {
      name: "a VIP equal to another node's registered IP",
      config: (node) => ({ ...baseConfig(node), vip: { mode: 'static', address: '192.0.2.11' } }),
      error: /vip\.address: 192\.0\.2\.11 is the management IP of node "node-1"/,
    },
    {
      name: "a VIP other than the cluster's",
      config: (node) => ({ ...baseConfig(node), vip: { mode: 'static', address: '192.0.2.20' } }),
      error: /vip\.address: this cluster's VIP is 192\.0\.2\.10/,
    },
    {
      name: 'a node name a running node already has',
      config: (node) => ({ ...baseConfig(node), node: { name: 'node-1', interface: 'mgmt-br' } }),
      error: /node\.name: "node-1" is already taken by a running node/,
    },
    {
      name: "a DHCP-mode hwaddr equal to this node's MAC",
      config: (node) => ({ ...baseConfig(node), vip: { mode: 'dhcp', hwaddr: '__NODE2_MAC__' } }),
      error: /vip\.hwaddr: .* is the MAC of this node's mgmt-br; the VIP needs a MAC of its own/,
    },
    {
      name: 'a multicast hwaddr',
      config: (node) => ({ ...baseConfig(node), vip: { mode: 'dhcp', hwaddr: '01:00:5e:00:00:01' } }),
      error: /vip\.hwaddr: is a multicast address/,
    },
    {
      name: 'an all-zero hwaddr',
      config: (node) => ({ ...baseConfig(node), vip: { mode: 'dhcp', hwaddr: '00:00:00:00:00:00' } }),
      error: /vip\.hwaddr: must not be all zeros/,
    },
    {
      name: 'an hwaddr of the wrong length',
      config: (node) => ({ ...baseConfig(node), vip: { mode: 'dhcp', hwaddr: '02:00:00:09:7f' } }),
      error: /vip\.hwaddr: must be a MAC address like/,
    },
    {
      name: 'an unknown field',
      config: (node) => ({ ...baseConfig(node), vip: { mode: 'static', adress: lab.vip } }),
      error: /vip\.adress: unknown field/,
    },
    {
      name: 'a lease shorter than etcd grants',
      config: (node) => ({ ...baseConfig(node), election: { leaseTTL: '1s' } }),
      error: /election\.leaseTTL: must be at least 2s/,
    },
    {
      name: 'an invalid IP',
      config: (node) => ({ ...baseConfig(node), vip: { mode: 'static', address: '192.0.2.300' } }),
      error: /vip\.address: must be an IPv4 or IPv6 address/,
    },
    { name: 'malformed YAML', config: () => null, raw: 'cluster: [lab\nnode: {', error: /is not valid YAML/ },
  ];

  for (const bad of badConfigs) {
    test(`refused with exit 2, nothing changed: ${bad.name}`, () =>
      explained(lab, async () => {
        const etcdBefore = await etcdSnapshot();
        const addressesBefore = await addressSnapshot(node2);
        const node2Mac = await lab.mac(node2);
        const path = writeRaw((bad.raw ?? toYaml(bad.config(node2))).replace('__NODE2_MAC__', node2Mac));
        const result = await lab.vipd(node2, ['run', '--config', path]);
        assert.equal(result.code, 2, `exit code; stderr: ${result.stderr}`);
        assert.match(result.stderr, bad.error);
        assert.equal(result.stderr.trim().split('\n').length, 1, 'one message');
        assert.equal(await etcdSnapshot(), etcdBefore, 'etcd unchanged');
        assert.equal(await addressSnapshot(node2), addressesBefore, 'addresses unchanged');
      }));
  }

  test('a missing config file is named', async () => {
    const result = await lab.vipd(node2, ['run', '--config', join(lab.dir, 'missing.yaml')]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /cannot read .*missing\.yaml/);
  });

  test('a VIP left by an earlier run is removed on start', () =>
    explained(lab, async () => {
      // Nobody holds the VIP while we plant the leftover, so the planted address is the only one.
      assert.equal(await lab.stopAgent(node1, 'SIGTERM'), 0);
      await waitFor('the VIP to be released', () => observer.currentHolders().length === 0, 10_000, 20);
      // What a crashed agent leaves: the VIP as a host route with preferred lifetime 0.
      await mustRun('ip', ['-n', node2.namespace, 'addr', 'add', `${lab.vip}/32`, 'dev', 'mgmt-br', 'preferred_lft', '0', 'valid_lft', '600']);
      await startAgentAndWait(lab, node2);
      await waitFor('the removal to be logged', () => readFileSync(node2.logPath, 'utf8').includes('removed a VIP left on this node'), 10_000);
      // node-2 then wins the VIP itself: with a lifetime bounded by its lease, not the planted 600 s.
      await singleHolder(lab, observer);
      const validLifetime = await waitFor(
        'the VIP on node-2 with a short lifetime',
        async () => {
          const out = await mustRun('ip', ['-n', node2.namespace, '-j', 'addr', 'show', 'dev', 'mgmt-br']);
          const entry = (JSON.parse(out) as Array<{ addr_info: Array<{ local: string; valid_life_time: number }> }>)[0]?.addr_info.find(
            (address) => address.local === lab.vip,
          );
          return entry && entry.valid_life_time < 600 ? entry.valid_life_time : undefined;
        },
        10_000,
      );
      assert.ok(validLifetime <= 2, `valid lifetime ${validLifetime}s`);
      await startAgentAndWait(lab, node1);
      assertNeverTwoHolders(observer);
    }));

  test('drift is repaired: a VIP removed from the holder comes back', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      await mustRun('ip', ['-n', holder.namespace, 'addr', 'del', `${lab.vip}/32`, 'dev', 'mgmt-br']);
      await waitFor(`the VIP to come back on ${holder.name}`, async () => (await lab.holders()).includes(holder.name), 10_000);
      await lab.waitClientReaches(holder.name);
      assertNeverTwoHolders(observer);
    }));

  test('no two holders at any moment of this suite', () => {
    assertNeverTwoHolders(observer);
  });
});
