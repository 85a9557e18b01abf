/**
 * The systems under test, behind one interface so every scenario runs the same way on
 * vipd and on keepalived.
 */
import { readFileSync } from 'node:fs';
import type { Lab, LabNode } from '../lab/lab';
import { descendantPids as descendants, EmbeddedCluster, tryKill } from '../lab/embedded-cluster';
import { alive } from '../lab/shell';
import { KeepalivedCluster, masterDownIntervalMs } from '../lab/keepalived';
import { run, waitFor } from '../lab/shell';
import type { ServiceCheck } from './service';

export type SystemId = 'vipd-default' | 'vipd-fast' | 'vipd-embedded-default' | 'vipd-embedded-fast' | 'keepalived-1' | 'keepalived-matched';

export const SYSTEM_IDS: readonly SystemId[] = ['vipd-default', 'vipd-fast', 'vipd-embedded-default', 'vipd-embedded-fast', 'keepalived-1', 'keepalived-matched'];

/** The embedded etcd's members, for the scenarios that place the raft leader. */
export interface EtcdMembers {
  readonly memberNodes: LabNode[];
  /** The node whose member leads now, or null when the answering members disagree. */
  leader(): Promise<string | null>;
  moveLeader(target: LabNode): Promise<void>;
  /** Moves the leadership and returns once etcd answers, without waiting for the members to agree; false if it failed. */
  transferLeadership(target: LabNode): Promise<boolean>;
  /** The pid of the node's etcd member, or null when it does not run. */
  etcdPid(node: LabNode): number | null;
}

export interface MoveOutcome {
  ok: boolean;
  detail: string;
}

export interface SystemUnderTest {
  readonly id: SystemId;
  readonly lab: Lab;
  /** Settings worth recording beside the results. */
  readonly settings: Record<string, string | number | boolean>;
  readonly usesEtcd: boolean;
  /** Gets the system ready to start; returns why it is not available, or null. */
  prepare(): Promise<string | null>;
  /** Starts every agent at once, as at cluster boot, without waiting. */
  startAll(): Promise<void>;
  /** Starts one node's agent and waits until it runs. */
  start(node: LabNode): Promise<void>;
  /** Null unless the system runs its own etcd members. */
  readonly etcd: EtcdMembers | null;
  /**
   * SIGKILL of the main daemon process only (vipd run; keepalived's VRRP child), the rest
   * left to react as in production.
   */
  killDaemon(node: LabNode): Promise<void>;
  /** Brings the node back to running after killDaemon (vipd: started again; keepalived: its parent's respawn). */
  afterDaemonKill(node: LabNode): Promise<void>;
  /** SIGKILL of every process of the system on the node, all stopped first so none reacts. */
  killNode(node: LabNode): Promise<void>;
  /** Undoes what a kill left on the node, before the agent is started again. */
  afterKill(node: LabNode): Promise<void>;
  /** Prometheus texts of the etcd the agents use (one per member), or null without etcd. */
  etcdMetrics(): Promise<string[] | null>;
  isRunning(node: LabNode): boolean;
  /** The agent's processes on the node, for RSS and CPU. */
  agentPids(node: LabNode): number[];
  /** Why a planned move cannot be run, or null. */
  moveUnavailable(): Promise<string | null>;
  /** A planned move away from `holder` (to `target` where the system can choose). */
  plannedMove(holder: LabNode, target: LabNode): Promise<MoveOutcome>;
  /** Restores what plannedMove() stopped. */
  afterMove(holder: LabNode): Promise<void>;
  /** Every agent runs and is connected; false while one is still catching up. */
  healthy(): Promise<boolean>;
  /**
   * Gives every node a health check on the lab's service (or takes it away with null):
   * each agent is reconfigured and restarted in turn. Returns why it cannot, or null.
   */
  setServiceCheck(check: ServiceCheck | null): Promise<string | null>;
  /** The node's service check passes in the system's own view (vipd: its published health; keepalived: not in FAULT). */
  serviceCheckPasses(node: LabNode): Promise<boolean>;
  stopAll(): Promise<void>;
  logTail(node: LabNode, lines?: number): string;
}

function tail(path: string, lines: number): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function countLines(path: string, marker: string): number {
  try {
    return readFileSync(path, 'utf8').split('\n').filter((line) => line.includes(marker)).length;
  } catch {
    return 0;
  }
}

