/**
 * vipd's recommended topology in the lab: `vipd init` on node-1, `vipd join` on the others,
 * an embedded etcd member beside every agent. After the joins, the agents init/join left in
 * the background are replaced by agents the lab owns, so a test can set the profile and log
 * level, and kill a node whole.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import type { Lab, LabNode } from './lab';
import { inNamespace } from './lab';
import { mustRun, run, waitFor } from './shell';

const CLI = join(__dirname, '..', 'src', 'main.js');

/** etcd's member IDs are 64-bit: JSON.parse would round them. */
function quoteIds(json: string): string {
  return json.replace(/:(\d{16,})/g, ':"$1"');
}

export interface MemberStatus {
  node: string;
  memberId: string;
  leaderId: string;
  raftTerm: number;
  revision: number;
}

export class EmbeddedCluster {
  /** Nodes whose whole namespace was killed. */
  readonly dead = new Set<string>();
  /** Nodes whose etcd member is stopped (SIGSTOP). */
  readonly frozen = new Set<string>();

  constructor(readonly lab: Lab, readonly nodes: LabNode[]) {}

  dataDir(node: LabNode): string {
    return join(this.lab.dir, 'nodes', node.name);
  }

  configPath(node: LabNode): string {
    return join(this.dataDir(node), 'config.yaml');
  }

  /** The agent's log (the lab's copy of its stdout and stderr). */
  logPath(node: LabNode): string {
    return node.logPath;
  }

  /** init on the first node, join on the others through the VIP; every agent then stopped. */
  static async build(lab: Lab, count = 3): Promise<EmbeddedCluster> {
    const nodes = lab.nodes.slice(0, count);
    const cluster = new EmbeddedCluster(lab, nodes);
    const first = nodes[0]!;
    const init = await cluster.cli(first, ['init', '--interface', 'mgmt-br', '--vip', lab.vip, '--cluster', 'lab', '--node-name', first.name,
      '--data-dir', cluster.dataDir(first), '--config', cluster.configPath(first), '--yes']);
    if (init.code !== 0) throw new Error(`vipd init failed: ${init.stdout}${init.stderr}`);
    const token = /--token (vipd-join:\S+)/.exec(init.stdout)?.[1];
    if (!token) throw new Error(`no join token in: ${init.stdout}`);
    for (const node of nodes.slice(1)) {
      const joined = await cluster.cli(node, ['join', `https://${lab.vip}`, '--token', token, '--node-name', node.name,
        '--data-dir', cluster.dataDir(node), '--config', cluster.configPath(node)]);
      if (joined.code !== 0) throw new Error(`vipd join on ${node.name} failed: ${joined.stdout}${joined.stderr}`);
      await waitFor(`${node.name}'s member to vote`, async () => {
        const members = await cluster.members(first);
        return members.length === nodes.indexOf(node) + 1 && members.every((member) => !member.isLearner);
      }, 60_000, 200);
    }
    for (const node of nodes) await cluster.stopBackgroundAgent(node);
    return cluster;
  }

  private async cli(node: LabNode, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return await run(...inNamespace(node.namespace, process.execPath, CLI, ...args), 180_000);
  }

  /** The agent init/join started: SIGTERM, and wait until it and its etcd member are gone. */
  private async stopBackgroundAgent(node: LabNode): Promise<void> {
    const pid = Number(readFileSync(join(this.dataDir(node), 'vipd.pid'), 'utf8'));
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    await waitFor(`${node.name}'s background agent to exit`, async () => (await this.pids(node)).length === 0, 30_000, 100);
  }

  /** Processes in the node's namespace other than the lab's own helpers (whoami). */
  async pids(node: LabNode): Promise<number[]> {
    const out = (await run('ip', ['netns', 'pids', node.namespace])).stdout;
    const pids = out.split('\n').filter(Boolean).map(Number);
    const mine: number[] = [];
    for (const pid of pids) {
      try {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (cmdline.includes('createServer') || cmdline.includes('observer-probe')) continue;
        mine.push(pid);
      } catch {
        // Exited meanwhile.
      }
    }
    return mine;
  }

