/**
 * One failover trial: settle, inject the fault, wait for the system to recover, measure
 * the window from the client's side, and undo the fault.
 */
import type { Lab, LabNode } from '../lab/lab';
import { freezeNode, healPartition, partitionNode, thawNode } from '../lab/faults';
import type { VipObserver } from '../lab/observer';
import { mustRun, run, waitFor } from '../lab/shell';
import type { ClientProbes } from './client-probes';
import type { NodeServices } from './service';
import { round } from './stats';
import type { SystemUnderTest } from './systems';

export type ScenarioId =
  | 'link-down'
  | 'daemon-kill'
  | 'node-kill'
  | 'freeze'
  | 'planned-move'
  | 'partition'
  | 'holder-dies-etcd-leader'
  | 'holder-dies-not-leader'
  | 'leader-nonholder-dies'
  | 'member-frozen'
  | 'member-frozen-holder'
  | 'holder-service-dies';

export const SCENARIO_IDS: readonly ScenarioId[] = [
  'link-down',
  'daemon-kill',
  'node-kill',
  'freeze',
  'planned-move',
  'partition',
  'holder-dies-etcd-leader',
  'holder-dies-not-leader',
  'leader-nonholder-dies',
  'member-frozen',
  'member-frozen-holder',
  'holder-service-dies',
];

/** Scenarios that place or break an etcd member: only for systems with their own members. */
export const EMBEDDED_SCENARIOS: ReadonlySet<ScenarioId> = new Set([
  'holder-dies-etcd-leader',
  'holder-dies-not-leader',
  'leader-nonholder-dies',
  'member-frozen',
  'member-frozen-holder',
]);

export const SCENARIO_TITLES: Record<ScenarioId, string> = {
  'link-down': "holder's link down",
  'daemon-kill': "holder's daemon SIGKILL",
  'node-kill': "holder's processes SIGKILL",
  freeze: 'holder frozen (SIGSTOP)',
  'planned-move': 'planned move',
  partition: 'holder partitioned',
  'holder-dies-etcd-leader': 'holder dies, led etcd',
  'holder-dies-not-leader': 'holder dies, not leader',
  'leader-nonholder-dies': 'etcd leader dies (no VIP)',
  'member-frozen': 'other member frozen 20 s',
  'member-frozen-holder': "holder's member frozen 20 s",
  'holder-service-dies': "holder's service dies",
};

/** Scenarios that need the nodes' service and the systems' health check on it (bench/service.ts). */
export const SERVICE_SCENARIOS: ReadonlySet<ScenarioId> = new Set(['holder-service-dies']);

export interface TrialTimings {
  freezeMs: number;
  partitionMs: number;
  /** Measuring goes on this long after the system looks recovered. */
  tailMs: number;
  /** A single holder must stay put this long to count as settled. */
  stableMs: number;
  recoverTimeoutMs: number;
  settleTimeoutMs: number;
  /** How long one etcd member stays SIGSTOPped. */
  memberFreezeMs: number;
  /** How long the window stays open after a non-holder's death, before waiting for calm. */
  observeMs: number;
}

export interface TrialContext {
  system: SystemUnderTest;
  lab: Lab;
  observer: VipObserver;
  probes: ClientProbes;
  macs: Map<string, string>;
  timings: TrialTimings;
  log: (message: string) => void;
  /** The nodes' service, while a service scenario runs. */
  services?: NodeServices;
}

