/**
 * Issue 18's timeline: kills a node whole in the init/join topology and prints, per trial,
 * the outage and what the agents' and etcd's logs say happened when.
 *
 *   node dist/lab/measure-etcd-failover.js <fast|default> <holder-leader|holder|nonholder-leader> <trials> [etcd.electionTimeout]
 */
import { readFileSync } from 'node:fs';
import { Lab, type LabNode } from './lab';
import { EmbeddedCluster } from './embedded-lab';
import { VipObserver } from './observer';
import { waitFor } from './shell';

type Scenario = 'holder-leader' | 'holder' | 'nonholder-leader';

interface LogLine {
  time: number;
  text: string;
}

function agentLines(path: string, since: number, until: number): LogLine[] {
  const out: LogLine[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    try {
      const entry = JSON.parse(line) as { time: number; msg: string; level: number; err?: string; reason?: string; how?: string; endpoint?: string };
      if (entry.time < since || entry.time > until) continue;
      out.push({ time: entry.time, text: `${entry.msg}${entry.err ? ` (${entry.err})` : ''}${entry.reason ? ` [${entry.reason}]` : ''}${entry.endpoint ? ` <${entry.endpoint}>` : ''}` });
    } catch {
      // Not JSON.
    }
  }
  return out;
}

const ETCD_EVENTS = /became leader|lost leader|elected leader|became candidate|became pre-candidate|received MsgVoteResp|leadership transfer|lease|promote/i;

function etcdLines(path: string, since: number, until: number): LogLine[] {
  const out: LogLine[] = [];
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    try {
      const entry = JSON.parse(line) as { ts: string; msg: string };
      const time = Date.parse(entry.ts);
      if (time < since || time > until || !ETCD_EVENTS.test(entry.msg)) continue;
      out.push({ time, text: `etcd: ${entry.msg}` });
    } catch {
      // Not JSON.
    }
  }
  return out;
}

async function settle(cluster: EmbeddedCluster, observer: VipObserver): Promise<LabNode> {
  await waitFor('every member to answer', async () => (await cluster.status()).length === cluster.nodes.length, 60_000, 200);
  const name = await waitFor('one holder', () => {
    const holders = observer.currentHolders();
    return holders.length === 1 ? holders[0] : undefined;
  }, 60_000, 50);
  return cluster.nodes.find((node) => node.name === name)!;
}

async function main(): Promise<void> {
  const [profile = 'fast', scenario = 'holder-leader', trialsText = '3', electionTimeout] = process.argv.slice(2) as [string, Scenario, string, string?];
  const lab = await Lab.create({ nodes: 3 });
  let observer: VipObserver | undefined;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      observer?.stop();
      void lab.destroy().finally(() => process.exit(1));
    });
  }
  try {
    const cluster = await EmbeddedCluster.build(lab);
    for (const node of cluster.nodes) {
      cluster.configure(node, {
        log: { level: 'debug' },
        election: profile === 'fast' ? { profile: 'fast' } : {},
        ...(electionTimeout ? { etcd: { electionTimeout } } : {}),
      });
    }
    observer = await VipObserver.start(lab.vip, cluster.nodes, 5);
    cluster.startAgents();
    const results: string[] = [];
    for (let trial = 0; trial < Number(trialsText); trial += 1) {
      const first = await settle(cluster, observer);
      const others = cluster.nodes.filter((node) => node !== first);
      if (scenario === 'holder-leader') {
        await cluster.moveLeader(first).catch((error: unknown) => console.log(`move-leader: ${(error as Error).message}`));
      } else if (scenario === 'nonholder-leader') {
        await cluster.moveLeader(others[trial % others.length]!).catch((error: unknown) => console.log(`move-leader: ${(error as Error).message}`));
      }
      // Let the agents see the new leadership (and undo it, if they keep leadership off the holder).
      await new Promise((resolve) => setTimeout(resolve, 3000));
      const holder = await settle(cluster, observer);
      const leader = await cluster.leader();
      const leaderBefore = leader.name;
      // nonholder-leader: whichever node leads etcd now, unless that is the holder.
      const victim = scenario === 'nonholder-leader' ? (leader !== holder ? leader : cluster.nodes.find((node) => node !== holder)!) : holder;
      const intervalsBefore = observer.intervals.length;
      const wall0 = Date.now();
      const t0 = process.hrtime.bigint();
      await cluster.killNode(victim);
      // A fixed observation window: this is a measurement, not a test.
      await new Promise((resolve) => setTimeout(resolve, 8000));
      const after = observer.intervals.slice(intervalsBefore);
      const msSince = (ns: bigint): number => Number(ns - t0) / 1e6;
      let outage: number;
      let moved = false;
      if (victim === holder) {
        const next = after.find((entry) => entry.node !== victim.name);
        outage = next ? msSince(next.from) : NaN;
        moved = Boolean(next);
      } else {
        // The holder's own gaps after t0: the VIP absent everywhere.
        const all = observer.intervals.filter((entry) => entry.to === null || entry.to > t0).sort((a, b) => (a.from < b.from ? -1 : 1));
        outage = 0;
        let lastEnd: bigint = t0;
        for (const entry of all) {
          if (entry.from > lastEnd) outage = Math.max(outage, Number(entry.from - lastEnd) / 1e6);
          const end = entry.to ?? process.hrtime.bigint();
          if (end > lastEnd) lastEnd = end;
        }
        moved = after.some((entry) => entry.node !== holder.name);
      }
      const leaderAfter = (await cluster.leader().catch(() => ({ name: '?' }))).name;
      // A node killed before its agent saw the link go down keeps the VIP behind a dead link: not an overlap clients can see.
      const overlaps = observer.overlaps().filter((overlap) => overlap.at > t0 && overlap.first !== victim.name && overlap.second !== victim.name).length;
      results.push(`${profile} ${scenario} trial ${trial + 1}: holder ${holder.name}, etcd leader ${leaderBefore}, killed ${victim.name}: outage ${outage.toFixed(0)} ms, moved ${moved}, new etcd leader ${leaderAfter}, overlaps ${overlaps}`);
      console.log(results.at(-1));
      const lines = [
        ...cluster.nodes.flatMap((node) => agentLines(node.logPath, wall0 - 500, wall0 + 8000).map((line) => ({ ...line, text: `${node.name} agent: ${line.text}` }))),
        ...cluster.nodes.flatMap((node) => etcdLines(cluster.etcdLogPath(node), wall0 - 500, wall0 + 8000).map((line) => ({ ...line, text: `${node.name} ${line.text}` }))),
      ].sort((a, b) => a.time - b.time);
      for (const line of lines) console.log(`  +${String(line.time - wall0).padStart(5)} ms  ${line.text}`);
      await cluster.reviveNode(victim);
    }
    console.log('\n' + results.join('\n'));
  } finally {
    observer?.stop();
    await lab.destroy();
  }
}

void main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