/** vipd's agents, run by the lab from the lab's node configs, against the lab's single external etcd. */
export class VipdSystem implements SystemUnderTest {
  readonly usesEtcd = true;
  readonly settings: Record<string, string | number | boolean>;
  readonly etcd: EtcdMembers | null = null;
  private moveCheck: Promise<string | null> | null = null;
  /** What a kill left running, by node: waited for before the agent starts again. */
  private readonly leftovers = new Map<string, number[]>();
  protected startTimeoutMs = 20_000;

  constructor(
    readonly id: SystemId,
    readonly lab: Lab,
  ) {
    this.settings = { profile: id.endsWith('fast') ? 'fast' : 'default' };
  }

  protected configFor(node: LabNode): string {
    return node.configPath;
  }

  async prepare(): Promise<string | null> {
    await this.lab.startEtcd();
    return await this.checkConfig();
  }

  protected async checkConfig(): Promise<string | null> {
    const node = this.lab.nodes[0]!;
    // status loads and checks the config first: exit 2 means the config is refused.
    const status = await this.lab.vipd(node, ['status', '--config', this.configFor(node), '-o', 'json']);
    if (status.code === 2) return `config refused: ${(status.stderr || status.stdout).trim().split('\n')[0]}`;
    return null;
  }

  async startAll(): Promise<void> {
    for (const node of this.lab.nodes) this.lab.startAgent(node, this.configFor(node));
  }

  async start(node: LabNode): Promise<void> {
    await this.afterKill(node);
    const before = countLines(node.logPath, '"msg":"lease granted"');
    const child = this.lab.startAgent(node, this.configFor(node));
    let exitCode: number | null | undefined;
    child.once('exit', (code) => {
      exitCode = code;
    });
    await waitFor(
      `${node.name}'s agent to get its lease`,
      () => {
        if (exitCode !== undefined) throw new Error(`${node.name}'s agent exited (${exitCode}): ${tail(node.logPath, 5)}`);
        return countLines(node.logPath, '"msg":"lease granted"') > before;
      },
      this.startTimeoutMs,
      20,
    );
  }

  async killDaemon(node: LabNode): Promise<void> {
    const pid = node.agent?.pid;
    if (pid !== undefined) this.leftovers.set(node.name, descendants(pid));
    await this.lab.stopAgent(node, 'SIGKILL');
  }

  async afterDaemonKill(node: LabNode): Promise<void> {
    await this.start(node);
  }

  async killNode(node: LabNode): Promise<void> {
    const child = node.agent;
    if (!child?.pid) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const pids = [child.pid, ...descendants(child.pid)];
    for (const pid of pids) tryKill(pid, 'SIGSTOP');
    for (const pid of pids) tryKill(pid, 'SIGKILL');
    this.leftovers.set(node.name, pids);
    await exited;
  }

  async afterKill(node: LabNode): Promise<void> {
    // The VIP's kernel lifetime removes it, and a new agent removes leftovers at start; an
    // old etcd member still shutting down would hold the ports, so wait for it.
    const pids = this.leftovers.get(node.name) ?? [];
    this.leftovers.delete(node.name);
    if (!pids.length) return;
    await waitFor(`${node.name}'s old processes to exit`, () => pids.every((pid) => !alive(pid)), 30_000, 20).catch(() => {
      for (const pid of pids) tryKill(pid, 'SIGKILL');
    });
  }

  isRunning(node: LabNode): boolean {
    return node.agent !== null && node.agent.exitCode === null;
  }

  /** The agent and the helpers it started (its dead-man switch, a DHCP client, an embedded etcd). */
  agentPids(node: LabNode): number[] {
    const pid = node.agent?.pid;
    return pid !== undefined && this.isRunning(node) ? [pid, ...descendants(pid)] : [];
  }

  moveUnavailable(): Promise<string | null> {
    this.moveCheck ??= (async () => {
      const node = this.lab.nodes[0]!;
      const help = await this.lab.vipd(node, ['move', '--help']);
      if (help.code === 0 && help.stdout.includes('--to')) return null;
      const lines = `${help.stderr}\n${help.stdout}`.split('\n').map((line) => line.trim()).filter(Boolean);
      return `vipd move: ${lines.find((line) => /error/i.test(line)) ?? lines[0] ?? `exit ${help.code}`}`;
    })();
    return this.moveCheck;
  }

  async plannedMove(holder: LabNode, target: LabNode): Promise<MoveOutcome> {
    const result = await this.lab.vipd(holder, ['move', '--to', target.name, '--config', this.configFor(holder)]);
    return { ok: result.code === 0, detail: `exit ${result.code}: ${(result.stdout + result.stderr).trim().slice(0, 300)}` };
  }

