/**
 * vipd's recommended topology in a lab: `vipd init` on node-1 and `vipd join` on the
 * others, one embedded etcd member per node (up to the voter count). Setup, the members'
 * raft state (who leads, moving the leadership) and the agents' process trees; used by the
 * benchmark, and meant for the chaos runner's embedded topology too.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { inNamespace, type Lab, type LabNode } from './lab';
import { mustRun, run, waitFor, type CommandResult } from './shell';

const CLI = join(__dirname, '..', 'src', 'main.js');

export interface MemberStatus {
  node: string;
  /** Hex member id, as `etcdctl move-leader` takes it. */
  id: string;
  /** Hex id of the member this one follows (its own id when it leads). */
  leader: string;
  raftTerm: string;
}

/** etcd prints uint64 ids as JSON numbers, beyond what a double holds: keep them as text. */
export function parseWithBigIds(text: string): unknown {
  return JSON.parse(text.replace(/("(?:member_id|cluster_id|leader|raft_term|raftTerm|ID|id)"\s*:\s*)(\d+)/g, '$1"$2"'));
}

export function hex(decimal: string): string {
  return BigInt(decimal).toString(16);
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export class EmbeddedCluster {
  /** member id (hex) by node name, filled once every member answered. */
  private readonly ids = new Map<string, string>();

  constructor(
    readonly lab: Lab,
    readonly voters: 3 | 5,
  ) {}

  dataDir(node: LabNode): string {
    return join(this.lab.dir, 'nodes', node.name);
  }
  configPath(node: LabNode): string {
    return join(this.dataDir(node), 'config.yaml');
  }
  clientUrl(node: LabNode): string {
    return `https://${node.ip}:2379`;
  }
  /** The nodes that carry an etcd member (the first `voters`). */
  get memberNodes(): LabNode[] {
    return this.lab.nodes.slice(0, this.voters);
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
   * init on node-1, then join on every other node in turn, each waited for; then the
   * agents `vipd init`/`join` left running in the background are stopped, so the caller
   * runs them as its own children. `extra` is merged into every node's config afterwards.
   */
  async create(extra: Record<string, unknown> = {}): Promise<void> {
    const [first, ...rest] = this.lab.nodes;
    const init = await this.cli(first!, ['init', '--interface', 'mgmt-br', '--vip', this.lab.vip, '--cluster', 'lab', '--node-name', first!.name,
      '--etcd-voters', String(this.voters), '--data-dir', this.dataDir(first!), '--config', this.configPath(first!), '--yes']);
    if (init.code !== 0) throw new Error(`vipd init failed (${init.code}): ${(init.stderr || init.stdout).trim().split('\n').slice(-3).join(' ')}`);
    const token = /--token (\S+)/.exec(init.stdout)?.[1];
    if (!token) throw new Error(`vipd init printed no join token: ${init.stdout.trim().slice(0, 300)}`);
    for (const node of rest) {
      const joined = await this.cli(node, ['join', `https://${this.lab.vip}`, '--token', token, '--node-name', node.name,
        '--data-dir', this.dataDir(node), '--config', this.configPath(node)]);
      if (joined.code !== 0) throw new Error(`vipd join on ${node.name} failed (${joined.code}): ${(joined.stderr || joined.stdout).trim().split('\n').slice(-3).join(' ')}`);
    }
    await waitFor(`${this.voters} voting etcd members`, async () => {
      const out = await this.etcdctl([this.clientUrl(first!)], 'member', 'list', '-w', 'json').catch(() => null);
      if (!out) return false;
      const members = (parseWithBigIds(out) as { members?: Array<{ isLearner?: boolean }> }).members ?? [];
      return members.length === this.voters && members.every((member) => !member.isLearner);
    }, 60_000, 500);
    for (const node of this.lab.nodes) await this.stopBackgroundAgent(node);
    for (const node of this.lab.nodes) this.mergeConfig(node, extra);
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

  private mergeConfig(node: LabNode, extra: Record<string, unknown>): void {
    if (!Object.keys(extra).length) return;
    const document = parseYaml(readFileSync(this.configPath(node), 'utf8')) as Record<string, unknown>;
    for (const [key, value] of Object.entries(extra)) {
      const current = document[key];
      document[key] = current && typeof current === 'object' && value && typeof value === 'object' ? { ...(current as object), ...(value as object) } : value;
    }
    writeFileSync(this.configPath(node), toYaml(document));
  }

  /** etcdctl with the cluster's TLS, from the lab's (otherwise unused) etcd namespace. */
  async etcdctl(endpoints: string[], ...args: string[]): Promise<string> {
    const tls = this.tls();
    return await mustRun('ip', ['netns', 'exec', this.lab.etcdNs, 'etcdctl', `--endpoints=${endpoints.join(',')}`, `--cacert=${tls.ca}`,
      `--cert=${tls.cert}`, `--key=${tls.key}`, '--dial-timeout=1s', '--command-timeout=2s', ...args]);
  }

  /** Each member's raft view, asked one endpoint at a time; members that do not answer are left out. */
  async statuses(): Promise<MemberStatus[]> {
    const found = await Promise.all(this.memberNodes.map(async (node): Promise<MemberStatus | null> => {
      const out = await this.etcdctl([this.clientUrl(node)], 'endpoint', 'status', '-w', 'json').catch(() => null);
      if (!out) return null;
      const parsed = parseWithBigIds(out) as Array<{ Status?: { header?: { member_id?: string }; leader?: string; raftTerm?: string } }>;
      const status = parsed[0]?.Status;
      if (!status?.header?.member_id || !status.leader) return null;
      const id = hex(status.header.member_id);
      this.ids.set(node.name, id);
      return { node: node.name, id, leader: hex(status.leader), raftTerm: String(status.raftTerm ?? '') };
    }));
    return found.filter((status): status is MemberStatus => status !== null);
  }

  /** The node whose member leads, as the answering members see it; null when they disagree or none leads. */
  async leader(): Promise<string | null> {
    const statuses = await this.statuses();
    const leaders = new Set(statuses.map((status) => status.leader));
    if (leaders.size !== 1) return null;
    const [leaderId] = [...leaders];
    for (const [name, id] of this.ids) if (id === leaderId) return name;
    return null;
  }

  /** Moves raft leadership to `target`'s member with etcd's own transfer, and waits until every answering member agrees. */
  async moveLeader(target: LabNode): Promise<void> {
    const current = await waitFor('an etcd leader', () => this.leader().then((name) => name ?? undefined), 20_000, 200);
    if (current === target.name) return;
    const id = this.ids.get(target.name);
    if (!id) throw new Error(`no etcd member id known for ${target.name}`);
    await this.etcdctl([this.clientUrl(this.lab.node(current))], 'move-leader', id);
    await waitFor(`${target.name} to lead etcd`, async () => (await this.leader()) === target.name, 20_000, 100);
  }

  /** The pid of the node's etcd member (a child of its agent), or null. */
  memberPid(agentPid: number | undefined): number | null {
    if (agentPid === undefined) return null;
    return descendantPids(agentPid).find((pid) => isEtcd(pid)) ?? null;
  }

  /** Every member answers a health check. */
  async allHealthy(): Promise<boolean> {
    const out = await run('ip', ['netns', 'exec', this.lab.etcdNs, 'etcdctl', `--endpoints=${this.memberNodes.map((node) => this.clientUrl(node)).join(',')}`,
      `--cacert=${this.tls().ca}`, `--cert=${this.tls().cert}`, `--key=${this.tls().key}`, '--dial-timeout=1s', '--command-timeout=2s', 'endpoint', 'health']);
    return out.code === 0;
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