  /** The node's etcd member process. */
  async etcdPid(node: LabNode): Promise<number> {
    for (const pid of await this.pids(node)) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'etcd') return pid;
      } catch {
        // Exited meanwhile.
      }
    }
    throw new Error(`no etcd member runs on ${node.name}`);
  }

  /** SIGSTOP: the member keeps its sockets and never answers, like a hung machine. */
  async freeze(node: LabNode): Promise<void> {
    process.kill(await this.etcdPid(node), 'SIGSTOP');
    this.frozen.add(node.name);
  }

  async thaw(node: LabNode): Promise<void> {
    if (!this.frozen.has(node.name)) return;
    process.kill(await this.etcdPid(node), 'SIGCONT');
    this.frozen.delete(node.name);
  }

  /** The highest revision any live member reports: grows with every renewal of the fast profile. */
  async revision(): Promise<number> {
    return Math.max(0, ...(await this.status()).map((entry) => entry.revision));
  }

  /** Lines of the node's agent log that contain `text`. */
  logLines(node: LabNode, text: string): string[] {
    try {
      return readFileSync(node.logPath, 'utf8').split('\n').filter((line) => line.includes(text));
    } catch {
      return [];
    }
  }

  /** Merges `extra` into the config init/join wrote (profile, log level, etcd timing). */
  configure(node: LabNode, extra: Record<string, unknown>): void {
    const path = this.configPath(node);
    const config = parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    for (const [key, value] of Object.entries(extra)) {
      const current = config[key];
      config[key] = typeof value === 'object' && value !== null && typeof current === 'object' && current !== null
        ? { ...(current as Record<string, unknown>), ...(value as Record<string, unknown>) }
        : value;
    }
    writeFileSync(path, stringify(config));
  }

  startAgents(): void {
    for (const node of this.nodes) this.lab.startAgent(node, this.configPath(node));
  }

  /** Brings a killed node back: link up, its agent (and with it its etcd member) started again. */
  async reviveNode(node: LabNode): Promise<void> {
    await this.lab.setLink(node, true);
    this.lab.startAgent(node, this.configPath(node));
    this.dead.delete(node.name);
    await waitFor(`${node.name}'s member to answer`, async () => (await this.status()).length === this.nodes.length, 60_000, 200);
  }

  /** etcd's own log for the node's member (zap JSON lines). */
  etcdLogPath(node: LabNode): string {
    const config = parse(readFileSync(this.configPath(node), 'utf8')) as { etcd?: { embedded?: { dataDir?: string } } };
    return `${config.etcd?.embedded?.dataDir ?? join(this.dataDir(node), 'etcd')}.log`;
  }

  /** The node dies whole: its link goes down and every process in it is killed. */
  async killNode(node: LabNode): Promise<void> {
    this.dead.add(node.name);
    await this.lab.setLink(node, false);
    for (const pid of await this.pids(node)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }

  private etcdctlArgs(node: LabNode, endpoints: string[]): string[] {
    const pki = join(this.dataDir(node), 'pki');
    return ['netns', 'exec', node.namespace, 'etcdctl', `--endpoints=${endpoints.join(',')}`, `--cacert=${join(pki, 'ca.pem')}`,
      `--cert=${join(pki, 'etcd-client.pem')}`, `--key=${join(pki, 'etcd-client-key.pem')}`, '--dial-timeout=1s', '--command-timeout=2s'];
  }

  endpoint(node: LabNode): string {
    return `https://${node.ip}:2379`;
  }

  async members(via: LabNode): Promise<Array<{ ID: string; name: string; isLearner?: boolean; clientURLs?: string[] }>> {
    const out = await mustRun('ip', [...this.etcdctlArgs(via, [this.endpoint(via)]), 'member', 'list', '-w', 'json']);
    return (JSON.parse(quoteIds(out)) as { members: Array<{ ID: string; name: string; isLearner?: boolean }> }).members;
  }

  /** Status of every live member, asked of each member itself. */
  async status(): Promise<MemberStatus[]> {
    const live = this.nodes.filter((node) => !this.dead.has(node.name) && !this.frozen.has(node.name));
    const via = live[0]!;
    const result = await run('ip', [...this.etcdctlArgs(via, live.map((node) => this.endpoint(node))), 'endpoint', 'status', '-w', 'json']);
    const parsed = JSON.parse(quoteIds(result.stdout || '[]')) as Array<{ Endpoint: string; Status: { header: { member_id: string; revision: number; raft_term: number }; leader: string } }>;
    return parsed.map((entry) => ({
      node: live.find((node) => entry.Endpoint === this.endpoint(node))?.name ?? entry.Endpoint,
      memberId: String(entry.Status.header.member_id),
      leaderId: String(entry.Status.leader),
      raftTerm: Number(entry.Status.header.raft_term),
      revision: Number(entry.Status.header.revision),
    }));
  }

  /** The node whose member leads etcd, once every live member agrees on one. */
  async leader(timeoutMs = 30_000): Promise<LabNode> {
    return await waitFor('the live etcd members to agree on a leader', async () => {
      const status = await this.status();
      const leaderId = status[0]?.leaderId;
      if (!leaderId || leaderId === '0' || status.length < this.nodes.length - this.dead.size - this.frozen.size || status.some((entry) => entry.leaderId !== leaderId)) return undefined;
      const name = status.find((entry) => entry.memberId === leaderId)?.node;
      return this.nodes.find((node) => node.name === name);
    }, timeoutMs, 100);
  }

  /** etcdctl move-leader, sent to the current leader's endpoint (only the leader can transfer). */
  async moveLeader(to: LabNode): Promise<void> {
    const from = await this.leader();
    if (from === to) return;
    const members = await this.members(from);
    const target = members.find((member) => member.name === to.name);
    if (!target) throw new Error(`no etcd member named ${to.name}`);
    await mustRun('ip', [...this.etcdctlArgs(from, [this.endpoint(from)]), 'move-leader', BigInt(target.ID).toString(16)]);
    await waitFor(`etcd leadership on ${to.name}`, async () => (await this.leader()) === to, 20_000, 100);
  }
}
