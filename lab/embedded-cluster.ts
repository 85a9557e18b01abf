/**
 * vipd's recommended topology in a lab: `vipd init` on node-1 and `vipd join` on the
 * others, one embedded etcd member beside every agent (up to the voter count; further nodes
 * run only the agent). After the joins, the agents init/join left in the background are
 * stopped, so the caller runs them as the lab's children: it can set the profile and log
 * level, freeze a member, and kill a node whole. Used by the benchmark, the issue-18 lab
 * test and measurement, and the chaos runner's embedded topology.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { nodeProcesses } from './faults';
import { inNamespace, type Lab, type LabNode } from './lab';
import { alive, mustRun, run, waitFor, type CommandResult } from './shell';

// The one-file build (scripts/bundle.ts): what the package runs.
const CLI = join(__dirname, '..', 'vipd.js');

export interface MemberStatus {
  node: string;
  /** Hex member id, as `etcdctl move-leader` takes it. */
  memberId: string;
  /** Hex id of the member this one follows (its own id when it leads). */
  leaderId: string;
  raftTerm: number;
  revision: number;
}

export interface MemberListing {
  /** Hex member id. */
  id: string;
  name: string;
  isLearner: boolean;
}

/** etcd prints uint64 ids as JSON numbers, beyond what a double holds: keep them as text. */
export function parseWithBigIds(text: string): unknown {
  return JSON.parse(text.replace(/("(?:member_id|cluster_id|leader|raft_term|raftTerm|ID|id)"\s*:\s*)(\d+)/g, '$1"$2"'));
}

export function hex(decimal: string): string {
  return BigInt(decimal).toString(16);
}

/** Running (not a zombie). */

export class EmbeddedCluster {
  /** Nodes killed whole by killNode(), until reviveNode(). */
  readonly dead = new Set<string>();
  /** Nodes whose etcd member is stopped (SIGSTOP) by freeze(), until thaw(). */
  readonly frozen = new Set<string>();
  /** member id (hex) by node name, learnt from each member's own status. */
  private readonly ids = new Map<string, string>();

  /** Every lab node takes part: the first `voters` carry an etcd member, the first `signers` hold the cluster key. */
  constructor(
    readonly lab: Lab,
    readonly voters: 3 | 5 = 3,
    readonly signers = 2,
  ) {
    if (lab.nodes.length < voters) throw new Error(`${voters} etcd voters need ${voters} lab nodes, the lab has ${lab.nodes.length}`);
  }

  get nodes(): LabNode[] {
    return this.lab.nodes;
  }
  /** The nodes that carry an etcd member. */
  get memberNodes(): LabNode[] {
    return this.lab.nodes.slice(0, this.voters);
  }

  dataDir(node: LabNode): string {
    return join(this.lab.dir, 'nodes', node.name);
  }
  configPath(node: LabNode): string {
    return join(this.dataDir(node), 'config.yaml');
  }
  clientUrl(node: LabNode): string {
    return `https://${node.ip}:2379`;
  }

  /** TLS flags for etcdctl and curl: node-1's client certificate, issued by the cluster CA. */
  private tls(): { ca: string; cert: string; key: string } {
    const pki = join(this.dataDir(this.lab.nodes[0]!), 'pki');
    return { ca: join(pki, 'ca.pem'), cert: join(pki, 'etcd-client.pem'), key: join(pki, 'etcd-client-key.pem') };
  }

  private async cli(node: LabNode, args: string[], timeoutMs = 180_000): Promise<CommandResult> {
    return await run(...inNamespace(node.namespace, process.execPath, CLI, ...args), timeoutMs);
  }

