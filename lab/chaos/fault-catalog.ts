/**
 * Every fault a chaos run can inject. A kind draws all its random parameters first (from
 * its own stream, so a seed gives the same sequence), then resolves its target against the
 * running lab (e.g. "the holder").
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab, LabNode } from '../lab';
import { freezeNode, healPartition, nodeProcesses, partitionNode, thawNode } from '../faults';
import { mustRun, run } from '../shell';
import type { AgentSupervisor } from './agents';
import type { EtcdTopology } from './etcd-topology';
import type { Prng } from './prng';

export interface FaultEnv {
  lab: Lab;
  etcd: EtcdTopology;
  agents: AgentSupervisor;
  /** The node holding the VIP now (by the observer), or null. */
  holder(): LabNode | null;
}

/** One injected fault: what it breaks, for how long, and how to undo it. */
export interface Fault {
  kind: string;
  description: string;
  /** Things two concurrent faults must not both touch (e.g. "agent:node-1", "etcd"). */
  resources: string[];
  /** Nodes that are not healthy while the fault is active. */
  unhealthyNodes: string[] | 'all';
  /** Whether etcd is not healthy while the fault is active. */
  etcdUnhealthy: boolean;
  /** Nodes whose agent and dead-man switch cannot act (frozen, starved, killed together). */
  incapacitates?: string[];
  /** Nodes cut off at layer 2 from the other nodes (their ARP probes cannot hear them). */
  isolates?: string[];
  holdMs: number;
  apply(): Promise<void>;
  /** Undoes the fault; resolves once what it restarted answers again. */
  heal(): Promise<void>;
}

/**
 * Thrown by apply() when the fault could not do what it names (its target is not running):
 * the runner records it as skipped, with the reason, and never counts it as injected.
 */
export class FaultSkipped extends Error {}

function requireAgent(env: FaultEnv, node: LabNode): void {
  if (!env.agents.alive(node)) throw new FaultSkipped(`${node.name}'s agent is not running`);
}

function requireEtcd(env: FaultEnv, member: string): void {
  if (!env.etcd.isRunning(member)) throw new FaultSkipped(`etcd member ${member} is not running`);
}

export interface FaultKind {
  name: string;
  weight: number;
  summary: string;
  plan(env: FaultEnv, rng: Prng): Fault;
}

type Role = 'holder' | 'other' | 'any';

/** Draws a target role and an index now; resolves it against the lab later. */
function drawTarget(rng: Prng): { role: Role; index: number } {
  return { role: rng.weighted<Role>([['holder', 0.55], ['other', 0.25], ['any', 0.2]]), index: rng.int(0, 1 << 20) };
}

