/**
 * The chaos run: a lab of network namespaces, a seeded sequence of faults, and invariants
 * checked the whole time:
 *   - never two nodes holding the VIP (the observer samples every node every 10 ms);
 *   - never two MACs answering one ARP request from the client;
 *   - once a majority is healthy, the VIP is held again within a bound;
 *   - after every fault the cluster's lasting state is intact, and no VIP or macvlan is left
 *     on a node that does not hold it;
 *   - no agent exits unless a fault stopped it.
 */
import { Lab } from '../lab';
import { VipObserver } from '../observer';
import { waitFor } from '../shell';
import { AgentSupervisor } from './agents';
import { ArpWatch } from './arp-watch';
import { createToken, fetchClusterCa, uploadCertificate } from './cluster-setup';
import { createEtcdTopology, type EtcdTopology, type EtcdTopologyKind } from './etcd-topology';
import { FAULT_KINDS, FaultSkipped, faultKind, type Fault, type FaultEnv, type FaultKind } from './fault-catalog';
import { Prng } from './prng';
import { compareState, compareTokens, leaderNode, snapshotFrom, type StateSnapshot, type TokenListing } from './state';

export interface ChaosOptions {
  seed: number;
  faults: number;
  nodes: number;
  profile: 'default' | 'fast';
  etcd: EtcdTopologyKind;
  /** Probability that a step injects a second fault while the first is active. */
  overlap: number;
  /** Only these fault kinds (all when null). */
  kinds: string[] | null;
  /** The availability bound; default leaseTTL + 2 s + takeover.maxProbeWait. */
  boundMs: number | null;
  /** Check `vipd token list` every this many faults (the etcd snapshot covers tokens after every fault). */
  tokenCheckEvery: number;
  /** Carry on after a violation instead of stopping at the first. */
  keepGoing: boolean;
  log: (line: string) => void;
}

export const DEFAULT_OPTIONS: Omit<ChaosOptions, 'seed' | 'log'> = {
  faults: 200,
  nodes: 3,
  profile: 'default',
  etcd: 'single',
  overlap: 0.25,
  kinds: null,
  boundMs: null,
  tokenCheckEvery: 1,
  keepGoing: false,
};

/** The lab's timings: vipd's defaults (README). */
const LEASE_TTL_MS = 2000;
const MAX_PROBE_WAIT_MS = 3000;
/** Covers etcd's lease expiry check (500 ms), the followers' 1 s poll, and a loaded 2-core machine. */
const SCHEDULING_ALLOWANCE_MS = 2000;
const CLUSTER = 'lab';
/** How long after an overlap's last sample the tick may still see it (the observer's lines travel through pipes). */
const TICK_SLACK_MS = 1000;

export type ViolationKind = 'two-holders' | 'two-macs' | 'availability' | 'state' | 'tokens' | 'settle' | 'agent-exit' | 'fault' | 'prober' | 'observer';

export interface Violation {
  kind: ViolationKind;
  /** The step (1-based) during which it was seen; 0 before the first fault. */
  step: number;
  message: string;
}

export interface FaultRecord {
  step: number;
  kind: string;
  description: string;
  appliedAtMs: number;
  healedAtMs: number | null;
  /** From the last heal to the cluster settled (one holder, clean, answering). */
  settleMs: number | null;
  survived: boolean;
  incapacitates: string[];
  isolates: string[];
  /** Why the fault did nothing (its target was not running); such a fault is not counted as injected. */
  skipped: string | null;
}

export interface Outage {
  startMs: number;
  ms: number;
  /** The fault applied last before the VIP went, if any. */
  fault: FaultRecord | null;
}