  /**
   * init on node-1, then join on every other node in turn, each member waited for until it
   * votes; then the agents `vipd init`/`join` left running in the background are stopped.
   * From then on node.configPath is the config init/join wrote.
   */
  async create(): Promise<void> {
    const [first, ...rest] = this.lab.nodes;
    const init = await this.cli(first!, ['init', '--interface', 'mgmt-br', '--vip', this.lab.vip, '--cluster', 'lab', '--node-name', first!.name,
      '--etcd-voters', String(this.voters), '--data-dir', this.dataDir(first!), '--config', this.configPath(first!), '--yes']);
    if (init.code !== 0) throw new Error(`vipd init failed (${init.code}): ${(init.stderr || init.stdout).trim().split('\n').slice(-3).join(' ')}`);
    const token = /--token (\S+)/.exec(init.stdout)?.[1];
    if (!token) throw new Error(`vipd init printed no join token: ${init.stdout.trim().slice(0, 300)}`);
    const clusterKey = /VIPD_CLUSTER_KEY=(\S+)/.exec(init.stdout)?.[1];
    if (!clusterKey) throw new Error(`vipd init printed no cluster key: ${init.stdout.trim().slice(0, 300)}`);
    for (const [index, node] of rest.entries()) {
      const signs = index + 2 <= this.signers ? ['--cluster-key', clusterKey] : [];
      const joined = await this.cli(node, ['join', `https://${this.lab.vip}`, '--token', token, '--node-name', node.name,
        '--data-dir', this.dataDir(node), '--config', this.configPath(node), ...signs]);
      if (joined.code !== 0) throw new Error(`vipd join on ${node.name} failed (${joined.code}): ${(joined.stderr || joined.stdout).trim().split('\n').slice(-3).join(' ')}`);
      // etcd admits one learner at a time: the next join waits until this member votes.
      const expected = Math.min(index + 2, this.voters);
      await waitFor(`${expected} voting etcd members`, async () => {
        const members = await this.members([first!]).catch(() => null);
        return members !== null && members.length === expected && members.every((member) => !member.isLearner);
      }, 60_000, 200);
    }
    for (const node of this.lab.nodes) await this.stopBackgroundAgent(node);
    for (const node of this.lab.nodes) node.configPath = this.configPath(node);
  }

  private async stopBackgroundAgent(node: LabNode): Promise<void> {
    let pid: number;
    try {
      pid = Number(readFileSync(join(this.dataDir(node), 'vipd.pid'), 'utf8').trim());
    } catch {
      return;
    }
    if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return;
    const tree = [pid, ...descendantPids(pid)];
    process.kill(pid, 'SIGTERM');
    await waitFor(`${node.name}'s background agent and its etcd to exit`, () => tree.every((each) => !alive(each)), 30_000, 50).catch(() => {
      for (const each of tree) tryKill(each, 'SIGKILL');
    });
  }

  /** Merges `extra` into the config init/join wrote (profile, log level, etcd timing), one level deep. */
  configure(node: LabNode, extra: Record<string, unknown>): void {
    if (!Object.keys(extra).length) return;
    const document = parseYaml(readFileSync(this.configPath(node), 'utf8')) as Record<string, unknown>;
    for (const [key, value] of Object.entries(extra)) {
      const current = document[key];
      document[key] = current && typeof current === 'object' && value && typeof value === 'object' ? { ...(current as object), ...(value as object) } : value;
    }
    writeFileSync(this.configPath(node), toYaml(document));
  }

  startAgents(): void {
    for (const node of this.lab.nodes) this.lab.startAgent(node, this.configPath(node));
  }

  /** The node's processes other than the lab's own helpers (whoami, watchers). */
  async pids(node: LabNode): Promise<number[]> {
    return (await nodeProcesses(node)).filter((pid) => {
      try {
        return !readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('createServer');
      } catch {
        return false;
      }
    });
  }

  /** The pid of the node's etcd member (a child of its running agent), or null. */
  etcdPid(node: LabNode): number | null {
    const agent = node.agent;
    if (!agent?.pid || agent.exitCode !== null || agent.signalCode !== null) return null;
    return descendantPids(agent.pid).find((pid) => isEtcd(pid)) ?? null;
  }

  /** SIGSTOP: the member keeps its sockets and never answers, like a hung machine. */
  freeze(node: LabNode): void {
    const pid = this.etcdPid(node);
    if (pid === null) throw new Error(`no etcd member runs on ${node.name}`);
    process.kill(pid, 'SIGSTOP');
    this.frozen.add(node.name);
  }

