/**
 * The live demo: three nodes and a client on one L2 segment of network namespaces. node-1
 * runs `vipd init`, the others `vipd join` through the VIP: no hand-written config, and the
 * cluster's own etcd runs inside the nodes. It shows who holds the VIP, fails the holder hard
 * (link down and agent killed), and shows the VIP move and the client reach it again.
 * Everything is torn down at the end, or on Ctrl-C.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inNamespace, Lab, type LabNode } from '../lab/lab';
import { VipObserver } from '../lab/observer';
import { run, waitFor } from '../lab/shell';

// The one-file build (scripts/bundle.ts): what the package runs.
const CLI = join(__dirname, '..', 'vipd.js');
const started = Date.now();
function say(text: string): void {
  const seconds = ((Date.now() - started) / 1000).toFixed(1).padStart(5);
  process.stdout.write(`[${seconds}s] ${text}\n`);
}

function indent(text: string): string {
  return text.trimEnd().split('\n').map((line) => `          ${line}`).join('\n') + '\n';
}

async function vipd(node: LabNode, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return await run(...inNamespace(node.namespace, process.execPath, CLI, ...args), 180_000);
}

async function holderOtherThan(observer: VipObserver, former: string | null): Promise<string> {
  return await waitFor(
    'a holder',
    () => {
      const holders = observer.currentHolders();
      return holders.length === 1 && holders[0] !== former ? holders[0] : undefined;
    },
    30_000,
    10,
  );
}

async function main(): Promise<void> {
  say('building the lab: a bridge, node-1..3 (192.0.2.11-13, interface mgmt-br) and a client (192.0.2.100)');
  const lab = await Lab.create({ nodes: 3 });
  const observer = await VipObserver.start(lab.vip, lab.nodes);
  // Each node's config and data live in the lab's directory, never in /etc or /var/lib.
  const dataDir = (node: LabNode): string => join(lab.dir, node.name);
  const configPath = (node: LabNode): string => join(dataDir(node), 'config.yaml');
  const status = async (node: LabNode, ...output: string[]): Promise<string> => {
    const result = await vipd(node, ['status', '--config', configPath(node), ...output]);
    return result.stdout || result.stderr;
  };
  try {
    const first = lab.node('node-1');
    say(`on node-1: vipd init --interface mgmt-br --vip ${lab.vip} --cluster demo --yes`);
    const init = await vipd(first, ['init', '--interface', 'mgmt-br', '--vip', lab.vip, '--cluster', 'demo', '--node-name', first.name,
      '--data-dir', dataDir(first), '--config', configPath(first), '--yes']);
    if (init.code !== 0) throw new Error(`vipd init failed: ${init.stderr}`);
    process.stdout.write(indent(init.stdout));
    const command = /vipd join (\S+) --token (\S+)/.exec(init.stdout);
    if (!command) throw new Error('vipd init printed no join command');
    const clusterKey = /VIPD_CLUSTER_KEY=(\S+)/.exec(init.stdout)?.[1];
    for (const [index, node] of lab.nodes.slice(1).entries()) {
      // The second node gets the cluster key too, so that signing survives the first.
      const signs = index === 0 && clusterKey ? ['--cluster-key', clusterKey] : [];
      say(`on ${node.name}: vipd join ${command[1]} --token …${signs.length > 0 ? ' --cluster-key …' : ''}`);
      const joined = await vipd(node, ['join', command[1]!, '--token', command[2]!, '--node-name', node.name, '--data-dir', dataDir(node), '--config', configPath(node), ...signs]);
      if (joined.code !== 0) throw new Error(`vipd join on ${node.name} failed: ${joined.stderr}`);
      process.stdout.write(indent(joined.stdout.split('\n').filter((line) => /joined|Cluster store|Signs/.test(line)).join('\n')));
    }

    const holderName = await holderOtherThan(observer, null);
    const holder = lab.node(holderName);
    const observerNode = lab.nodes.find((node) => node !== holder) ?? holder;
    say(`${holderName} holds the VIP. vipd status on ${observerNode.name}:`);
    process.stdout.write(indent(await status(observerNode)));
    say("the annotation Harvester users query: vipd status -o jsonpath='{.metadata.annotations}'");
    process.stdout.write(indent(await status(observerNode, '-o', 'jsonpath={.metadata.annotations}')));
    const reached = await lab.waitClientReaches(holderName);
    say(`the client pings ${lab.vip} and its TCP connection is answered by ${reached}`);

    say(`failing ${holderName} hard: its link goes down and its agent is killed (SIGKILL); its etcd member goes with it`);
    const faultAt = Date.now();
    await lab.setLink(holder, false);
    process.kill(Number(readFileSync(join(dataDir(holder), 'vipd.pid'), 'utf8')), 'SIGKILL');
    const nextName = await holderOtherThan(observer, holderName);
    say(`${nextName} took the VIP ${Date.now() - faultAt} ms after the fault, and announced it with gratuitous ARP`);
    const again = await lab.waitClientReaches(nextName);
    say(`the client reaches the VIP again, answered by ${again} (${Date.now() - faultAt} ms after the fault)`);
    process.stdout.write(indent(await status(observerNode)));
    const overlaps = observer.overlaps();
    say(
      overlaps.length === 0
        ? 'sampled every 10 ms on every node: the VIP was never on two nodes at once'
        : `OVERLAP: ${JSON.stringify(overlaps)}`,
    );
    process.exitCode = overlaps.length === 0 ? 0 : 1;
  } finally {
    observer.stop();
    await lab.destroy();
    say('lab torn down');
  }
}

main().catch((error: Error) => {
  process.stderr.write(`demo failed: ${error.message}\n`);
  process.exit(1);
});
