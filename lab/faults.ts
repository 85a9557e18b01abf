/**
 * Fault injection on a running Lab: freezing every process of a node, and cutting a node
 * off from the other nodes and etcd while the client still reaches it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab, LabNode } from './lab';
import { mustRun, run } from './shell';

/**
 * Processes that only watch the lab. Freezing them would blind the measurement, and they
 * are not part of the node under test.
 */
const WATCHERS = ['observer-probe.js', 'frame-capture.js', 'icmp-prober.js', 'arp-prober.js'];

/** The pids whose network namespace is `namespace`. */
export async function namespacePids(namespace: string): Promise<number[]> {
  const result = await run('ip', ['netns', 'pids', namespace]);
  if (result.code !== 0) return [];
  return result.stdout
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((pid) => Number.isInteger(pid) && pid > 0);
}

function commandLine(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return null;
  }
}

/** The node's own processes: agents, services and their children, not the lab's watchers. */
export async function nodeProcesses(node: LabNode): Promise<number[]> {
  const pids = await namespacePids(node.namespace);
  return pids.filter((pid) => {
    const line = commandLine(pid);
    return line !== null && !WATCHERS.some((marker) => line.includes(marker));
  });
}

function signalAll(pids: number[], signal: NodeJS.Signals): number[] {
  const reached: number[] = [];
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
      reached.push(pid);
    } catch {
      // Exited since the listing.
    }
  }
  return reached;
}

/**
 * SIGSTOPs every process of the node, as a hung machine would look to its peers. The kernel
 * of the namespace keeps running: it still answers ARP and ping for addresses it holds.
 * Returns the pids it stopped.
 */
export async function freezeNode(_lab: Lab, node: LabNode): Promise<number[]> {
  return signalAll(await nodeProcesses(node), 'SIGSTOP');
}

/** SIGCONTs every process of the node (harmless for those that were not stopped). */
export async function thawNode(_lab: Lab, node: LabNode): Promise<number[]> {
  return signalAll(await nodeProcesses(node), 'SIGCONT');
}

/** The switch-side port of a node: the lab names it n<i>, i counted from 1. */
function switchPort(lab: Lab, node: LabNode): string {
  const index = lab.nodes.indexOf(node);
  if (index < 0) throw new Error(`${node.name} is not a node of lab ${lab.prefix}`);
  return `n${index + 1}`;
}

/**
 * Drops every frame between the node and the other nodes and etcd, both ways, in the
 * switch. The client port (cl) is left alone, so the client still reaches every node: the
 * classic split in which VRRP elects a second master.
 */
export async function partitionNode(lab: Lab, node: LabNode): Promise<void> {
  const port = switchPort(lab, node);
  const others = [...lab.nodes.filter((other) => other !== node).map((other) => switchPort(lab, other)), 'db'];
  const set = `{ ${others.map((name) => `"${name}"`).join(', ')} }`;
  // The forward hook sees every copy of a flooded frame with its output port, so
  // broadcast (ARP) and multicast (VRRP) are cut per port as well.
  const rules = [
    `table bridge ${lab.prefix} {`,
    '  chain forward {',
    '    type filter hook forward priority 0; policy accept;',
    `    iifname "${port}" oifname ${set} drop`,
    `    iifname ${set} oifname "${port}" drop`,
    '  }',
    '}',
    '',
  ].join('\n');
  const file = join(lab.dir, `partition-${node.name}.nft`);
  writeFileSync(file, rules);
  await mustRun('ip', ['netns', 'exec', lab.switchNs, 'nft', '-f', file]);
}

/** Removes the lab's partition table, healing every partition made with partitionNode(). */
export async function healPartition(lab: Lab, _node?: LabNode): Promise<void> {
  const listed = await run('ip', ['netns', 'exec', lab.switchNs, 'nft', 'list', 'table', 'bridge', lab.prefix]);
  if (listed.code !== 0) return;
  await mustRun('ip', ['netns', 'exec', lab.switchNs, 'nft', 'delete', 'table', 'bridge', lab.prefix]);
}
