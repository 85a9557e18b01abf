import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Lab, type LabNode } from '../../lab/lab';
import { mustRun, run, waitFor } from '../../lab/shell';
import type { CheckResult, DoctorReport } from '../../src/doctor/report';
import { explained, startAgentAndWait } from './helpers';

interface DoctorRun {
  code: number;
  report: DoctorReport;
  stderr: string;
}

/** A lab-wide fault and the way back from it. */
async function withFault(apply: () => Promise<void>, restore: () => Promise<void>, body: () => Promise<void>): Promise<void> {
  await apply();
  try {
    await body();
  } finally {
    await restore();
  }
}

describe('vipd doctor on three nodes', { timeout: 300_000 }, () => {
  let lab: Lab;

  // A shared CI machine can stretch an etcd write past a quarter of the default 2 s lease
  // (450 ms, the latency warning); a 5 s lease keeps "healthy" about the environment.
  before(async () => {
    lab = await Lab.create({ nodes: 3, config: { election: { leaseTTL: '5s' } } });
    await lab.startEtcd();
    for (const node of lab.nodes) await startAgentAndWait(lab, node);
    await lab.waitClientReaches(undefined);
  });

  after(async () => {
    await lab?.destroy();
  });

  async function doctor(node: LabNode): Promise<DoctorRun> {
    const result = await lab.vipd(node, ['doctor', '--config', node.configPath, '-o', 'json']);
    let report: DoctorReport;
    try {
      report = JSON.parse(result.stdout) as DoctorReport;
    } catch {
      throw new Error(`doctor on ${node.name} printed no JSON (exit ${result.code}): ${result.stdout}${result.stderr}`);
    }
    return { code: result.code, report, stderr: result.stderr };
  }

  function checkOf(run: DoctorRun, name: string): CheckResult {
    const found = run.report.checks.find((entry) => entry.name === name);
    assert.ok(found, `no ${name} check in ${JSON.stringify(run.report.checks)}`);
    return found;
  }

  function problems(run: DoctorRun): CheckResult[] {
    return run.report.checks.filter((entry) => entry.verdict !== 'ok' && entry.verdict !== 'skip');
  }

  /** Asserts the run failed (exit 3) on exactly this check, and returns the check. */
  function failedOn(run: DoctorRun, name: string): CheckResult {
    assert.equal(run.code, 3, `expected exit 3: ${JSON.stringify(run.report.checks)} ${run.stderr}`);
    const found = checkOf(run, name);
    assert.equal(found.verdict, 'fail', JSON.stringify(found));
    return found;
  }

  async function holderAndOthers(): Promise<{ holder: LabNode; others: LabNode[] }> {
    const [name] = await waitFor('exactly one node to hold the VIP', async () => {
      const holders = await lab.holders();
      return holders.length === 1 ? holders : undefined;
    }, 20_000, 50);
    const holder = lab.node(name!);
    return { holder, others: lab.nodes.filter((node) => node !== holder) };
  }

  /** After a fault is undone: doctor passes again on these nodes. */
  async function passesAgain(...nodes: LabNode[]): Promise<void> {
    for (const node of nodes) {
      await waitFor(`doctor to pass again on ${node.name}`, async () => {
        const result = await doctor(node);
        return result.code === 0 && problems(result).length === 0;
      }, 30_000, 200);
    }
  }

  test('a healthy lab: every check is ok or skipped, from every node', () =>
    explained(lab, async () => {
      for (const node of lab.nodes) {
        const result = await doctor(node);
        assert.deepEqual(problems(result), [], `${node.name}: ${JSON.stringify(result.report.checks)}`);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.report.verdict, 'ok');
        // clock and renewal-latency are measurements: on a loaded machine they may be skipped, never failed.
        for (const name of ['etcd', 'subnet', 'mtu', 'layer2', 'vip-answers', 'firewall']) {
          assert.equal(checkOf(result, name).verdict, 'ok', `${node.name} ${name}: ${checkOf(result, name).detail}`);
        }
        assert.equal(checkOf(result, 'dhcp-reservation').verdict, 'skip');
      }
      const table = await lab.vipd(lab.nodes[0]!, ['doctor', '--config', lab.nodes[0]!.configPath]);
      assert.equal(table.code, 0, table.stderr);
      assert.match(table.stdout, /^CHECK\s+VERDICT\s+DETAIL$/m);
      assert.match(table.stdout, /^layer2\s+ok\s+node-2, node-3 answer ARP on mgmt-br/m);
      assert.match(table.stdout, /^OK: \d+ ok, 0 warn, 0 fail/m);
    }));

  // vipd's own checks keep a real node off another subnet: its agent refuses to start when the
  // VIP is not in the subnet of an address on its interface. What reaches etcd in practice is
  // a registration left by a node that was re-addressed or retired, so the test writes one.
  test('a node registered on another subnet: subnet fails and names it', () =>
    explained(lab, async () => {
      const record = { name: 'node-4', interface: 'mgmt-br', ip: '198.51.100.14', prefixLength: 24, mac: '02:00:00:00:00:04', mtu: 1500, registeredAt: new Date().toISOString() };
      await withFault(
        () => lab.etcdctl('put', '/vipd/lab/nodes/node-4', JSON.stringify(record)).then(() => undefined),
        async () => {
          await lab.etcdctl('del', '/vipd/lab/nodes/node-4');
          await passesAgain(lab.nodes[0]!);
        },
        async () => {
          const result = await doctor(lab.nodes[0]!);
          const subnet = failedOn(result, 'subnet');
          assert.match(subnet.detail, /node-4 \(198\.51\.100\.14\) is outside 192\.0\.2\.0\/24/);
          assert.ok(subnet.hint);
        },
      );
    }));

  test('a node on another bridge: layer2 fails for that node', () =>
    explained(lab, async () => {
      const { others } = await holderAndOthers();
      const moved = others[0]!;
      const observer = lab.nodes.find((node) => node !== moved)!;
      const port = `n${lab.nodes.indexOf(moved) + 1}`;
      const sw = (...args: string[]) => mustRun('ip', ['-n', lab.switchNs, ...args]).then(() => undefined);
      await withFault(
        async () => {
          await sw('link', 'add', 'br1', 'type', 'bridge');
          await sw('link', 'set', port, 'master', 'br1');
          await sw('link', 'set', 'br1', 'up');
        },
        async () => {
          await sw('link', 'set', port, 'master', 'br0');
          await run('ip', ['-n', lab.switchNs, 'link', 'del', 'br1']);
          await passesAgain(observer, moved);
        },
        async () => {
          const layer2 = failedOn(await doctor(observer), 'layer2');
          assert.match(layer2.detail, new RegExp(`${moved.name} \\(${moved.ip.replace(/\./g, '\\.')}\\) did not answer ARP`));
        },
      );
    }));

  // Adding the VIP to a non-holder's mgmt-br does not last: that node's agent removes a VIP it
  // does not hold at once. An address on lo does last, and Linux answers ARP for it on every
  // interface (arp_ignore=0): the classic leftover of an LVS-DR or hand-made VIP setup.
  test('a second host answering for the VIP: vip-answers fails with both MACs', () =>
    explained(lab, async () => {
      const { holder, others } = await holderAndOthers();
      const duplicate = others[0]!;
      const asker = others[1]!;
      await withFault(
        () => mustRun('ip', ['-n', duplicate.namespace, 'addr', 'add', `${lab.vip}/32`, 'dev', 'lo']).then(() => undefined),
        async () => {
          await run('ip', ['-n', duplicate.namespace, 'addr', 'del', `${lab.vip}/32`, 'dev', 'lo']);
          await passesAgain(asker, duplicate, holder);
        },
        async () => {
          // From a bystander, from the duplicate itself, and from the holder: each sees both.
          for (const node of [asker, duplicate, holder]) {
            const vip = failedOn(await doctor(node), 'vip-answers');
            assert.match(vip.detail, /^the VIP answers from two MACs: /);
            assert.ok(vip.detail.includes(`${await lab.mac(holder)} (${holder.name}, the holder)`), vip.detail);
            assert.ok(vip.detail.includes(`${await lab.mac(duplicate)} (${duplicate.name})`), vip.detail);
          }
        },
      );
    }));

  test('an nftables rule dropping ARP on a node: doctor there fails firewall and names the rule', () =>
    explained(lab, async () => {
      const { others } = await holderAndOthers();
      const node = others[0]!;
      const nft = (...args: string[]) => mustRun('ip', ['netns', 'exec', node.namespace, 'nft', ...args]).then(() => undefined);
      await withFault(
        async () => {
          await nft('add', 'table', 'arp', 'vipdtest');
          await nft('add', 'chain', 'arp', 'vipdtest', 'input', '{ type filter hook input priority 0; }');
          await nft('add', 'rule', 'arp', 'vipdtest', 'input', 'drop');
        },
        async () => {
          await nft('delete', 'table', 'arp', 'vipdtest');
          await passesAgain(...lab.nodes);
        },
        async () => {
          const firewall = failedOn(await doctor(node), 'firewall');
          assert.match(firewall.detail, /^arp vipdtest input handle \d+ drops ARP/);
          // The other nodes see the effect: this node no longer answers ARP.
          const bystander = lab.nodes.find((candidate) => candidate !== node)!;
          const layer2 = failedOn(await doctor(bystander), 'layer2');
          assert.ok(layer2.detail.includes(`${node.name} (${node.ip}) did not answer ARP`), layer2.detail);
        },
      );
    }));

  test('etcd unreachable: exit 1, etcd fails, the checks that need it are skipped', () =>
    explained(lab, async () => {
      await lab.stopEtcd('SIGKILL');
      const result = await doctor(lab.nodes[0]!);
      assert.equal(result.code, 1, JSON.stringify(result.report.checks));
      assert.equal(checkOf(result, 'etcd').verdict, 'fail');
      assert.match(checkOf(result, 'etcd').detail, /cannot reach etcd at http:\/\/192\.0\.2\.2:2379/);
      for (const name of ['clock', 'renewal-latency', 'subnet', 'mtu', 'layer2', 'vip-answers']) {
        assert.deepEqual([name, checkOf(result, name).verdict, checkOf(result, name).detail], [name, 'skip', 'needs etcd, which could not be reached']);
      }
      assert.equal(checkOf(result, 'firewall').verdict, 'ok', 'the local checks still run');
    }));
});