export interface ChaosReport {
  options: Omit<ChaosOptions, 'log'>;
  boundMs: number;
  faults: FaultRecord[];
  violations: Violation[];
  overlaps: number;
  twoMacRounds: number;
  outages: Outage[];
  longestOutage: Outage | null;
  durationMs: number;
  /** The step of the first violation, or null. */
  failedStep: number | null;
  /**
   * Two holders (or two MACs) while a holder was both incapacitated and cut off at layer 2:
   * outside the fast profile's assumptions (docs/safety.md), reported but not a failure.
   */
  outsideAssumptions: Violation[];
  reproduce: string;
  logsDir: string | null;
  agentErrors: Array<{ node: string; line: string }>;
}

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The command line that repeats a run, up to and including `faults` faults. */
export function reproduceCommand(options: Omit<ChaosOptions, 'log'>, faults: number): string {
  const parts = ['npm run chaos --', `--seed ${options.seed}`, `--faults ${faults}`, `--nodes ${options.nodes}`];
  if (options.profile !== DEFAULT_OPTIONS.profile) parts.push(`--profile ${options.profile}`);
  if (options.etcd !== DEFAULT_OPTIONS.etcd) parts.push(`--etcd ${options.etcd}`);
  if (options.overlap !== DEFAULT_OPTIONS.overlap) parts.push(`--overlap ${options.overlap}`);
  if (options.kinds) parts.push(`--kinds ${options.kinds.join(',')}`);
  if (options.boundMs !== null) parts.push(`--bound-ms ${options.boundMs}`);
  return parts.join(' ');
}

class StopRun extends Error {}

export class ChaosRun {
  private lab!: Lab;
  private etcd!: EtcdTopology;
  private observer: VipObserver | null = null;
  private arp: ArpWatch | null = null;
  private agents!: AgentSupervisor;
  private readonly macs = new Map<string, string>();
  private readonly active = new Set<Fault>();
  private readonly records: FaultRecord[] = [];
  private readonly violations: Violation[] = [];
  private readonly outside: Violation[] = [];
  private step = 0;
  private monitor: NodeJS.Timeout | undefined;
  private monitorStartMs = 0;
  private healthySinceMs = 0;
  private wasHealthy = false;
  private reportedOutageFrom: number | null = null;
  private seenTwoMacRounds = 0;
  private seenExits = 0;
  private proberReported = false;
  private observerReported = false;
  /** Two-holder overlaps the tick recorded, each to be matched to one overlap in the observer's intervals. */
  private readonly tickOverlaps: Array<{ nodes: string[]; atMs: number; excused: boolean }> = [];
  private lastTwoHolderReportMs = -Infinity;
  private baseline: StateSnapshot | null = null;
  private tokenBaseline: TokenListing[] = [];
  private readonly boundMs: number;
  private readonly kinds: FaultKind[];

  constructor(private readonly options: ChaosOptions) {
    this.boundMs = options.boundMs ?? LEASE_TTL_MS + SCHEDULING_ALLOWANCE_MS + MAX_PROBE_WAIT_MS;
    this.kinds = options.kinds ? options.kinds.map(faultKind) : [...FAULT_KINDS];
  }

  async run(): Promise<ChaosReport> {
    const started = nowMs();
    const { log } = this.options;
    let logsDir: string | null = null;
    this.lab = await Lab.create({ nodes: this.options.nodes, config: { cluster: CLUSTER, election: { profile: this.options.profile } } });
    try {
      log(`lab ${this.lab.prefix}: ${this.options.nodes} nodes, etcd ${this.options.etcd}, profile ${this.options.profile}, logs in ${this.lab.dir}`);
      await this.setUp();
      await this.runSteps();
    } catch (error) {
      if (!(error instanceof StopRun)) this.violate('fault', `the run failed: ${(error as Error).stack ?? String(error)}`);
    } finally {
      clearInterval(this.monitor);
      this.finalChecks();
      this.observer?.stop();
      this.arp?.stop();
      const keep = process.env['VIPD_LAB_KEEP_LOGS'];
      if (this.violations.length > 0) {
        // Keep the agents' and etcd's logs of a failed run for whoever reproduces it.
        process.env['VIPD_LAB_KEEP_LOGS'] = '1';
        logsDir = this.lab.dir;
      }
      await this.lab.destroy();
      if (keep === undefined) delete process.env['VIPD_LAB_KEEP_LOGS'];
    }
    return this.report(started, logsDir);
  }