export interface TrialRecord {
  system: string;
  scenario: ScenarioId;
  trial: number;
  ok: boolean;
  error?: string;
  oldHolder: string | null;
  /** The first other node seen holding the VIP after the fault (null: it never moved). */
  newHolder: string | null;
  /** The node holding the VIP when the window closed. */
  finalHolder: string | null;
  /** Monotonic ms of the fault, to place whole-run observations in their trial. */
  faultAtMs: number | null;
  windowMs: number | null;
  /** Longest time without an ICMP reply in the window (5 ms probes). */
  outageMs: number | null;
  /** When that gap began, relative to the fault. */
  outageStartMs: number | null;
  /** Fault to the first gratuitous ARP from the new holder's MAC at the client. */
  garpMs: number | null;
  announcements: number;
  /** Every node's gratuitous ARPs in the window, ms after the fault (at most 12 each). */
  garpsByNode: Record<string, number[]>;
  /** Address sampling (5 ms): time two nodes had the VIP configured at once. */
  addressOverlapMs: number;
  addressOverlaps: number;
  /** An overlap still open when the window closed (e.g. a killed keepalived's stale VIP). */
  addressOverlapOpen: boolean;
  /** ARP probing: time two MACs answered the same 5 ms round. */
  arpOverlapMs: number;
  arpOverlapRounds: number;
  arpMacs: string[];
  /** Old holder's VIP gone (address sampling) to the new holder's VIP present; null if the old one kept it. */
  addressGapMs: number | null;
  /** Times a node other than the faulted holder lost the VIP in the window: flaps and lost dual-master races. */
  extraReleases: number;
  /** Changes of holder in the window (the VIP appearing on a node other than the last one to hold it). */
  moves: number;
  /** Times the holder from before the fault lost the VIP in the window (a drop and a retake counts here, not in moves). */
  holderReleases: number;
  /** The node the fault hit (the holder, except for the etcd-member scenarios). */
  faultNode: string | null;
  /** Embedded etcd only: the node whose member led raft just before the fault, and at the window's end. */
  etcdLeader: string | null;
  etcdLeaderAfter: string | null;
  /** Service scenarios: the service's death to the first HTTP answer through the VIP from another node (10 ms probes). */
  serviceMs: number | null;
  detail?: string;
}

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until one node alone holds the VIP for `stableMs`, optionally not `exclude`. */
export async function waitStableHolder(ctx: TrialContext, stableMs: number, timeoutMs: number, exclude?: LabNode): Promise<LabNode> {
  let candidate: string | null = null;
  let since = 0;
  const name = await waitFor(
    `one node${exclude ? ` other than ${exclude.name}` : ''} to hold the VIP for ${stableMs} ms`,
    () => {
      const holders = ctx.observer.currentHolders();
      const single = holders.length === 1 && holders[0] !== exclude?.name ? holders[0]! : null;
      if (single !== candidate) {
        candidate = single;
        since = nowMs();
      }
      return candidate !== null && nowMs() - since >= stableMs ? candidate : undefined;
    },
    timeoutMs,
    10,
  );
  return ctx.lab.node(name);
}

/** Waits until a node other than `former` holds the VIP and the client reaches it over TCP. */
async function waitTakeover(ctx: TrialContext, former: LabNode): Promise<LabNode> {
  const deadline = nowMs() + ctx.timings.recoverTimeoutMs;
  for (;;) {
    const name = await waitFor(
      `a node other than ${former.name} to hold the VIP`,
      () => ctx.observer.currentHolders().find((holder) => holder !== former.name),
      Math.max(1, deadline - nowMs()),
      5,
    );
    // The VIP may still be moving; recheck who holds it if the client lands elsewhere.
    const reached = await ctx.lab.waitClientReaches(name, Math.max(1000, Math.min(5000, deadline - nowMs()))).catch(() => null);
    if (reached) return ctx.lab.node(reached);
    if (nowMs() > deadline) throw new Error(`the client did not reach a new holder within ${ctx.timings.recoverTimeoutMs} ms`);
  }
}

/**
 * Waits until one node has held the VIP alone for stableMs and the client reaches it over
 * TCP; if the VIP moves on meanwhile, waits again, up to recoverTimeoutMs.
 */
async function waitCalm(ctx: TrialContext): Promise<LabNode> {
  const deadline = nowMs() + ctx.timings.recoverTimeoutMs;
  for (;;) {
    const node = await waitStableHolder(ctx, ctx.timings.stableMs, Math.max(1, deadline - nowMs()));
    // Whichever node the client reaches first: the holder ends the wait, another one means the VIP moved on.
    const reached = await ctx.lab.waitClientReaches(undefined, Math.max(1000, deadline - nowMs())).catch(() => null);
    if (reached === node.name) return node;
    if (nowMs() > deadline) throw new Error(`the VIP did not stay on one node the client reaches within ${ctx.timings.recoverTimeoutMs} ms`);
  }
}