function resolveTarget(env: FaultEnv, target: { role: Role; index: number }): { node: LabNode; label: string } {
  const holder = env.holder();
  if (target.role === 'holder' && holder) return { node: holder, label: `${holder.name} (holder)` };
  const pool = target.role === 'other' && holder ? env.lab.nodes.filter((node) => node !== holder) : env.lab.nodes;
  const node = pool[target.index % pool.length]!;
  return { node, label: node === holder ? `${node.name} (holder)` : node.name };
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The switch-side port of a node: the lab names it n<i>. */
function switchPort(lab: Lab, node: LabNode): string {
  return `n${lab.nodes.indexOf(node) + 1}`;
}

async function startAgentChecked(env: FaultEnv, node: LabNode): Promise<void> {
  if (!env.agents.alive(node)) env.agents.start(node);
}

const agentKill: FaultKind = {
  name: 'agent-kill',
  weight: 3,
  summary: 'SIGKILL a node agent, start it again later',
  plan(env, rng) {
    const target = drawTarget(rng);
    const holdMs = rng.int(0, 3000);
    const { node, label } = resolveTarget(env, target);
    return {
      kind: this.name,
      description: `SIGKILL the agent of ${label}, restart after ${holdMs} ms`,
      resources: [`agent:${node.name}`],
      unhealthyNodes: [node.name],
      etcdUnhealthy: false,
      holdMs,
      apply: async () => {
        requireAgent(env, node);
        if ((await env.agents.stop(node, 'SIGKILL')) === undefined) throw new FaultSkipped(`${node.name}'s agent had exited already`);
      },
      heal: async () => startAgentChecked(env, node),
    };
  },
};

const agentTerm: FaultKind = {
  name: 'agent-term',
  weight: 1,
  summary: 'SIGTERM a node agent (clean stop: must exit 0), start it again later',
  plan(env, rng) {
    const target = drawTarget(rng);
    const holdMs = rng.int(0, 2000);
    const { node, label } = resolveTarget(env, target);
    return {
      kind: this.name,
      description: `SIGTERM the agent of ${label}, restart after ${holdMs} ms`,
      resources: [`agent:${node.name}`],
      unhealthyNodes: [node.name],
      etcdUnhealthy: false,
      holdMs,
      apply: async () => {
        requireAgent(env, node);
        const exit = await env.agents.stopWithStatus(node, 'SIGTERM');
        if (exit === null) throw new FaultSkipped(`${node.name}'s agent had exited already`);
        // A clean stop: exit code 0, not death by a signal (that would be the SIGTERM unhandled, or a kill).
        if (exit.code !== 0 || exit.signal !== null) throw new Error(`${node.name}'s agent did not exit 0 on SIGTERM (code ${exit.code}, signal ${exit.signal})`);
      },
      heal: async () => startAgentChecked(env, node),
    };
  },
};

const agentFreeze: FaultKind = {
  name: 'agent-freeze',
  weight: 2,
  summary: 'SIGSTOP a node agent, SIGCONT it later',
  plan(env, rng) {
    const target = drawTarget(rng);
    const holdMs = rng.int(300, 5000);
    const { node, label } = resolveTarget(env, target);
    return {
      kind: this.name,
      description: `SIGSTOP the agent of ${label} for ${holdMs} ms`,
      resources: [`agent:${node.name}`],
      unhealthyNodes: [node.name],
      incapacitates: [node.name],
      etcdUnhealthy: false,
      holdMs,
      apply: async () => {
        if (!env.agents.signal(node, 'SIGSTOP')) throw new FaultSkipped(`${node.name}'s agent is not running`);
      },
      heal: async () => void env.agents.signal(node, 'SIGCONT'),
    };
  },
};

const agentSigcont: FaultKind = {
  name: 'agent-sigcont',
  weight: 0.5,
  summary: 'SIGCONT a running agent (must change nothing)',
  plan(env, rng) {
    const target = drawTarget(rng);
    const { node, label } = resolveTarget(env, target);
    return {
      kind: this.name,
      description: `SIGCONT the running agent of ${label}`,
      resources: [`agent:${node.name}`],
      unhealthyNodes: [],
      etcdUnhealthy: false,
      holdMs: 0,
      apply: async () => {
        if (!env.agents.signal(node, 'SIGCONT')) throw new FaultSkipped(`${node.name}'s agent is not running`);
      },
      heal: async () => undefined,
    };
  },
};

const cpuStarve: FaultKind = {
  name: 'cpu-starve',
  weight: 2,
  summary: 'starve an agent of CPU: SIGSTOP/SIGCONT bursts (stopped 50-400 ms, running 10-100 ms)',
  plan(env, rng) {
    const target = drawTarget(rng);
    const holdMs = rng.int(1500, 6000);
    const bursts = rng.fork('bursts');
    const { node, label } = resolveTarget(env, target);
    let running = false;
    let loop: Promise<void> = Promise.resolve();
    return {
      kind: this.name,
      description: `CPU-starve the agent of ${label} for ${holdMs} ms`,
      resources: [`agent:${node.name}`],
      unhealthyNodes: [node.name],
      incapacitates: [node.name],
      etcdUnhealthy: false,
      holdMs,
      apply: async () => {
        requireAgent(env, node);
        running = true;
        loop = (async () => {
          while (running) {
            env.agents.signal(node, 'SIGSTOP');
            await pause(bursts.int(50, 400));
            env.agents.signal(node, 'SIGCONT');
            if (!running) break;
            await pause(bursts.int(10, 100));
          }
        })();
      },
      heal: async () => {
        running = false;
        await loop;
        env.agents.signal(node, 'SIGCONT');
      },
    };
  },
};

const nodeFreeze: FaultKind = {
  name: 'node-freeze',
  weight: 1.5,
  summary: 'SIGSTOP every process of a node (agent, dead-man switch): only its kernel still answers',
  plan(env, rng) {
    const target = drawTarget(rng);
    const holdMs = rng.int(500, 5000);
    const { node, label } = resolveTarget(env, target);
    return {
      kind: this.name,
      description: `freeze every process of ${label} for ${holdMs} ms`,
      resources: [`agent:${node.name}`],
      unhealthyNodes: [node.name],
      incapacitates: [node.name],
      etcdUnhealthy: false,
      holdMs,
      apply: async () => {
        if (!env.agents.signal(node, 'SIGSTOP')) throw new FaultSkipped(`${node.name}'s agent is not running`);
        await freezeNode(env.lab, node);
      },
      heal: async () => {
        await thawNode(env.lab, node);
        env.agents.signal(node, 'SIGCONT');
      },
    };
  },
};

const nodeDead: FaultKind = {
  name: 'node-dead',
  weight: 2,
  summary: 'a whole node dies: link down, then every process of it SIGKILLed; it comes back later',
  plan(env, rng) {
    const target = drawTarget(rng);
    const holdMs = rng.int(0, 4000);
    const { node, label } = resolveTarget(env, target);
    return {
      kind: this.name,
      description: `node ${label} dead (link down, every process killed) for ${holdMs} ms`,
      resources: [`agent:${node.name}`, `link:${node.name}`],
      unhealthyNodes: [node.name],
      incapacitates: [node.name],
      isolates: [node.name],
      etcdUnhealthy: false,
      holdMs,
      apply: async () => {
        env.agents.expectExit(node);
        await env.lab.setLink(node, false);
        for (const pid of await nodeProcesses(node)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Gone already.
          }
        }
        await env.agents.stop(node, 'SIGKILL');
      },
      heal: async () => {
        await env.lab.setLink(node, true);
        await startAgentChecked(env, node);
      },
    };
  },
};