  private get env(): FaultEnv {
    return {
      lab: this.lab,
      etcd: this.etcd,
      agents: this.agents,
      holder: () => {
        const holders = this.observer?.currentHolders() ?? [];
        return holders.length === 1 ? this.lab.node(holders[0]!) : null;
      },
    };
  }

  private async setUp(): Promise<void> {
    const { lab, options } = this;
    this.etcd = createEtcdTopology(options.etcd, lab);
    await this.etcd.start();
    this.observer = await VipObserver.start(lab.vip, lab.nodes);
    this.arp = await ArpWatch.start(lab);
    this.agents = new AgentSupervisor(lab);
    for (const node of lab.nodes) {
      this.macs.set(node.name, await lab.mac(node));
      this.agents.start(node);
    }
    await this.settle('the first holder', 60_000);
    const first = lab.nodes[0]!;
    const admin = await createToken(lab, first, 'admin');
    await createToken(lab, first, 'read');
    const ca = await fetchClusterCa(lab, first);
    await uploadCertificate(lab, admin, ca.path);
    this.baseline = await this.settle('the cluster after set-up', 60_000);
    this.tokenBaseline = await this.tokenList();
    if (this.tokenBaseline.length < 2) throw new Error(`vipd token list shows ${this.tokenBaseline.length} tokens, expected 2`);
    this.monitorStartMs = nowMs();
    this.healthySinceMs = this.monitorStartMs;
    this.wasHealthy = true;
    this.monitor = setInterval(() => this.tick(), 25);
    options.log(`set up: holder ${this.env.holder()?.name}, 2 tokens, an uploaded certificate; bound ${this.boundMs} ms`);
  }

  private pickKind(rng: Prng): FaultKind {
    return rng.weighted(this.kinds.map((kind) => [kind, kind.weight] as const));
  }

  private async runSteps(): Promise<void> {
    const rng = new Prng(this.options.seed);
    for (this.step = 1; this.step <= this.options.faults; this.step += 1) {
      const stepRng = rng.fork(`step-${this.step}`);
      const firstKind = this.pickKind(stepRng);
      const overlap = stepRng.chance(this.options.overlap);
      const secondKind = this.pickKind(stepRng);
      const offsetMs = stepRng.int(0, 1500);
      const gapMs = stepRng.int(0, 500);
      const first = firstKind.plan(this.env, stepRng.fork('first'));
      let second: Fault | null = overlap ? secondKind.plan(this.env, stepRng.fork('second')) : null;
      if (second && second.resources.some((resource) => first.resources.includes(resource))) second = null;
      await this.runStep(first, second, offsetMs);
      if (this.violations.length > 0 && !this.options.keepGoing) throw new StopRun();
      await pause(gapMs);
    }
  }