/** Undoes every fault the bench can make, on every node: the way back after a failed trial. */
export async function recoverAll(ctx: TrialContext): Promise<void> {
  await healPartition(ctx.lab);
  for (const node of ctx.lab.nodes) {
    await thawNode(ctx.lab, node);
    await ctx.lab.setLink(node, true);
  }
  for (const node of ctx.lab.nodes) {
    if (!ctx.system.isRunning(node)) {
      await ctx.system.afterKill(node);
      await ctx.system.start(node);
    }
  }
}

/** Everything running, one holder that stays, the client reaching it, and pings flowing. */
export async function settle(ctx: TrialContext): Promise<LabNode> {
  const { timings } = ctx;
  const deadline = nowMs() + timings.settleTimeoutMs;
  for (const node of ctx.lab.nodes) if (!ctx.system.isRunning(node)) await ctx.system.start(node);
  const healthy = await waitFor('every agent to be connected', () => ctx.system.healthy(), timings.settleTimeoutMs, 100).catch(() => false);
  if (!healthy) ctx.log(`warning: ${ctx.system.id} agents not all connected; going on`);
  for (;;) {
    const holder = await waitStableHolder(ctx, timings.stableMs, Math.max(1, deadline - nowMs()));
    // Whichever node the client reaches first: another one than the holder means the VIP moved on.
    const reached = await ctx.lab.waitClientReaches(undefined, Math.max(1000, deadline - nowMs())).catch(() => null);
    if (reached !== holder.name) {
      if (nowMs() > deadline) throw new Error(`the client did not reach a settled holder within ${timings.settleTimeoutMs} ms`);
      continue;
    }
    await waitFor('pings to the VIP to flow', () => ctx.probes.answering(50), Math.max(1000, deadline - nowMs()), 10);
    const holders = ctx.observer.currentHolders();
    if (holders.length === 1 && holders[0] === holder.name) return holder;
    if (nowMs() > deadline) throw new Error('the VIP did not settle on one node');
  }
}

/**
 * Every node's service check passes in the system's own view (a service restored after the
 * last trial has risen), then settles as usual.
 */
async function servicesPass(ctx: TrialContext): Promise<LabNode> {
  if (!ctx.services) throw new Error('the nodes\' service is not running');
  const { lab, system, timings } = ctx;
  for (const node of lab.nodes) await ctx.services.restore(node);
  await waitFor(
    "every node's service check to pass",
    async () => (await Promise.all(lab.nodes.map((node) => system.serviceCheckPasses(node)))).every(Boolean),
    timings.settleTimeoutMs,
    100,
  );
  return await settle(ctx);
}

/** A trial with nothing measured yet. */
export function emptyRecord(system: string, scenario: ScenarioId, trial: number): TrialRecord {
  return {
    system,
    scenario,
    trial,
    ok: false,
    oldHolder: null,
    newHolder: null,
    finalHolder: null,
    faultAtMs: null,
    windowMs: null,
    outageMs: null,
    outageStartMs: null,
    garpMs: null,
    announcements: 0,
    garpsByNode: {},
    addressOverlapMs: 0,
    addressOverlaps: 0,
    addressOverlapOpen: false,
    arpOverlapMs: 0,
    arpOverlapRounds: 0,
    arpMacs: [],
    addressGapMs: null,
    extraReleases: 0,
    moves: 0,
    holderReleases: 0,
    faultNode: null,
    etcdLeader: null,
    etcdLeaderAfter: null,
    serviceMs: null,
  };
}

/** The next node after `node` in the lab's order that satisfies `ok`. */
function nextNode(lab: Lab, node: LabNode, ok: (candidate: LabNode) => boolean): LabNode {
  for (let step = 1; step < lab.nodes.length; step += 1) {
    const candidate = lab.nodes[(lab.nodes.indexOf(node) + step) % lab.nodes.length]!;
    if (ok(candidate)) return candidate;
  }
  throw new Error(`no node after ${node.name} fits`);
}

