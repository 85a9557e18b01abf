/**
 * What an idle agent costs: resident memory, CPU, and (for vipd) the load it puts on etcd.
 */
import { readFileSync } from 'node:fs';
import type { Lab } from '../lab/lab';
import type { VipObserver } from '../lab/observer';
import { mustRun } from '../lab/shell';
import { round } from './stats';
import type { SystemUnderTest } from './systems';

export interface AgentFootprint {
  node: string;
  role: 'holder' | 'standby';
  pids: number[];
  /** VmRSS summed over the agent's processes, at the end of the window. */
  rssKiB: number;
  /** utime + stime over the window, as a share of one core. */
  cpuPercent: number;
}

export interface EtcdLoad {
  /** Σ grpc_server_handled_total: completed unary RPCs (and closed streams) per second. */
  handledPerSecond: number;
  /** Σ grpc_server_msg_received_total: every request message, lease keepalives on their stream included. */
  messagesPerSecond: number;
  messagesPerSecondByMethod: Record<string, number>;
}

export interface Footprint {
  windowMs: number;
  agents: AgentFootprint[];
  rssKiBMean: number | null;
  cpuPercentMean: number | null;
  holderCpuPercent: number | null;
  etcd: EtcdLoad | null;
  /** Times the VIP appeared on a node during the idle window: any is a spurious move. */
  movesWhileIdle: number;
  /** Agents started (all at once) to the first ICMP reply from the VIP at the client. */
  startToReachableMs: number | null;
  /** Agents started to the VIP first configured on a node (address sampling). */
  startToVipMs: number | null;
  /** Agents started to the first gratuitous ARP for the VIP at the client. */
  startToGarpMs: number | null;
}

interface ProcessSample {
  rssKiB: number;
  ticks: number;
}

let clockTicks: number | null = null;

async function ticksPerSecond(): Promise<number> {
  clockTicks ??= Number((await mustRun('getconf', ['CLK_TCK'])).trim()) || 100;
  return clockTicks;
}

function sampleProcess(pid: number): ProcessSample | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself hold spaces: state is field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return { rssKiB: rss ? Number(rss[1]) : 0, ticks: utime + stime };
  } catch {
    return null;
  }
}

interface EtcdCounters {
  handled: number;
  messages: Map<string, number>;
}

/** Reads etcd's Prometheus metrics from inside its namespace. */
async function scrapeEtcd(lab: Lab): Promise<EtcdCounters> {
  const text = await mustRun('ip', ['netns', 'exec', lab.etcdNs, 'curl', '-s', '-m', '5', `${lab.etcdEndpoint}/metrics`]);
  let handled = 0;
  const messages = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^(grpc_server_handled_total|grpc_server_msg_received_total)\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!match) continue;
    const value = Number(match[3]);
    if (match[1] === 'grpc_server_handled_total') {
      handled += value;
    } else {
      const method = /grpc_method="([^"]*)"/.exec(match[2]!)?.[1] ?? '?';
      messages.set(method, (messages.get(method) ?? 0) + value);
    }
  }
  return { handled, messages };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Measures the idle agents over `windowMs`; the caller keeps everything else quiet meanwhile. */
export async function measureIdle(system: SystemUnderTest, observer: VipObserver, holder: string, windowMs: number): Promise<Omit<Footprint, 'startToReachableMs' | 'startToVipMs' | 'startToGarpMs'>> {
  const { lab } = system;
  const hz = await ticksPerSecond();
  const pids = new Map(lab.nodes.map((node) => [node.name, system.agentPids(node)]));
  const before = new Map<number, ProcessSample>();
  for (const list of pids.values()) for (const pid of list) {
    const sample = sampleProcess(pid);
    if (sample) before.set(pid, sample);
  }
  const etcdBefore = system.usesEtcd ? await scrapeEtcd(lab) : null;
  const started = process.hrtime.bigint();
  await sleep(windowMs);
  const ended = process.hrtime.bigint();
  const elapsedMs = Number(ended - started) / 1e6;
  const movesWhileIdle = observer.intervals.filter((interval) => interval.from >= started && interval.from <= ended).length;
  const etcdAfter = system.usesEtcd ? await scrapeEtcd(lab) : null;

  const agents: AgentFootprint[] = [];
  for (const node of lab.nodes) {
    const list = pids.get(node.name) ?? [];
    let rssKiB = 0;
    let ticks = 0;
    for (const pid of list) {
      const first = before.get(pid);
      const last = sampleProcess(pid);
      if (!first || !last) continue;
      rssKiB += last.rssKiB;
      ticks += last.ticks - first.ticks;
    }
    agents.push({
      node: node.name,
      role: node.name === holder ? 'holder' : 'standby',
      pids: list,
      rssKiB,
      cpuPercent: round(((ticks / hz) * 1000 * 100) / elapsedMs, 2),
    });
  }
  const mean = (values: number[]): number | null => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : null);
  const rssMean = mean(agents.map((agent) => agent.rssKiB));
  const cpuMean = mean(agents.map((agent) => agent.cpuPercent));

  let etcd: EtcdLoad | null = null;
  if (etcdBefore && etcdAfter) {
    const seconds = elapsedMs / 1000;
    const byMethod: Record<string, number> = {};
    let messages = 0;
    for (const [method, value] of etcdAfter.messages) {
      const delta = value - (etcdBefore.messages.get(method) ?? 0);
      messages += delta;
      if (delta > 0) byMethod[method] = round(delta / seconds, 2);
    }
    etcd = {
      handledPerSecond: round((etcdAfter.handled - etcdBefore.handled) / seconds, 2),
      messagesPerSecond: round(messages / seconds, 2),
      messagesPerSecondByMethod: byMethod,
    };
  }
  return {
    windowMs: round(elapsedMs),
    agents,
    rssKiBMean: rssMean === null ? null : Math.round(rssMean),
    cpuPercentMean: cpuMean === null ? null : round(cpuMean, 2),
    holderCpuPercent: agents.find((agent) => agent.role === 'holder')?.cpuPercent ?? null,
    etcd,
    movesWhileIdle,
  };
}