  private async runStep(first: Fault, second: Fault | null, offsetMs: number): Promise<void> {
    const plan: Array<{ atMs: number; fault: Fault; action: 'apply' | 'heal' }> = [
      { atMs: 0, fault: first, action: 'apply' },
      { atMs: first.holdMs, fault: first, action: 'heal' },
    ];
    if (second) {
      plan.push({ atMs: offsetMs, fault: second, action: 'apply' }, { atMs: offsetMs + second.holdMs, fault: second, action: 'heal' });
    }
    // Stable sort: an apply at the same moment as a heal goes first, as listed.
    plan.sort((a, b) => a.atMs - b.atMs);
    const records = new Map<Fault, FaultRecord>();
    const startedAt = nowMs();
    for (const entry of plan) {
      const wait = startedAt + entry.atMs - nowMs();
      if (wait > 0) await pause(wait);
      if (entry.action === 'apply') {
        const record: FaultRecord = {
          step: this.step,
          kind: entry.fault.kind,
          description: entry.fault.description,
          appliedAtMs: nowMs(),
          healedAtMs: null,
          settleMs: null,
          survived: false,
          incapacitates: entry.fault.incapacitates ?? [],
          isolates: entry.fault.isolates ?? [],
          skipped: null,
        };
        records.set(entry.fault, record);
        this.records.push(record);
        this.active.add(entry.fault);
        this.options.log(`#${this.step}${second ? (entry.fault === first ? 'a' : 'b') : ''} ${entry.fault.kind}: ${entry.fault.description}`);
        const skipped = await this.inject(entry.fault);
        if (skipped !== null) {
          record.skipped = skipped;
          this.active.delete(entry.fault);
          this.options.log(`   skipped, not counted as injected: ${skipped}`);
        }
      } else {
        // A skipped fault changed nothing: there is nothing to heal.
        if (records.get(entry.fault)!.skipped !== null) continue;
        await this.guard(`healing ${entry.fault.kind}`, () => entry.fault.heal());
        this.active.delete(entry.fault);
        records.get(entry.fault)!.healedAtMs = nowMs();
      }
    }
    const healedAt = nowMs();
    // The step started on a settled cluster, so its first fault's target was running: a step
    // that injected nothing tested nothing, and says the fault or the supervisor is broken.
    if ([...records.values()].every((record) => record.skipped !== null)) {
      this.violate('fault', `step ${this.step} injected nothing: ${[...records.values()].map((record) => `${record.kind}: ${record.skipped}`).join('; ')}`);
    }
    const before = this.violations.length;
    try {
      const settled = await this.settle(`the cluster to settle after step ${this.step}`, 60_000);
      this.checkState(settled);
      if (this.step % this.options.tokenCheckEvery === 0) {
        const problems = compareTokens(this.tokenBaseline, await this.tokenList());
        for (const problem of problems) this.violate('tokens', problem);
      }
    } catch (error) {
      if (error instanceof SettleError) this.violate('settle', error.message);
      else throw error;
    }
    const settleMs = Math.round(nowMs() - healedAt);
    for (const record of records.values()) {
      record.settleMs = settleMs;
      record.survived = this.violations.length === before;
    }
    this.options.log(`   settled in ${settleMs} ms${this.violations.length > before ? ` — ${this.violations.length - before} violation(s)` : ''}`);
  }

  /** Applies a fault; returns why it did nothing (FaultSkipped), or null once it is in place. */
  private async inject(fault: Fault): Promise<string | null> {
    try {
      await fault.apply();
      return null;
    } catch (error) {
      if (error instanceof FaultSkipped) return error.message;
      this.violate('fault', `injecting ${fault.kind}: ${(error as Error).message}`);
      return null;
    }
  }

  /** A fault that cannot be injected or healed is a failure of the run (e.g. SIGTERM not exiting 0). */
  private async guard(what: string, action: () => Promise<void>): Promise<void> {
    try {
      await action();
    } catch (error) {
      this.violate('fault', `${what}: ${(error as Error).message}`);
    }
  }

  private violate(kind: ViolationKind, message: string): void {
    this.violations.push({ kind, step: this.step, message });
    this.options.log(`   VIOLATION (${kind}) at step ${this.step}: ${message}`);
  }

  // ---- health and the continuous checks ----

  private healthy(): boolean {
    const faults = [...this.active];
    if (faults.some((fault) => fault.etcdUnhealthy)) return false;
    const members = this.etcd.members.filter((member) => this.etcd.isRunning(member)).length;
    if (members * 2 <= this.etcd.members.length) return false;
    const down = new Set<string>();
    for (const fault of faults) {
      if (fault.unhealthyNodes === 'all') return false;
      for (const name of fault.unhealthyNodes) down.add(name);
    }
    const healthyNodes = this.lab.nodes.filter((node) => !down.has(node.name) && this.agents.healthy(node)).length;
    return healthyNodes * 2 > this.lab.nodes.length;
  }