/**
 * Settles, then puts etcd's leadership where the scenario needs it: on the holder, or off
 * it. A leadership transfer can itself disturb the holder, so it settles again and retries
 * until holder and leader stand as wanted.
 *
 * On the holder, the state cannot last: the holder moves etcd's leadership off itself
 * within a second (src/election/etcd-leadership.ts). The trial is the holder dying inside
 * that window, so it returns as soon as etcd's MoveLeader has answered (etcd answers it
 * only once the transfer is done), without the settling wait that would let the holder
 * undo it; the caller kills at once, and the record says who led just before.
 */
async function arrangeLeader(ctx: TrialContext, onHolder: boolean): Promise<{ holder: LabNode; leader: string }> {
  const etcd = ctx.system.etcd!;
  for (let attempt = 1; ; attempt += 1) {
    const holder = await settle(ctx);
    const leader = await waitFor('an etcd leader', () => etcd.leader().then((name) => name ?? undefined), 20_000, 200);
    const isMember = (node: LabNode): boolean => etcd.memberNodes.includes(node);
    if (onHolder && !isMember(holder)) throw new Error(`${holder.name} holds the VIP but runs no etcd member`);
    if (onHolder) {
      if (leader !== holder.name && !(await etcd.transferLeadership(holder))) {
        if (attempt >= 5) throw new Error(`could not move the etcd leader to the holder ${holder.name} in 5 attempts`);
        continue;
      }
      const holders = ctx.observer.currentHolders();
      if (holders.length === 1 && holders[0] === holder.name) return { holder, leader: holder.name };
      if (attempt >= 5) throw new Error(`moving etcd's leader to ${holder.name} disturbed the holder 5 times (holders now ${holders.join(', ') || 'none'})`);
      ctx.log(`moving etcd's leader to ${holder.name} disturbed the holder (holders now ${holders.join(', ') || 'none'}); again`);
      continue;
    }
    if (leader !== holder.name) return { holder, leader };
    const wanted = nextNode(ctx.lab, holder, isMember);
    await etcd.moveLeader(wanted);
    const after = await waitStableHolder(ctx, ctx.timings.stableMs, ctx.timings.settleTimeoutMs);
    const now = await etcd.leader();
    if (after === holder && now === wanted.name) return { holder: await settle(ctx), leader: now };
    if (attempt >= 5) throw new Error(`could not place the etcd leader off the holder in 5 attempts (holder ${after.name}, leader ${now})`);
    ctx.log(`moving etcd's leader to ${wanted.name} disturbed the holder or did not hold (holder ${holder.name}→${after.name}, leader ${now}); again`);
  }
}

/**
 * A node dies whole: its link goes down, every process of the system on it is SIGKILLed,
 * and the VIP leaves its interface, as a node without power holds no address. Left in
 * place, the address would linger on a link that carries nothing until its kernel lifetime
 * ran out, and the address sampling would count that as a second holder.
 */
async function nodeDies(ctx: TrialContext, node: LabNode): Promise<void> {
  await ctx.lab.setLink(node, false);
  await ctx.system.killNode(node);
  const out = await mustRun('ip', ['-n', node.namespace, '-j', 'addr', 'show', 'dev', 'mgmt-br']);
  const links = JSON.parse(out) as Array<{ addr_info?: Array<{ local: string; prefixlen: number }> }>;
  for (const entry of links.flatMap((link) => link.addr_info ?? []).filter((each) => each.local === ctx.lab.vip)) {
    await run('ip', ['-n', node.namespace, 'addr', 'del', `${entry.local}/${entry.prefixlen}`, 'dev', 'mgmt-br']);
  }
}

function sendSignal(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Gone.
  }
}