  async afterMove(): Promise<void> {
    // A planned move stops nothing.
  }

  async setServiceCheck(check: ServiceCheck | null): Promise<string | null> {
    const extra = check
      ? { health: { checks: [{ name: 'service', http: `http://127.0.0.1:${check.port}/`, interval: `${check.intervalSeconds}s`, fall: check.fall, rise: check.rise }] } }
      : {};
    for (const node of this.lab.nodes) this.lab.writeConfig(node, extra);
    const refused = await this.checkConfig();
    if (refused) return refused;
    for (const node of this.lab.nodes) {
      // SIGTERM: a holder hands the VIP on cleanly, as in a rolling restart.
      await this.lab.stopAgent(node, 'SIGTERM');
      await this.start(node);
    }
    return null;
  }

  async serviceCheckPasses(node: LabNode): Promise<boolean> {
    const text = await this.lab.etcdctl('get', `/vipd/lab/health/${node.name}`, '--print-value-only').catch(() => '');
    try {
      return (JSON.parse(text) as { healthy?: unknown }).healthy === true;
    } catch {
      return false;
    }
  }

  async healthy(): Promise<boolean> {
    if (!this.lab.nodes.every((node) => this.isRunning(node))) return false;
    // Each agent keeps an alive key on its lease: all present means all are connected.
    const keys = await this.aliveKeys();
    return keys !== null && this.lab.nodes.every((node) => keys.includes(`/vipd/lab/alive/${node.name}`));
  }

  protected async aliveKeys(): Promise<string | null> {
    const result = await run('ip', [
      'netns', 'exec', this.lab.etcdNs, 'etcdctl', '--endpoints', this.lab.etcdEndpoint, '--dial-timeout=1s', '--command-timeout=2s',
      'get', '--prefix', '--keys-only', '/vipd/lab/alive/',
    ]);
    return result.code === 0 ? result.stdout : null;
  }

  async etcdMetrics(): Promise<string[] | null> {
    const result = await run('ip', ['netns', 'exec', this.lab.etcdNs, 'curl', '-s', '-m', '5', `${this.lab.etcdEndpoint}/metrics`]);
    if (result.code !== 0) throw new Error(`etcd metrics: curl exit ${result.code}`);
    return [result.stdout];
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.lab.nodes.map((node) => this.killNode(node)));
  }

  logTail(node: LabNode, lines = 15): string {
    return tail(node.logPath, lines);
  }
}

/**
 * vipd in its recommended topology: `vipd init` on node-1, `vipd join` on the others, an
 * embedded etcd member beside every agent (a child of `vipd run`). No external etcd.
 */
export class EmbeddedVipdSystem extends VipdSystem {
  readonly cluster: EmbeddedCluster;
  override readonly etcd: EtcdMembers;
  protected override startTimeoutMs = 60_000;

  constructor(id: 'vipd-embedded-default' | 'vipd-embedded-fast', lab: Lab, members: 3 | 5) {
    super(id, lab);
    this.cluster = new EmbeddedCluster(lab, members);
    this.settings['etcdMembers'] = members;
    // Derived from the profile's fencing window (src/config/etcd-timing.ts): 630 ms default, 100 ms fast.
    this.settings['etcdElectionTimeout'] = id === 'vipd-embedded-fast' ? 'derived: 100 ms' : 'derived: 630 ms';
    const cluster = this.cluster;
    this.etcd = {
      memberNodes: cluster.memberNodes,
      leader: async () => (await cluster.leader())?.name ?? null,
      moveLeader: (target) => cluster.moveLeader(target),
      transferLeadership: (target) => cluster.transferLeadership(target),
      etcdPid: (node) => cluster.etcdPid(node),
    };
  }

  protected override configFor(node: LabNode): string {
    return this.cluster.configPath(node);
  }

  override async prepare(): Promise<string | null> {
    await this.cluster.create();
    if (this.settings['profile'] === 'fast') for (const node of this.cluster.nodes) this.cluster.configure(node, { election: { profile: 'fast' } });
    return await this.checkConfig();
  }

  override async healthy(): Promise<boolean> {
    if (!(await super.healthy())) return false;
    return await this.cluster.allHealthy();
  }

  protected override async aliveKeys(): Promise<string | null> {
    const endpoints = this.cluster.memberNodes.map((node) => this.cluster.clientUrl(node));
    return await this.cluster.etcdctl(endpoints, 'get', '--prefix', '--keys-only', '/vipd/lab/alive/').catch(() => null);
  }