  /** When the VIP was last seen going from a node (monotonic ms), or null. */
  private lastGoneMs(): number | null {
    let last: bigint | null = null;
    for (const interval of this.observer?.intervals ?? []) {
      if (interval.goneAt !== null && (last === null || interval.goneAt > last)) last = interval.goneAt;
    }
    return last === null ? null : Number(last) / 1e6;
  }

  private tick(): void {
    const now = nowMs();
    if (this.observer?.failure) {
      // Blind on a node: nothing below can be trusted any more.
      if (!this.observerReported) {
        this.observerReported = true;
        this.violate('observer', `the VIP observer went blind: ${this.observer.failure}`);
      }
      return;
    }
    const holders = this.observer?.currentHolders() ?? [];
    if (holders.length > 1 && now - this.lastTwoHolderReportMs > 1000) {
      this.lastTwoHolderReportMs = now;
      this.overlap('two-holders', holders, now, `${holders.join(' and ')} hold the VIP at once (${this.activeDescription()})`);
    }
    const rounds = this.arp?.twoMacRounds ?? [];
    for (; this.seenTwoMacRounds < rounds.length; this.seenTwoMacRounds += 1) {
      const round = rounds[this.seenTwoMacRounds]!;
      const nodes = [...this.macs].filter(([, mac]) => round.macs.includes(mac)).map(([name]) => name);
      this.overlap('two-macs', nodes, round.atMs, `ARP round ${round.round}: ${round.macs.join(' and ')} both answered for the VIP (${this.activeDescription()})`);
    }
    const exits = this.agents.unexpectedExits;
    for (; this.seenExits < exits.length; this.seenExits += 1) {
      const exit = exits[this.seenExits]!;
      this.violate('agent-exit', `${exit.node}'s agent exited by itself (code ${exit.code}, signal ${exit.signal})`);
    }
    if (this.arp?.failure && !this.proberReported) {
      this.proberReported = true;
      this.violate('prober', `the client's ARP prober ${this.arp.failure}`);
    }
    const healthy = this.healthy();
    if (healthy && !this.wasHealthy) this.healthySinceMs = now;
    this.wasHealthy = healthy;
    if (holders.length > 0 || !healthy) return;
    const goneMs = Math.max(this.lastGoneMs() ?? this.monitorStartMs, this.monitorStartMs);
    const fromMs = Math.max(goneMs, this.healthySinceMs);
    if (now - fromMs > this.boundMs && this.reportedOutageFrom !== goneMs) {
      this.reportedOutageFrom = goneMs;
      this.violate(
        'availability',
        `no node has held the VIP for ${Math.round(now - fromMs)} ms while a majority was healthy (bound ${this.boundMs} ms; ` +
          `VIP gone ${Math.round(now - goneMs)} ms ago; ${this.activeDescription()})`,
      );
    }
  }

  /**
   * Why two holders at `atMs` fall outside the profile's assumptions, or null. The fast
   * profile's takeover probe cannot hear a holder that is cut off at layer 2 from the other
   * nodes, and a frozen or killed agent (with its dead-man switch) cannot remove the VIP: the
   * kernel lifetime does, up to leaseTTL after the last renewal (docs/safety.md). The default
   * profile assumes nothing of the kind: there every overlap is a failure.
   */
  private outsideAssumptions(nodes: string[], atMs: number): string | null {
    if (this.options.profile !== 'fast') return null;
    const now = nowMs();
    const during = (record: FaultRecord) => record.appliedAtMs <= atMs && atMs <= (record.healedAtMs ?? now) + LEASE_TTL_MS + 500;
    for (const node of nodes) {
      // A skipped fault did nothing, so it excuses nothing.
      const incapacitated = this.records.find((record) => record.skipped === null && record.incapacitates.includes(node) && during(record));
      const isolated = this.records.find((record) => record.skipped === null && record.isolates.includes(node) && during(record));
      if (incapacitated && isolated) {
        return `${node} was ${incapacitated.kind === isolated.kind ? incapacitated.kind : `${incapacitated.kind} and ${isolated.kind}`}: incapacitated and cut off at layer 2, outside the fast profile's assumptions (docs/safety.md)`;
      }
    }
    return null;
  }