const linkDown: FaultKind = {
  name: 'link-down',
  weight: 2,
  summary: "take a node's management link down, bring it up later",
  plan(env, rng) {
    const target = drawTarget(rng);
    const holdMs = rng.int(200, 4000);
    const { node, label } = resolveTarget(env, target);
    return {
      kind: this.name,
      description: `link of ${label} down for ${holdMs} ms`,
      resources: [`link:${node.name}`],
      unhealthyNodes: [node.name],
      isolates: [node.name],
      etcdUnhealthy: false,
      holdMs,
      apply: async () => env.lab.setLink(node, false),
      heal: async () => env.lab.setLink(node, true),
    };
  },
};

const partition: FaultKind = {
  name: 'partition',
  weight: 2,
  summary: 'cut a node off from the other nodes and etcd in the switch (the client still reaches it)',
  plan(env, rng) {
    const target = drawTarget(rng);
    const holdMs = rng.int(500, 5000);
    const { node, label } = resolveTarget(env, target);
    return {
      kind: this.name,
      description: `partition ${label} from the others for ${holdMs} ms`,
      resources: ['nft-partition'],
      unhealthyNodes: [node.name],
      isolates: [node.name],
      etcdUnhealthy: false,
      holdMs,
      apply: async () => partitionNode(env.lab, node),
      heal: async () => healPartition(env.lab, node),
    };
  },
};

/** The nft table of the loss fault, apart from the partition's so each heals alone. */
function lossTable(lab: Lab): string {
  return `${lab.prefix}loss`;
}

const loss: FaultKind = {
  name: 'loss',
  weight: 1.5,
  summary: 'drop a share of frames at random in the switch (nft numgen), on one node\'s port or everywhere',
  plan(env, rng) {
    const target = drawTarget(rng);
    const percent = rng.pick([10, 30, 60]);
    const everywhere = rng.chance(0.3);
    const holdMs = rng.int(1000, 5000);
    const { node, label } = resolveTarget(env, target);
    const port = switchPort(env.lab, node);
    const rules = everywhere
      ? [`    numgen random mod 100 < ${percent} drop`]
      : [`    iifname "${port}" numgen random mod 100 < ${percent} drop`, `    oifname "${port}" numgen random mod 100 < ${percent} drop`];
    return {
      kind: this.name,
      description: `${percent}% loss ${everywhere ? 'on every port' : `to and from ${label}`} for ${holdMs} ms`,
      resources: ['nft-loss'],
      unhealthyNodes: everywhere ? 'all' : [node.name],
      etcdUnhealthy: everywhere,
      holdMs,
      apply: async () => {
        const file = join(env.lab.dir, 'chaos-loss.nft');
        writeFileSync(
          file,
          [`table bridge ${lossTable(env.lab)} {`, '  chain forward {', '    type filter hook forward priority -10; policy accept;', ...rules, '  }', '}', ''].join('\n'),
        );
        await mustRun('ip', ['netns', 'exec', env.lab.switchNs, 'nft', '-f', file]);
      },
      heal: async () => {
        const listed = await run('ip', ['netns', 'exec', env.lab.switchNs, 'nft', 'list', 'table', 'bridge', lossTable(env.lab)]);
        if (listed.code === 0) await mustRun('ip', ['netns', 'exec', env.lab.switchNs, 'nft', 'delete', 'table', 'bridge', lossTable(env.lab)]);
      },
    };
  },
};

const restartAll: FaultKind = {
  name: 'restart-all',
  weight: 1,
  summary: 'every agent restarted at once (SIGKILL like a power loss, or SIGTERM like a rolling reboot gone wrong)',
  plan(env, rng) {
    const signal = rng.chance(0.6) ? 'SIGKILL' : 'SIGTERM';
    const holdMs = rng.int(0, 1000);
    return {
      kind: this.name,
      description: `${signal} every agent at once, start them all after ${holdMs} ms`,
      resources: env.lab.nodes.map((node) => `agent:${node.name}`),
      unhealthyNodes: 'all',
      etcdUnhealthy: false,
      holdMs,
      apply: async () => {
        if (!env.lab.nodes.some((node) => env.agents.alive(node))) throw new FaultSkipped('no agent is running');
        await Promise.all(env.lab.nodes.map((node) => env.agents.stop(node, signal)));
      },
      heal: async () => {
        for (const node of env.lab.nodes) await startAgentChecked(env, node);
      },
    };
  },
};