/** Runs one trial; never throws for a failure of the system under test (it is recorded). */
export async function runTrial(ctx: TrialContext, scenario: ScenarioId, trial: number): Promise<TrialRecord> {
  const { lab, system, timings } = ctx;
  const record = emptyRecord(system.id, scenario, trial);
  ctx.probes.check();
  let holder: LabNode;
  let arrangedLeader: string | null = null;
  if (scenario === 'holder-dies-etcd-leader') {
    ({ holder, leader: arrangedLeader } = await arrangeLeader(ctx, true));
  } else if (scenario === 'holder-dies-not-leader' || scenario === 'leader-nonholder-dies') {
    ({ holder } = await arrangeLeader(ctx, false));
  } else if (SERVICE_SCENARIOS.has(scenario)) {
    holder = await servicesPass(ctx);
  } else {
    holder = await settle(ctx);
  }
  // Asking etcd again would take longer than the holder's window with the leadership (above).
  if (system.etcd) record.etcdLeader = arrangedLeader ?? (await system.etcd.leader());
  record.oldHolder = holder.name;
  const target = lab.nodes[(lab.nodes.indexOf(holder) + 1) % lab.nodes.length]!;
  let faulted = holder;
  if (scenario === 'leader-nonholder-dies') {
    if (!record.etcdLeader || record.etcdLeader === holder.name) throw new Error(`the etcd leader (${record.etcdLeader}) is not a non-holder`);
    faulted = lab.node(record.etcdLeader);
  } else if (scenario === 'member-frozen') {
    faulted = nextNode(lab, holder, (node) => system.etcd!.memberNodes.includes(node));
  }
  record.faultNode = faulted.name;
  ctx.probes.prune(nowMs() - 10_000);
  ctx.services?.prune(nowMs() - 10_000);

  let linkDown = false;
  let killed = false;
  let daemonKilled = false;
  let frozen = false;
  let partitioned = false;
  let stopped = false;
  let serviceKilled = false;
  let frozenMember: number | null = null;
  const t0 = nowMs();
  try {
    switch (scenario) {
      case 'link-down':
        linkDown = true;
        await lab.setLink(holder, false);
        await waitTakeover(ctx, holder);
        break;
      case 'daemon-kill':
        daemonKilled = true;
        await system.killDaemon(holder);
        await waitTakeover(ctx, holder);
        // A killed keepalived child leaves the VIP in the kernel until its respawned
        // successor clears it: wait for one holder, so the overlap is measured whole.
        await waitStableHolder(ctx, timings.stableMs, timings.recoverTimeoutMs);
        break;
      case 'node-kill':
        killed = true;
        await system.killNode(holder);
        await waitTakeover(ctx, holder);
        break;
      case 'holder-dies-etcd-leader':
      case 'holder-dies-not-leader':
        linkDown = true;
        killed = true;
        await nodeDies(ctx, holder);
        await waitTakeover(ctx, holder);
        break;
      case 'leader-nonholder-dies':
        linkDown = true;
        killed = true;
        await nodeDies(ctx, faulted);
        await sleep(timings.observeMs);
        await waitCalm(ctx);
        break;
      case 'member-frozen':
      case 'member-frozen-holder': {
        const pid = system.etcd!.etcdPid(faulted);
        if (pid === null) throw new Error(`${faulted.name} runs no etcd member`);
        frozenMember = pid;
        sendSignal(pid, 'SIGSTOP');
        await sleep(timings.memberFreezeMs);
        sendSignal(pid, 'SIGCONT');
        frozenMember = null;
        await waitCalm(ctx);
        break;
      }
      case 'freeze':
        frozen = true;
        await freezeNode(lab, holder);
        await sleep(timings.freezeMs);
        await thawNode(lab, holder);
        frozen = false;
        await waitCalm(ctx);
        break;
      case 'planned-move': {
        stopped = true;
        const move = system.plannedMove(holder, target);
        // A refused move must end the trial at once, not after the takeover timeout.
        const refused = move.then((outcome) => (outcome.ok ? new Promise<never>(() => undefined) : Promise.reject(new Error(`planned move failed: ${outcome.detail}`))));
        const reached = await Promise.race([waitTakeover(ctx, holder), refused]);
        const outcome = await move;
        record.detail = `${outcome.detail}; reached ${reached.name}${system.id.startsWith('vipd') ? ` (asked for ${target.name})` : ''}`;
        break;
      }
      case 'holder-service-dies':
        serviceKilled = true;
        await ctx.services!.kill(holder);
        await waitTakeover(ctx, holder);
        break;
      case 'partition':
        partitioned = true;
        await partitionNode(lab, holder);
        await sleep(timings.partitionMs);
        await healPartition(lab, holder);
        partitioned = false;
        await waitCalm(ctx);
        break;
    }
    await sleep(timings.tailMs);
    record.ok = true;
  } catch (error) {
    record.error = (error as Error).message.split('\n')[0];
  }
  const t1 = nowMs();
  measure(ctx, record, holder, t0, t1);
  if (system.etcd) record.etcdLeaderAfter = await system.etcd.leader().catch(() => null);

  // Undo the fault outside the window.
  if (frozenMember !== null) sendSignal(frozenMember, 'SIGCONT');
  if (frozen) await thawNode(lab, holder);
  if (partitioned) await healPartition(lab, holder);
  if (linkDown) await lab.setLink(faulted, true);
  if (killed) {
    await system.afterKill(faulted);
    await system.start(faulted);
  }
  if (daemonKilled) await system.afterDaemonKill(holder);
  if (stopped) await system.afterMove(holder);
  if (serviceKilled) await ctx.services!.restore(holder);
  return record;
}