  /** Records an overlap as a failure, or apart when it is outside the profile's assumptions. */
  private overlap(kind: 'two-holders' | 'two-macs', nodes: string[], atMs: number, message: string): void {
    const reason = this.outsideAssumptions(nodes, atMs);
    if (kind === 'two-holders') this.tickOverlaps.push({ nodes: [...nodes].sort(), atMs, excused: reason !== null });
    if (reason === null) {
      this.violate(kind, message);
      return;
    }
    this.outside.push({ kind, step: this.step, message: `${message}; ${reason}` });
    this.options.log(`   outside the profile's assumptions (${kind}): ${message}; ${reason}`);
  }

  private activeDescription(): string {
    const faults = [...this.active].map((fault) => fault.kind);
    return faults.length ? `active: ${faults.join(', ')}` : 'no fault active';
  }

  // ---- settling and the checks after each fault ----

  private async dumpState(): Promise<StateSnapshot> {
    return snapshotFrom(`/vipd/${CLUSTER}/`, await this.etcd.dump(`/vipd/${CLUSTER}/`));
  }

  /**
   * Waits until every agent runs, exactly one node holds the VIP (steadily), no other node
   * has it or a macvlan, the client hears only the holder's MAC, and etcd names the holder.
   */
  private async settle(what: string, timeoutMs: number): Promise<StateSnapshot> {
    let reason = 'nothing checked yet';
    try {
      return await waitFor(
        what,
        async () => {
          const unhealthy = this.lab.nodes.filter((node) => !this.agents.healthy(node));
          if (unhealthy.length > 0) {
            reason = `agents not running: ${unhealthy.map((node) => this.agents.describe(node)).join(', ')}`;
            return undefined;
          }
          const holders = this.observer!.currentHolders();
          if (holders.length !== 1) {
            reason = holders.length ? `${holders.join(' and ')} hold the VIP` : 'no node holds the VIP';
            return undefined;
          }
          const holder = this.lab.node(holders[0]!);
          const open = this.observer!.intervals.find((interval) => interval.node === holder.name && interval.to === null);
          if (open && nowMs() - Number(open.from) / 1e6 < 300) {
            reason = `${holder.name} took the VIP just now`;
            return undefined;
          }
          const configured = await this.lab.holders();
          if (configured.length !== 1 || configured[0] !== holder.name) {
            reason = `the VIP is configured on ${configured.join(', ') || 'no node'} (observer: ${holder.name})`;
            return undefined;
          }
          const macvlans = await this.lab.nodesWithMacvlan();
          if (macvlans.length > 0) {
            reason = `a vipd macvlan is left on ${macvlans.join(', ')}`;
            return undefined;
          }
          const expected = this.macs.get(holder.name)!;
          const heard = this.arp!.macsSince(nowMs() - 300);
          if (heard.length !== 1 || heard[0] !== expected) {
            reason = `the client hears ${heard.join(' and ') || 'nobody'} for the VIP, expected ${holder.name} (${expected})`;
            return undefined;
          }
          const snapshot = await this.dumpState();
          const leader = leaderNode(snapshot);
          if (leader !== holder.name) {
            reason = `etcd names ${leader ?? 'nobody'} as the holder, the VIP is on ${holder.name}`;
            return undefined;
          }
          return snapshot;
        },
        timeoutMs,
        100,
      );
    } catch {
      throw new SettleError(`did not settle within ${timeoutMs} ms: ${reason} (${this.activeDescription()})`);
    }
  }

  private checkState(snapshot: StateSnapshot): void {
    if (!this.baseline) return;
    for (const problem of compareState(this.baseline, snapshot)) this.violate('state', problem);
    this.baseline = snapshot;
  }