function etcdKill(name: string, weight: number, summary: string, leaderOnly: boolean): FaultKind {
  return {
    name,
    weight,
    summary,
    plan(env, rng) {
      const holdMs = rng.int(0, 4000);
      const memberIndex = rng.int(0, 1 << 20);
      let member = env.etcd.members[memberIndex % env.etcd.members.length]!;
      return {
        kind: name,
        description: `SIGKILL etcd ${leaderOnly ? 'leader' : 'member'}, restart after ${holdMs} ms`,
        resources: ['etcd'],
        unhealthyNodes: [],
        etcdUnhealthy: true,
        holdMs,
        apply: async () => {
          if (leaderOnly) member = await env.etcd.leader();
          requireEtcd(env, member);
          await env.etcd.kill(member);
        },
        heal: async () => env.etcd.restart(member),
      };
    },
  };
}

const etcdFreeze: FaultKind = {
  name: 'etcd-freeze',
  weight: 1.5,
  summary: 'SIGSTOP an etcd member, SIGCONT it later',
  plan(env, rng) {
    const holdMs = rng.int(200, 4000);
    const member = env.etcd.members[rng.int(0, 1 << 20) % env.etcd.members.length]!;
    return {
      kind: this.name,
      description: `SIGSTOP etcd member ${member} for ${holdMs} ms`,
      resources: ['etcd'],
      unhealthyNodes: [],
      etcdUnhealthy: true,
      holdMs,
      apply: async () => {
        if (!env.etcd.signal(member, 'SIGSTOP')) throw new FaultSkipped(`etcd member ${member} is not running`);
      },
      heal: async () => void env.etcd.signal(member, 'SIGCONT'),
    };
  },
};

const etcdSigcont: FaultKind = {
  name: 'etcd-sigcont',
  weight: 0.3,
  summary: 'SIGCONT a running etcd member (must change nothing)',
  plan(env, rng) {
    const member = env.etcd.members[rng.int(0, 1 << 20) % env.etcd.members.length]!;
    return {
      kind: this.name,
      description: `SIGCONT the running etcd member ${member}`,
      resources: ['etcd'],
      unhealthyNodes: [],
      etcdUnhealthy: false,
      holdMs: 0,
      apply: async () => {
        if (!env.etcd.signal(member, 'SIGCONT')) throw new FaultSkipped(`etcd member ${member} is not running`);
      },
      heal: async () => undefined,
    };
  },
};

const etcdDiskFull: FaultKind = {
  name: 'etcd-disk-full',
  weight: 1,
  summary: "fill the filesystem of an etcd member's data dir (a tmpfs), free it later; restart etcd if it died",
  plan(env, rng) {
    const holdMs = rng.int(1000, 6000);
    const member = env.etcd.members[rng.int(0, 1 << 20) % env.etcd.members.length]!;
    return {
      kind: this.name,
      description: `fill etcd member ${member}'s data dir for ${holdMs} ms`,
      resources: ['etcd'],
      unhealthyNodes: [],
      etcdUnhealthy: true,
      holdMs,
      apply: async () => {
        requireEtcd(env, member);
        await env.etcd.fillDataDir(member);
      },
      heal: async () => {
        await env.etcd.freeDataDir(member);
        if (!env.etcd.isRunning(member) || !(await waitAnswers(env.etcd, member, 5000))) await env.etcd.restart(member);
      },
    };
  },
};

async function waitAnswers(etcd: EtcdTopology, member: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await etcd.answers(member)) return true;
    if (!etcd.isRunning(member)) return false;
    await pause(200);
  }
  return false;
}

export const FAULT_KINDS: readonly FaultKind[] = [
  agentKill,
  agentTerm,
  agentFreeze,
  agentSigcont,
  cpuStarve,
  nodeFreeze,
  nodeDead,
  linkDown,
  partition,
  loss,
  restartAll,
  etcdKill('etcd-kill', 1.5, 'SIGKILL an etcd member, restart it later', false),
  etcdKill('etcd-leader-kill', 1, 'SIGKILL the etcd raft leader, restart it later (single member: the member itself)', true),
  etcdFreeze,
  etcdSigcont,
  etcdDiskFull,
];

export function faultKind(name: string): FaultKind {
  const kind = FAULT_KINDS.find((candidate) => candidate.name === name);
  if (!kind) throw new Error(`no fault kind "${name}" (known: ${FAULT_KINDS.map((k) => k.name).join(', ')})`);
  return kind;
}
