/**
 * What an idle agent costs: resident memory, CPU, and (for vipd) the load it puts on etcd.
 */
import { readFileSync } from 'node:fs';
import type { VipObserver } from '../lab/observer';
import { mustRun } from '../lab/shell';
import { round } from './stats';
import type { SystemUnderTest } from './systems';

/** What a process of an agent is, for the per-process figures. */
export type ProcessRole = 'vipd run' | 'etcd' | 'dead-man switch' | 'keepalived' | 'other';

export interface ProcessFootprint {
  pid: number;
  role: ProcessRole;
  rssKiB: number;
  cpuPercent: number;
}

export interface AgentFootprint {
  node: string;
  role: 'holder' | 'standby';
  pids: number[];
  processes: ProcessFootprint[];
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
  /**
   * Raft entries committed per second (etcd_server_proposals_committed_total, the highest
   * member's): every write, and every transaction with a put even when its compare fails.
   * Each costs a WAL fsync on every member.
   */
  raftEntriesPerSecond: number;
}

export interface Footprint {
  windowMs: number;
  agents: AgentFootprint[];
  rssKiBMean: number | null;
  cpuPercentMean: number | null;
  holderCpuPercent: number | null;
  /** Means over the nodes, per kind of process (vipd run, its embedded etcd member, ...). */
  byProcess: Partial<Record<ProcessRole, { rssKiBMean: number; cpuPercentMean: number }>>;
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
  committed: number;
}

function processRole(pid: number): ProcessRole {
  let argv: string[] = [];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return 'other';
  }
  const first = argv[0] ?? '';
  if (first === 'etcd' || first.endsWith('/etcd')) return 'etcd';
  if (first.endsWith('keepalived')) return 'keepalived';
  if (first === process.execPath || first.endsWith('/node')) return argv.includes('run') ? 'vipd run' : 'other';
  if (first === 'sh' || first.endsWith('/sh') || first.endsWith('/bash') || first.endsWith('/dash')) return 'dead-man switch';
  return 'other';
}

/** Sums etcd's Prometheus counters over every member's text. */
function scrapeEtcd(texts: string[]): EtcdCounters {
  let handled = 0;
  const messages = new Map<string, number>();
  // A gauge per member (its commit index): the most advanced member's, not a sum.
  const committed = Math.max(0, ...texts.map((text) => Number(/^etcd_server_proposals_committed_total\s+(\S+)/m.exec(text)?.[1] ?? 0)));
  for (const line of texts.join('\n').split('\n')) {
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
  return { handled, messages, committed };
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
  const roles = new Map<number, ProcessRole>();
  for (const list of pids.values()) for (const pid of list) roles.set(pid, processRole(pid));
  const etcdBeforeTexts = system.usesEtcd ? await system.etcdMetrics() : null;
  const etcdBefore = etcdBeforeTexts ? scrapeEtcd(etcdBeforeTexts) : null;
  const started = process.hrtime.bigint();
  await sleep(windowMs);
  const ended = process.hrtime.bigint();
  const elapsedMs = Number(ended - started) / 1e6;
  const movesWhileIdle = observer.intervals.filter((interval) => interval.from >= started && interval.from <= ended).length;
  const etcdAfterTexts = system.usesEtcd ? await system.etcdMetrics() : null;
  const etcdAfter = etcdAfterTexts ? scrapeEtcd(etcdAfterTexts) : null;

  const agents: AgentFootprint[] = [];
  for (const node of lab.nodes) {
    const list = pids.get(node.name) ?? [];
    let rssKiB = 0;
    let ticks = 0;
    const processes: ProcessFootprint[] = [];
    for (const pid of list) {
      const first = before.get(pid);
      const last = sampleProcess(pid);
      if (!first || !last) continue;
      rssKiB += last.rssKiB;
      ticks += last.ticks - first.ticks;
      processes.push({ pid, role: roles.get(pid) ?? 'other', rssKiB: last.rssKiB, cpuPercent: round((((last.ticks - first.ticks) / hz) * 1000 * 100) / elapsedMs, 2) });
    }
    agents.push({
      node: node.name,
      role: node.name === holder ? 'holder' : 'standby',
      pids: list,
      processes,
      rssKiB,
      cpuPercent: round(((ticks / hz) * 1000 * 100) / elapsedMs, 2),
    });
  }
  const mean = (values: number[]): number | null => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : null);
  const byProcess: Footprint['byProcess'] = {};
  for (const role of new Set(agents.flatMap((agent) => agent.processes.map((each) => each.role)))) {
    // Per node: the sum over that node's processes of the role, then the mean over nodes.
    const perNode = agents.map((agent) => agent.processes.filter((each) => each.role === role));
    byProcess[role] = {
      rssKiBMean: Math.round(mean(perNode.map((list) => list.reduce((sum, each) => sum + each.rssKiB, 0)))!),
      cpuPercentMean: round(mean(perNode.map((list) => list.reduce((sum, each) => sum + each.cpuPercent, 0)))!, 2),
    };
  }
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
      raftEntriesPerSecond: round((etcdAfter.committed - etcdBefore.committed) / seconds, 2),
    };
  }
  return {
    windowMs: round(elapsedMs),
    agents,
    rssKiBMean: rssMean === null ? null : Math.round(rssMean),
    cpuPercentMean: cpuMean === null ? null : round(cpuMean, 2),
    holderCpuPercent: agents.find((agent) => agent.role === 'holder')?.cpuPercent ?? null,
    byProcess,
    etcd,
    movesWhileIdle,
  };
}