  private async tokenList(): Promise<TokenListing[]> {
    const node = this.lab.nodes.find((candidate) => this.agents.healthy(candidate)) ?? this.lab.nodes[0]!;
    const result = await this.lab.vipd(node, ['token', 'list', '-o', 'json', '--config', node.configPath]);
    if (result.code !== 0) throw new SettleError(`vipd token list failed (${result.code}): ${result.stderr.trim()}`);
    return (JSON.parse(result.stdout) as { tokens: TokenListing[] }).tokens;
  }

  /**
   * Judges every overlap in the observer's intervals on its own fault window. One the tick
   * already recorded the same way (same two nodes, the tick inside the overlap) is not
   * recorded twice; each tick record vouches for one overlap only, so an excused overlap
   * cannot hide a real one.
   */
  private finalChecks(): void {
    if (!this.observer) return;
    if (this.observer.failure && !this.observerReported) {
      this.observerReported = true;
      this.violate('observer', `the VIP observer went blind: ${this.observer.failure}`);
    }
    const unmatched = [...this.tickOverlaps];
    for (const overlap of this.observer.overlaps()) {
      const ms = Number(overlap.at) / 1e6;
      const nodes = [overlap.first, overlap.second].sort();
      const reason = this.outsideAssumptions(nodes, ms);
      // The tick sees both intervals open, so it falls inside the overlap, or just after its
      // last sample while the "gone" line is still on its way.
      const seen = unmatched.findIndex(
        (tick) => tick.nodes.join() === nodes.join() && tick.atMs >= ms && tick.atMs <= ms + overlap.durationMs + TICK_SLACK_MS && (!tick.excused || reason !== null),
      );
      if (seen >= 0) {
        unmatched.splice(seen, 1);
        continue;
      }
      const fault = [...this.records].reverse().find((record) => record.skipped === null && record.appliedAtMs <= ms);
      const entry: Violation = {
        kind: 'two-holders',
        step: fault?.step ?? 0,
        message: `${overlap.first} and ${overlap.second} held the VIP at once for ${overlap.durationMs.toFixed(1)} ms (after ${fault ? `#${fault.step} ${fault.kind}` : 'set-up'})`,
      };
      if (reason === null) this.violations.push(entry);
      else this.outside.push({ ...entry, message: `${entry.message}; ${reason}` });
    }
  }

  // ---- the report ----

  private outages(): Outage[] {
    const intervals = (this.observer?.intervals ?? [])
      .map((interval) => ({
        from: Number(interval.from) / 1e6,
        to: interval.goneAt !== null ? Number(interval.goneAt) / 1e6 : interval.to !== null ? Number(interval.to) / 1e6 : Infinity,
      }))
      .sort((a, b) => a.from - b.from);
    const outages: Outage[] = [];
    let coveredUntil = -Infinity;
    for (const interval of intervals) {
      if (coveredUntil >= this.monitorStartMs && interval.from > coveredUntil && this.monitorStartMs > 0) {
        const startMs = coveredUntil;
        const fault = [...this.records].reverse().find((record) => record.skipped === null && record.appliedAtMs <= startMs) ?? null;
        outages.push({ startMs, ms: interval.from - startMs, fault });
      }
      coveredUntil = Math.max(coveredUntil, interval.to);
    }
    return outages;
  }

  private report(started: number, logsDir: string | null): ChaosReport {
    const { log: _log, ...options } = this.options;
    const outages = this.outages();
    const longest = outages.reduce<Outage | null>((best, outage) => (!best || outage.ms > best.ms ? outage : best), null);
    const failedStep = this.violations.length > 0 ? Math.max(1, Math.min(...this.violations.map((violation) => violation.step))) : null;
    return {
      options,
      boundMs: this.boundMs,
      faults: this.records,
      violations: this.violations,
      overlaps: this.violations.filter((violation) => violation.kind === 'two-holders').length,
      twoMacRounds: this.arp?.twoMacRounds.length ?? 0,
      outages,
      longestOutage: longest,
      durationMs: nowMs() - started,
      failedStep,
      outsideAssumptions: this.outside,
      reproduce: reproduceCommand(options, failedStep ?? options.faults),
      logsDir,
      agentErrors: this.agents?.errorLines ?? [],
    };
  }
}

