/**
 * The systems under test, behind one interface so every scenario runs the same way on
 * vipd and on keepalived.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { Lab, LabNode } from '../lab/lab';
import { KeepalivedCluster, masterDownIntervalMs } from '../lab/keepalived';
import { run, waitFor } from '../lab/shell';

export type SystemId = 'vipd-default' | 'vipd-fast' | 'keepalived-1' | 'keepalived-matched';

export const SYSTEM_IDS: readonly SystemId[] = ['vipd-default', 'vipd-fast', 'keepalived-1', 'keepalived-matched'];

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
  kill(node: LabNode): Promise<void>;
  /** Undoes what a kill left on the node, before the agent is started again. */
  afterKill(node: LabNode): Promise<void>;
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
  stopAll(): Promise<void>;
  logTail(node: LabNode, lines?: number): string;
}

function descendants(root: number): number[] {
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

/** vipd's agents, run by the lab from the lab's node configs. */
export class VipdSystem implements SystemUnderTest {
  readonly usesEtcd = true;
  readonly settings: Record<string, string | number | boolean>;
  private moveCheck: Promise<string | null> | null = null;

  constructor(
    readonly id: 'vipd-default' | 'vipd-fast',
    readonly lab: Lab,
  ) {
    this.settings = { profile: id === 'vipd-fast' ? 'fast' : 'default' };
  }

  async prepare(): Promise<string | null> {
    await this.lab.startEtcd();
    const node = this.lab.nodes[0]!;
    // status loads and checks the config first: exit 2 means the config is refused.
    const status = await this.lab.vipd(node, ['status', '--config', node.configPath, '-o', 'json']);
    if (status.code === 2) return `config refused: ${(status.stderr || status.stdout).trim().split('\n')[0]}`;
    return null;
  }

  async startAll(): Promise<void> {
    for (const node of this.lab.nodes) this.lab.startAgent(node);
  }

  async start(node: LabNode): Promise<void> {
    const before = countLines(node.logPath, '"msg":"lease granted"');
    const child = this.lab.startAgent(node);
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
      20_000,
      20,
    );
  }

  async kill(node: LabNode): Promise<void> {
    await this.lab.stopAgent(node, 'SIGKILL');
  }

  async afterKill(): Promise<void> {
    // Nothing: the VIP's kernel lifetime removes it, and a new agent removes leftovers at start.
  }

  isRunning(node: LabNode): boolean {
    return node.agent !== null && node.agent.exitCode === null;
  }

  /** The agent and the helpers it started (its dead-man switch, a DHCP client). */
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
    const result = await this.lab.vipd(holder, ['move', '--to', target.name, '--config', holder.configPath]);
    return { ok: result.code === 0, detail: `exit ${result.code}: ${(result.stdout + result.stderr).trim().slice(0, 300)}` };
  }

  async afterMove(): Promise<void> {
    // A planned move stops nothing.
  }

  async healthy(): Promise<boolean> {
    if (!this.lab.nodes.every((node) => this.isRunning(node))) return false;
    // Each agent keeps an alive key on its lease: all present means all are connected.
    const result = await run('ip', [
      'netns', 'exec', this.lab.etcdNs, 'etcdctl', '--endpoints', this.lab.etcdEndpoint, '--dial-timeout=1s', '--command-timeout=2s',
      'get', '--prefix', '--keys-only', '/vipd/lab/alive/',
    ]);
    if (result.code !== 0) return false;
    return this.lab.nodes.every((node) => result.stdout.includes(`/vipd/lab/alive/${node.name}`));
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.lab.nodes.map((node) => this.lab.stopAgent(node, 'SIGKILL')));
  }

  logTail(node: LabNode, lines = 15): string {
    return tail(node.logPath, lines);
  }
}

/** keepalived on every node, VRRPv3, one virtual router for the VIP. */
export class KeepalivedSystem implements SystemUnderTest {
  readonly usesEtcd = false;
  readonly settings: Record<string, string | number | boolean>;
  readonly cluster: KeepalivedCluster;

  constructor(
    readonly id: 'keepalived-1' | 'keepalived-matched',
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

  async kill(node: LabNode): Promise<void> {
    await this.cluster.stop(node, 'SIGKILL');
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

  async stopAll(): Promise<void> {
    await this.cluster.stopAll();
  }

  logTail(node: LabNode, lines = 15): string {
    return tail(this.cluster.logPath(node), lines);
  }
}