  /** SIGCONT to the node's member; false when none runs. */
  thaw(node: LabNode): boolean {
    this.frozen.delete(node.name);
    const pid = this.etcdPid(node);
    if (pid === null) return false;
    tryKill(pid, 'SIGCONT');
    return true;
  }

  /** The node dies whole: its link goes down and every process in it is killed. */
  async killNode(node: LabNode): Promise<void> {
    this.dead.add(node.name);
    await this.lab.setLink(node, false);
    for (const pid of await this.pids(node)) tryKill(pid, 'SIGKILL');
  }

  /** Brings a killed node back: link up, its agent (and with it its etcd member) started again. */
  async reviveNode(node: LabNode): Promise<void> {
    await this.lab.setLink(node, true);
    this.lab.startAgent(node, this.configPath(node));
    this.dead.delete(node.name);
    if (!this.memberNodes.includes(node)) return;
    await waitFor(`${node.name}'s member to answer`, async () => (await this.statuses()).length === this.liveMembers().length, 60_000, 200);
  }

  /** etcdctl with the cluster's TLS, from the lab's (otherwise unused) etcd namespace. */
  async etcdctl(endpoints: string[], ...args: string[]): Promise<string> {
    const tls = this.tls();
    return await mustRun('ip', ['netns', 'exec', this.lab.etcdNs, 'etcdctl', `--endpoints=${endpoints.join(',')}`, `--cacert=${tls.ca}`,
      `--cert=${tls.cert}`, `--key=${tls.key}`, '--dial-timeout=1s', '--command-timeout=2s', ...args]);
  }

  /** The members that are neither killed nor frozen by this class. */
  private liveMembers(): LabNode[] {
    return this.memberNodes.filter((node) => !this.dead.has(node.name) && !this.frozen.has(node.name));
  }

  /** Every member as etcd lists it, asked of `via` (by default any live member). */
  async members(via: LabNode[] = this.liveMembers()): Promise<MemberListing[]> {
    const out = await this.etcdctl(via.map((node) => this.clientUrl(node)), 'member', 'list', '-w', 'json');
    const members = (parseWithBigIds(out) as { members?: Array<{ ID: string; name?: string; isLearner?: boolean }> }).members ?? [];
    return members.map((member) => ({ id: hex(member.ID), name: member.name ?? '', isLearner: member.isLearner === true }));
  }

  /** Each live member's raft view, asked of each member itself; members that do not answer are left out. */
  async statuses(): Promise<MemberStatus[]> {
    const found = await Promise.all(this.liveMembers().map(async (node): Promise<MemberStatus | null> => {
      const out = await this.etcdctl([this.clientUrl(node)], 'endpoint', 'status', '-w', 'json').catch(() => null);
      if (!out) return null;
      const parsed = parseWithBigIds(out) as Array<{ Status?: { header?: { member_id?: string; revision?: number }; leader?: string; raftTerm?: string } }>;
      const status = parsed[0]?.Status;
      if (!status?.header?.member_id || !status.leader) return null;
      const memberId = hex(status.header.member_id);
      this.ids.set(node.name, memberId);
      return { node: node.name, memberId, leaderId: hex(status.leader), raftTerm: Number(status.raftTerm ?? 0), revision: Number(status.header.revision ?? 0) };
    }));
    return found.filter((status): status is MemberStatus => status !== null);
  }

  /** The highest revision any live member reports: grows with every renewal of the fast profile. */
  async revision(): Promise<number> {
    return Math.max(0, ...(await this.statuses()).map((status) => status.revision));
  }

  /** One look: the node whose member leads, as the answering members see it; null when they disagree or none leads. */
  async leader(): Promise<LabNode | null> {
    return this.leaderNamedBy(await this.statuses());
  }