class SettleError extends Error {}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  return await new ChaosRun(options).run();
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** The human summary printed at the end of a run. */
export function formatReport(report: ChaosReport): string {
  const { options } = report;
  const applied = report.faults.filter((fault) => fault.skipped === null);
  const skipped = report.faults.filter((fault) => fault.skipped !== null);
  const injected = applied.length;
  const survived = applied.filter((fault) => fault.survived).length;
  const steps = new Set(applied.map((fault) => fault.step)).size;
  const lines = [
    '',
    `vipd chaos: seed ${options.seed}, ${options.nodes} nodes, etcd ${options.etcd}, profile ${options.profile}, ${options.faults} steps`,
    `faults injected:   ${injected} in ${steps} steps (${injected - steps} injected while another was active)`,
    `faults skipped:    ${skipped.length} (did nothing: the target was not running; not counted above)`,
    `faults survived:   ${survived} of ${injected}`,
    `overlaps:          ${report.overlaps} (two nodes holding the VIP at once; must be 0)`,
    `two-MAC ARP rounds: ${report.twoMacRounds} (must be 0)`,
    `availability bound: ${seconds(report.boundMs)} once a majority is healthy`,
  ];
  if (options.profile === 'fast') {
    lines.push(`outside assumptions: ${report.outsideAssumptions.length} overlap(s) while a holder was incapacitated and cut off at layer 2 (fast profile; docs/safety.md)`);
    for (const entry of report.outsideAssumptions.slice(0, 5)) lines.push(`  step ${entry.step} [${entry.kind}] ${entry.message}`);
  }
  if (report.longestOutage) {
    const fault = report.longestOutage.fault;
    lines.push(`longest outage:    ${seconds(report.longestOutage.ms)}, after #${fault?.step ?? '-'} ${fault ? `${fault.kind}: ${fault.description}` : 'set-up'}`);
  } else {
    lines.push('longest outage:    none');
  }
  const byKind = new Map<string, { count: number; longest: number }>();
  for (const fault of applied) byKind.set(fault.kind, { count: (byKind.get(fault.kind)?.count ?? 0) + 1, longest: byKind.get(fault.kind)?.longest ?? 0 });
  for (const outage of report.outages) {
    if (!outage.fault) continue;
    const entry = byKind.get(outage.fault.kind)!;
    entry.longest = Math.max(entry.longest, outage.ms);
  }
  lines.push('by fault kind (count, longest outage after it):');
  for (const [kind, entry] of [...byKind.entries()].sort()) lines.push(`  ${kind.padEnd(18)} ${String(entry.count).padStart(4)}  ${seconds(entry.longest)}`);
  const minutes = Math.floor(report.durationMs / 60_000);
  lines.push(`duration:          ${minutes}m${String(Math.round((report.durationMs % 60_000) / 1000)).padStart(2, '0')}s`);
  if (report.agentErrors.length > 0) lines.push(`agents logged ${report.agentErrors.length} error line(s), e.g. ${report.agentErrors[0]!.node}: ${report.agentErrors[0]!.line.slice(0, 200)}`);
  if (report.violations.length === 0) {
    lines.push('result:            PASS, no invariant violated');
  } else {
    lines.push(`result:            FAIL, ${report.violations.length} violation(s):`);
    for (const violation of report.violations.slice(0, 20)) lines.push(`  step ${violation.step} [${violation.kind}] ${violation.message}`);
    if (report.logsDir) lines.push(`logs kept in:      ${report.logsDir}`);
  }
  lines.push(`seed:              ${options.seed}`);
  lines.push(`reproduce:         ${report.reproduce}`);
  return lines.join('\n');
}