function measure(ctx: TrialContext, record: TrialRecord, holder: LabNode, t0: number, t1: number): void {
  const { observer, probes } = ctx;
  record.faultAtMs = round(t0, 3);
  record.windowMs = round(t1 - t0);
  const gap = probes.longestGap(t0, t1);
  record.outageMs = round(gap.gapMs);
  record.outageStartMs = round(gap.startOffsetMs);

  const t0ns = BigInt(Math.floor(t0 * 1e6));
  const t1ns = BigInt(Math.ceil(t1 * 1e6));
  const next = observer.intervals.find((entry) => entry.node !== holder.name && entry.from >= t0ns && entry.from <= t1ns);
  record.newHolder = next?.node ?? null;
  const released = observer.intervals.find((entry) => entry.node === holder.name && entry.goneAt !== null && entry.goneAt >= t0ns && entry.goneAt <= t1ns);
  if (released?.goneAt && next) record.addressGapMs = round(Number(next.from - released.goneAt) / 1e6);
  record.extraReleases = observer.intervals.filter(
    (entry) => entry.node !== holder.name && entry.goneAt !== null && entry.goneAt >= t0ns && entry.goneAt <= t1ns,
  ).length;
  record.holderReleases = observer.intervals.filter((entry) => entry.node === holder.name && entry.goneAt !== null && entry.goneAt >= t0ns && entry.goneAt <= t1ns).length;
  let last = holder.name;
  for (const entry of observer.intervals.filter((each) => each.from >= t0ns && each.from <= t1ns).sort((a, b) => (a.from < b.from ? -1 : 1))) {
    if (entry.node !== last) record.moves += 1;
    last = entry.node;
  }
  const holders = observer.currentHolders();
  record.finalHolder = holders.length === 1 ? holders[0]! : holders.length ? holders.join('+') : null;
  if (record.newHolder) {
    const mac = ctx.macs.get(record.newHolder) ?? '';
    const seen = probes.announcements(mac, t0, t1);
    record.garpMs = seen.firstMs === null ? null : round(seen.firstMs - t0);
    record.announcements = seen.count;
  }

  for (const [node, mac] of ctx.macs) {
    const times = probes.announcementTimes(mac, t0, t1);
    if (times.length) record.garpsByNode[node] = times.slice(0, 12).map((at) => round(at - t0));
  }

  let overlapMs = 0;
  let count = 0;
  for (const overlap of observer.overlaps()) {
    const start = Number(overlap.at) / 1e6;
    const end = start + overlap.durationMs;
    const clippedStart = Math.max(start, t0);
    const clippedEnd = Math.min(end, t1);
    if (clippedEnd < clippedStart) continue;
    overlapMs += clippedEnd - clippedStart;
    count += 1;
    if (end >= t1) record.addressOverlapOpen = true;
  }
  record.addressOverlapMs = round(overlapMs);
  record.addressOverlaps = count;

  const arp = probes.arpOverlap(t0, t1);
  record.arpOverlapMs = arp.ms;
  record.arpOverlapRounds = arp.rounds;
  record.arpMacs = arp.macs;

  const answered = ctx.services?.firstAnswerFrom(t0, t1, holder.name) ?? null;
  if (answered !== null) record.serviceMs = round(answered - t0);
}