  private leaderNamedBy(statuses: MemberStatus[]): LabNode | null {
    const leaders = new Set(statuses.map((status) => status.leaderId));
    if (leaders.size !== 1) return null;
    const [leaderId] = [...leaders];
    if (leaderId === '0') return null;
    for (const [name, id] of this.ids) if (id === leaderId) return this.lab.node(name);
    return null;
  }

  /**
   * Waits until every live member answers and all name the same leader, itself among them:
   * right after the leader's node dies, the others still name it until their election timeout.
   */
  async awaitLeader(timeoutMs = 30_000): Promise<LabNode> {
    return await waitFor('the live etcd members to agree on a leader', async () => {
      const statuses = await this.statuses();
      if (statuses.length < this.liveMembers().length) return undefined;
      const leader = this.leaderNamedBy(statuses);
      return leader && statuses.some((status) => status.node === leader.name) ? leader : undefined;
    }, timeoutMs, 100);
  }

  /** Moves raft leadership to `target`'s member with etcd's own transfer (sent to the leader), and waits until the members agree. */
  async moveLeader(target: LabNode): Promise<void> {
    if (!(await this.transferLeadership(target))) throw new Error(`etcd refused to move its leadership to ${target.name}`);
    await waitFor(`${target.name} to lead etcd`, async () => (await this.leader()) === target, 20_000, 100);
  }

  /**
   * Moves raft leadership to `target` and returns as soon as etcd answers, without the
   * members' agreement that moveLeader waits for: etcd answers MoveLeader only once the
   * old leader sees the new one (etcdserver's MoveLeader waits for it). False if it failed.
   */
  async transferLeadership(target: LabNode): Promise<boolean> {
    const current = await this.awaitLeader(20_000);
    if (current === target) return true;
    const id = this.ids.get(target.name) ?? (await this.members()).find((member) => member.name === target.name)?.id;
    if (!id) throw new Error(`no etcd member id known for ${target.name}`);
    return await this.etcdctl([this.clientUrl(current)], 'move-leader', id).then(() => true, () => false);
  }

  /** Every member answers a health check. */
  async allHealthy(): Promise<boolean> {
    return await this.etcdctl(this.memberNodes.map((node) => this.clientUrl(node)), 'endpoint', 'health').then(() => true, () => false);
  }

  /** Whether the node's member answers a health check. */
  async answers(node: LabNode): Promise<boolean> {
    return await this.etcdctl([this.clientUrl(node)], 'endpoint', 'health').then(() => true, () => false);
  }

  /** Prometheus metrics of every member that answers. */
  async metrics(): Promise<string[]> {
    const tls = this.tls();
    const texts = await Promise.all(this.memberNodes.map(async (node) => {
      const result = await run('ip', ['netns', 'exec', this.lab.etcdNs, 'curl', '-s', '-m', '5', '--cacert', tls.ca, '--cert', tls.cert, '--key', tls.key, `${this.clientUrl(node)}/metrics`]);
      return result.code === 0 ? result.stdout : null;
    }));
    return texts.filter((text): text is string => text !== null);
  }

  /** Lines of the node's agent log that contain `text`. */
  logLines(node: LabNode, text: string): string[] {
    try {
      return readFileSync(node.logPath, 'utf8').split('\n').filter((line) => line.includes(text));
    } catch {
      return [];
    }
  }

  /** etcd's own log for the node's member (zap JSON lines). */
  etcdLogPath(node: LabNode): string {
    const config = parseYaml(readFileSync(this.configPath(node), 'utf8')) as { etcd?: { embedded?: { dataDir?: string } } };
    return `${config.etcd?.embedded?.dataDir ?? join(this.dataDir(node), 'etcd')}.log`;
  }
}

export function isEtcd(pid: number): boolean {
  try {
    const argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
    return argv0 === 'etcd' || argv0.endsWith('/etcd');
  } catch {
    return false;
  }
}

export function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

/** Every process below `root`, from /proc. */
export function descendantPids(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(parent, [...(children.get(parent) ?? []), pid]);
    } catch {
      // Gone since the listing.
    }
  }
  const found: number[] = [];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length) {
    const pid = queue.shift()!;
    found.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return found;
}