  override async etcdMetrics(): Promise<string[] | null> {
    return await this.cluster.metrics();
  }

  override async setServiceCheck(): Promise<string | null> {
    return 'measured on the external-etcd systems: the health path does not depend on where etcd runs';
  }
}

/** keepalived on every node, VRRPv3, one virtual router for the VIP. */
export class KeepalivedSystem implements SystemUnderTest {
  readonly usesEtcd = false;
  readonly settings: Record<string, string | number | boolean>;
  readonly cluster: KeepalivedCluster;

  constructor(
    readonly id: SystemId,
    readonly lab: Lab,
    advertIntSeconds: number,
    priorities: 'distinct' | 'equal',
  ) {
    this.cluster = new KeepalivedCluster(lab, { advertIntSeconds, priorities });
    this.settings = {
      vrrpVersion: 3,
      advertIntSeconds,
      priorities: lab.nodes.map((node) => `${node.name}=${this.cluster.priority(node)}`).join(' '),
      nopreempt: priorities === 'distinct',
      masterDownIntervalMs: `${lab.nodes.map((node) => Math.round(masterDownIntervalMs(advertIntSeconds, this.cluster.priority(node)) * 10) / 10).join('/')}`,
    };
  }

  async prepare(): Promise<string | null> {
    try {
      for (const node of this.lab.nodes) await this.cluster.checkConfig(node);
    } catch (error) {
      return (error as Error).message;
    }
    return null;
  }

  async startAll(): Promise<void> {
    await this.cluster.startAll();
  }

  async start(node: LabNode): Promise<void> {
    await this.cluster.start(node);
  }

  readonly etcd: EtcdMembers | null = null;
  private readonly killedVrrp = new Map<string, number | null>();

  async killDaemon(node: LabNode): Promise<void> {
    this.killedVrrp.set(node.name, this.cluster.killVrrp(node));
  }

  async afterDaemonKill(node: LabNode): Promise<void> {
    await this.cluster.waitRespawned(node, this.killedVrrp.get(node.name) ?? null);
    this.killedVrrp.delete(node.name);
  }

  async killNode(node: LabNode): Promise<void> {
    await this.cluster.stop(node, 'SIGKILL');
  }

  async etcdMetrics(): Promise<null> {
    return null;
  }

  async afterKill(): Promise<void> {
    // Nothing: a killed keepalived leaves the VIP configured, but removes it itself when it
    // starts again (it enters BACKUP).
  }

  isRunning(node: LabNode): boolean {
    return this.cluster.isRunning(node);
  }

  agentPids(node: LabNode): number[] {
    return this.cluster.pids(node);
  }

  async moveUnavailable(): Promise<string | null> {
    return null;
  }

  /** keepalived has no move command: the master stops cleanly and a backup takes over. */
  async plannedMove(holder: LabNode): Promise<MoveOutcome> {
    await this.cluster.stop(holder, 'SIGTERM');
    return { ok: true, detail: 'master stopped with SIGTERM' };
  }

  async afterMove(holder: LabNode): Promise<void> {
    await this.cluster.start(holder);
  }

  async healthy(): Promise<boolean> {
    return this.lab.nodes.every((node) => this.cluster.pids(node).length === 2);
  }

  async setServiceCheck(check: ServiceCheck | null): Promise<string | null> {
    this.cluster.trackScript = check
      ? {
          script: `/usr/bin/curl -fsS --max-time ${check.intervalSeconds} -o /dev/null http://127.0.0.1:${check.port}/`,
          intervalSeconds: check.intervalSeconds,
          timeoutSeconds: check.intervalSeconds,
          fall: check.fall,
          rise: check.rise,
        }
      : null;
    const refused = await this.prepare();
    if (refused) return refused;
    for (const node of this.lab.nodes) {
      await this.cluster.stop(node, 'SIGTERM');
      await this.cluster.start(node);
    }
    return null;
  }

  async serviceCheckPasses(node: LabNode): Promise<boolean> {
    const states = [...tail(this.cluster.logPath(node), 200).matchAll(/\(VIP\) Entering (\w+) STATE/g)];
    const last = states.at(-1)?.[1];
    return last !== undefined && last !== 'FAULT';
  }

  async stopAll(): Promise<void> {
    await this.cluster.stopAll();
  }

  logTail(node: LabNode, lines = 15): string {
    return tail(this.cluster.logPath(node), lines);
  }
}
