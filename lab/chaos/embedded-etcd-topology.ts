/**
 * vipd's recommended topology for a chaos run: `vipd init` + `vipd join`, one embedded etcd
 * member per node (the first 3, or 5 from five nodes up), each a child of its node's agent.
 * The agent restarts a member that dies (with backoff), so a killed member is not started
 * here: restart() waits until the agent has brought it back and it answers.
 */
import { EmbeddedCluster, tryKill } from '../embedded-cluster';
import { alive } from '../shell';
import type { Lab, LabNode } from '../lab';
import { waitFor } from '../shell';
import type { EtcdTopology } from './etcd-topology';
import { decodeKvs } from './state';

export class EmbeddedEtcdTopology implements EtcdTopology {
  readonly kind = 'embedded' as const;
  readonly cluster: EmbeddedCluster;
  readonly members: readonly string[];

  constructor(
    private readonly lab: Lab,
    private readonly config: Record<string, unknown>,
  ) {
    if (lab.nodes.length < 3) throw new Error(`--etcd embedded needs at least 3 nodes (etcd voters), not ${lab.nodes.length}`);
    // Every node signs: set-up uploads a certificate through the VIP, which a node without the
    // cluster key answers with 503, and any node may hold the VIP then.
    this.cluster = new EmbeddedCluster(lab, lab.nodes.length >= 5 ? 5 : 3, lab.nodes.length);
    this.members = this.cluster.memberNodes.map((node) => node.name);
  }

  /** An agent stopped while its member is frozen leaves the member behind (its pdeathsig waits for SIGCONT): etcd faults hold the node's agent too. */
  memberResources(member: string): string[] {
    return [`agent:${this.node(member).name}`];
  }

  /** Sets the cluster up; the members run once the runner starts the agents (node.configPath is init/join's config). */
  async start(): Promise<void> {
    await this.cluster.create();
    for (const node of this.lab.nodes) this.cluster.configure(node, this.config);
  }

  async leader(): Promise<string> {
    const node = await waitFor('an etcd leader the answering members agree on', async () => (await this.cluster.leader()) ?? undefined, 10_000, 100);
    return node.name;
  }

  isRunning(member: string): boolean {
    return this.cluster.etcdPid(this.node(member)) !== null;
  }

  signal(member: string, signal: 'SIGSTOP' | 'SIGCONT'): boolean {
    const node = this.node(member);
    if (!this.isRunning(member)) return false;
    if (signal === 'SIGSTOP') this.cluster.freeze(node);
    else this.cluster.thaw(node);
    return true;
  }

  async kill(member: string): Promise<void> {
    const pid = this.cluster.etcdPid(this.node(member));
    if (pid === null) return;
    tryKill(pid, 'SIGKILL');
    await waitFor(`etcd member ${member} to exit`, () => !alive(pid), 10_000, 20);
  }

  async restart(member: string): Promise<void> {
    const node = this.node(member);
    this.cluster.thaw(node);
    // The agent's backoff grows to 10 s when a member keeps dying.
    await waitFor(`the agent on ${member} to restart its etcd member`, async () => this.isRunning(member) && (await this.answers(member)), 60_000, 200);
  }

  async fillDataDir(): Promise<void> {
    throw new Error('etcd-disk-full is not run on the embedded topology: the members\' data dirs are on the machine\'s own disk');
  }

  async freeDataDir(): Promise<void> {
    // Nothing was filled.
  }

  async answers(member: string): Promise<boolean> {
    return this.isRunning(member) && (await this.cluster.answers(this.node(member)));
  }

  async dump(prefix: string): Promise<Array<{ key: string; value: string }>> {
    const endpoints = this.cluster.memberNodes.map((node) => this.cluster.clientUrl(node));
    return decodeKvs(await this.cluster.etcdctl(endpoints, 'get', '--prefix', prefix, '-w', 'json'));
  }

  private node(member: string): LabNode {
    const node = this.cluster.memberNodes.find((candidate) => candidate.name === member);
    if (!node) throw new Error(`no etcd member ${member} (embedded topology: ${this.members.join(', ')})`);
    return node;
  }
}
