/**
 * The live demo: three nodes and a client on one L2 segment of network namespaces. It shows
 * who holds the VIP, fails the holder hard (link down and agent killed), and shows the VIP
 * move and the client reach it again. Everything is torn down at the end, or on Ctrl-C.
 */
import { Lab, type LabNode } from '../lab/lab';
import { VipObserver } from '../lab/observer';
import { waitFor } from '../lab/shell';

const started = Date.now();
function say(text: string): void {
  const seconds = ((Date.now() - started) / 1000).toFixed(1).padStart(5);
  process.stdout.write(`[${seconds}s] ${text}\n`);
}

function indent(text: string): string {
  return text.trimEnd().split('\n').map((line) => `          ${line}`).join('\n') + '\n';
}

async function status(lab: Lab, node: LabNode, ...output: string[]): Promise<string> {
  const result = await lab.vipd(node, ['status', '--config', node.configPath, ...output]);
  return result.stdout || result.stderr;
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
  say('building the lab: a bridge, node-1..3 (192.0.2.11-13, interface mgmt-br), a client (192.0.2.100), etcd (192.0.2.2)');
  const lab = await Lab.create({ nodes: 3 });
  const observer = await VipObserver.start(lab.vip, lab.nodes);
  try {
    await lab.startEtcd();
    say(`etcd is up; starting a vipd agent on each node, VIP ${lab.vip}`);
    for (const node of lab.nodes) lab.startAgent(node);
    const holderName = await holderOtherThan(observer, null);
    const holder = lab.node(holderName);
    const observerNode = lab.nodes.find((node) => node !== holder) ?? holder;
    say(`${holderName} holds the VIP. vipd status on ${observerNode.name}:`);
    process.stdout.write(indent(await status(lab, observerNode)));
    say("the annotation Harvester users query: vipd status -o jsonpath='{.metadata.annotations}'");
    process.stdout.write(indent(await status(lab, observerNode, '-o', 'jsonpath={.metadata.annotations}')));
    const reached = await lab.waitClientReaches(holderName);
    say(`the client pings ${lab.vip} and its TCP connection is answered by ${reached}`);

    say(`failing ${holderName} hard: its link goes down and its agent is killed (SIGKILL)`);
    const faultAt = Date.now();
    await lab.setLink(holder, false);
    await lab.stopAgent(holder, 'SIGKILL');
    const nextName = await holderOtherThan(observer, holderName);
    say(`${nextName} took the VIP ${Date.now() - faultAt} ms after the fault, and announced it with gratuitous ARP`);
    const again = await lab.waitClientReaches(nextName);
    say(`the client reaches the VIP again, answered by ${again} (${Date.now() - faultAt} ms after the fault)`);
    process.stdout.write(indent(await status(lab, observerNode)));
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
