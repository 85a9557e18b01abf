import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { monotonicMs } from '../clock';
import type { Config, PreferenceConfig } from '../config/config';
import { InputError } from '../config/schema-check';
import { Election } from '../election/election';
import { Announcer } from '../holding/announcer';
import { parseMac } from '../holding/codecs/mac';
import { hostAnswers, probeForOtherHolders } from '../holding/conflict-probe';
import type { DhcpState } from '../holding/dhcp-client';
import { DhcpVipHolder, StaticVipHolder, type VipHolder } from '../holding/holders';
import { Netlink } from '../holding/netlink';
import { checkLocalNetwork } from '../holding/preflight';
import { lastWholeSecondAt, validLifetimeSeconds, VipAddress } from '../holding/vip-address';
import { newMoveRequest, submitMove } from '../election/move-request';
import type { EtcdStore } from '../store/etcd-store';
import { ClusterKeys } from '../store/keys';
import { Membership } from '../store/membership';
import type { ClusterSettings, MoveEvent, NodeRecord, PublishedDhcpState, TransitionCause } from '../store/records';
import { setPriority } from '../store/maintenance';
import { grantMissingSharedPermissions } from '../store/access';
import { campaignDelayMs, decideEligibility, decidePreempt, type CordonState, type PeerFacts, type PreferenceDecision } from './preference';
import { PreferenceView } from './preference-view';
import { VipLifecycle, type VipTransition } from './lifecycle';

/** The shortest wait for a silent holder's node to answer ARP: a loaded host's scheduler, not the wire. */
const MIN_HOLDER_PROBE_MS = 20;

/** A change in whether this node has the VIP, with what hooks and logs need to say about it. */
export interface AgentTransition extends VipTransition {
  node: string;
  nodeIP: string;
  /** The MAC answering for the VIP: the node's, or in DHCP mode the VIP's own. */
  mac: string;
  cluster: string;
  time: string;
}

/** What the agent announces; the daemon wires metrics, hooks and the API to these. */
export interface AgentEvents {
  /** The VIP came to or left this node. */
  transition: [AgentTransition];
  /** An acknowledged renewal: its round trip, and the time left to hold the VIP (null when not holding). */
  renewed: ['lease' | 'hold', number, number | null];
  /** A gratuitous ARP or unsolicited NA went out. */
  announced: [];
  /** DHCP mode: the VIP's address was leased (it may differ from the last one). */
  leased: [string];
  /** This node's cordon or priority changed (issue 14). */
  preference: [];
}

export interface AgentOptions {
  /** Why this node must stay out of the election now (e.g. a required hook failed), or null. Asked on every converge. */
  holdGate?: () => string | null;
  /** This node's health checks and the cluster's (issue 13); without them the node is always healthy. */
  health?: {
    /** Why this node is unhealthy, or null when all its checks pass. */
    unhealthyReason(): string | null;
    /** A check failed `fall` times in a row (./health-gate.ts). */
    hasFailed(): boolean;
    /** Running nodes other than this one whose checks all pass, in order of preference. */
    healthyPeers(): string[];
    /** Of those, the ones with no check failing even once right now (./health-gate.ts). */
    moveTargets(): string[];
  };
}

/**
 * The node agent: joins "who should hold the VIP" (the election) to "how a node holds it"
 * (a VipHolder and the announcer). All holding decisions are made in converge(), which reads
 * the current facts and converges on them, so every trigger can simply call reconcile().
 */
export class Agent extends EventEmitter<AgentEvents> {
  private readonly netlink = Netlink.open();
  private readonly keys: ClusterKeys;
  private election: Election | null = null;
  private holder: VipHolder | null = null;
  private announcer: Announcer | null = null;
  private self: NodeRecord | null = null;
  private settings: ClusterSettings | null = null;
  private stopWatching: (() => void) | null = null;
  private periodic: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> | null = null;
  private reconcileAgain = false;
  private stopping = false;
  /** The lifetime bound the VIP's kernel lifetime was last set from. */
  private refreshedFor = -Infinity;
  private lastRefreshTimer: NodeJS.Timeout | undefined;
  private heldTerm: number | null = null;
  private ownMac: Buffer | null = null;
  private probeStartedAt: number | null = null;
  private probeTerm: number | null = null;
  /** DHCP: the address leased last time, asked for again so the VIP stays put. */
  private lastLeasedIp: string | null = null;
  private waitingReason: string | null = null;
  /** When this node last asked for a planned move away for health (monotonic ms). */
  private healthMoveAt = -Infinity;
  private heldWhileUnhealthy: string | null = null;
  /** Issue 14: priority and preemption as configured (a reload changes them), the cluster's cordons and priorities. */
  private preferenceConfig: PreferenceConfig;
  private announceConfig: Config['announce'];
  private preferences: PreferenceView | null = null;
  private electionStartedAt = 0;
  /** Peers seen running since this agent started: the start window waits only for the others. */
  private readonly seenRunning = new Set<string>();
  /** Since when this node has been healthy and uncordoned without a break (monotonic ms), or null. */
  private preferredSince: number | null = null;
  /** When this node last asked for a planned move for its cordon or to take the VIP back (monotonic ms). */
  private preferenceMoveAt = -Infinity;
  private heldWhileCordoned = false;
  private lastPreference = '';
  /** Whether the VIP is on this node, and why it came or went: feeds hooks and metrics. */
  private readonly lifecycle = new VipLifecycle((transition) => this.onTransition(transition));

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    private readonly store: EtcdStore,
    private readonly options: AgentOptions = {},
  ) {
    super();
    this.keys = new ClusterKeys(config.cluster);
    this.preferenceConfig = config.preference;
    this.announceConfig = config.announce;
  }

  /** The priority this node runs with: as stored (the API may have set it), else as configured. */
  get priority(): number {
    return this.preferences?.priorityOf(this.config.node.name, this.preferenceConfig.priority) ?? this.preferenceConfig.priority;
  }

  get cordon(): CordonState {
    return this.preferences?.cordonOf(this.config.node.name) ?? 'none';
  }

  /**
   * A reload's safe changes (issue 14): priority and preemption at once, announcements from
   * the next acquisition (a running refresh keeps its interval until then).
   */
  async applyReload(next: Pick<Config, 'preference' | 'announce'>): Promise<void> {
    const priorityChanged = next.preference.priority !== this.preferenceConfig.priority;
    this.preferenceConfig = next.preference;
    this.announceConfig = next.announce;
    if (priorityChanged) await setPriority(this.store, this.keys, this.config.node.name, next.preference.priority, 'config');
    this.reconcile();
  }

  /** Whether the VIP is on this node now. */
  get holding(): boolean {
    return this.lifecycle.holding;
  }

  /** Whether the VIP is on this node at `term`: a late hook failure for an earlier term is no reason to resign. */
  holdsTerm(term: number | null): boolean {
    return this.lifecycle.holding && this.lifecycle.heldTerm === term;
  }

  /** The current holder's term as this node sees it, null when the key is vacant. */
  get term(): number | null {
    return this.election?.leader()?.term ?? null;
  }

  /** DHCP mode: the lease on this node, if it has one. */
  dhcpLease(): { ip: string; expiresAt: string } | null {
    const state = this.holder instanceof DhcpVipHolder ? this.holder.dhcpState() : null;
    return state && state.state !== 'requesting' && state.lease ? { ip: state.lease.ip, expiresAt: state.lease.expiresAt } : null;
  }

  /** The address certificates should name for the VIP now: the configured one, or the last lease. */
  get vipForCertificates(): string | null {
    return this.config.vip.address ?? this.lastLeasedIp;
  }

  /**
   * Checks everything, then registers this node. Throws InputError (exit 2) if a check fails,
   * before anything on the node or in etcd has changed. The election starts with startElection().
   */
  async prepare(): Promise<NodeRecord> {
    const { config, logger } = this;
    const local = await checkLocalNetwork(config, this.netlink);
    this.self = {
      name: config.node.name,
      interface: config.node.interface,
      ip: local.managementAddress.address,
      prefixLength: local.managementAddress.prefixLength,
      mac: local.managementInterface.mac,
      mtu: local.managementInterface.mtu,
      registeredAt: new Date().toISOString(),
      ...(config.security.clusterKeyFile ? { signer: true } : {}),
    };
    const self = this.self;
    const membership = new Membership(this.store, this.keys);
    await this.untilEtcdAnswers(async () => {
      await membership.checkAgainstOthers(self, config.vip);
      this.settings = await membership.agreeOnSettings(config.vip);
      if (config.vip.mode === 'dhcp') {
        const published = await this.store.get(this.keys.dhcp);
        this.lastLeasedIp = published ? ((JSON.parse(published.value) as PublishedDhcpState).leasedIP ?? null) : null;
      }
    });
    // Every check passed: from here on the agent changes things.
    this.ownMac = parseMac(local.managementInterface.mac);
    this.holder = this.createHolder();
    if (local.leftoverVip) {
      await new VipAddress(this.netlink, local.managementInterface.index, local.leftoverVip.address).remove();
      logger.info({ address: local.leftoverVip.address }, 'removed a VIP left on this node by an earlier run');
    }
    await this.holder.removeStale();
    await membership.register(self);
    logger.info({ node: self, hwaddr: this.settings?.hwaddr }, 'registered');
    return self;
  }

  /** Joins the election and starts converging on its answer. */
  async startElection(): Promise<void> {
    const { config, logger } = this;
    const self = this.self;
    if (!self) throw new Error('prepare() first');
    await this.startPreferences();
    this.electionStartedAt = monotonicMs();
    this.election = new Election({
      store: this.store,
      keys: this.keys,
      self: { node: self.name, ip: self.ip, mac: this.settings?.hwaddr ?? self.mac },
      config: config.election,
      logger,
      onChange: () => this.reconcile(),
      releaseVip: (cause) => this.releaseForHandoff(cause),
      campaignDelayMs: () => this.campaignDelay(),
      holderAnswers: (holder) => this.holderAnswers(holder),
      observer: {
        won: (event: MoveEvent) => this.lifecycle.won(event),
        losing: (cause, reason) => this.lifecycle.losing(cause, reason),
        renewed: (kind, latencyMs, marginMs) => this.emit('renewed', kind, latencyMs, marginMs),
      },
    });
    this.stopWatching = Netlink.watchChanges(() => this.reconcile());
    this.periodic = setInterval(() => this.reconcile(), config.election.leaseRenewIntervalMs);
    await this.election.start();
    this.reconcile();
  }

  /** Publishes this node's configured priority and follows every node's cordon and priority (issue 14). */
  private async startPreferences(): Promise<void> {
    const warn = (what: string) => (error: Error) => this.logger.warn({ err: error.message }, what);
    if (this.config.security.clusterKeyFile) await this.grantNewKeyRanges().catch(warn('could not check the nodes role\'s etcd grants'));
    await setPriority(this.store, this.keys, this.config.node.name, this.preferenceConfig.priority, 'config').catch(warn('could not publish this node\'s priority'));
    const view = new PreferenceView(this.store, this.keys, () => this.onPreferenceChange(), warn('reading the cordons and priorities failed'));
    this.preferences = view;
    for (;;) {
      try {
        await view.start();
        return;
      } catch (error) {
        warn('could not follow the cordons and priorities; retrying')(error as Error);
        if (this.stopping) return;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  /** A signing node has etcd root: it brings a cluster made before issue 14 up to its key ranges, so no operator has to. */
  private async grantNewKeyRanges(): Promise<void> {
    const granted = await grantMissingSharedPermissions(this.store, this.keys);
    if (granted && granted.length > 0) this.logger.info({ keys: granted.map((permission) => permission.key) }, 'granted the nodes role the key ranges it lacked');
  }

  private onPreferenceChange(): void {
    const now = `${this.cordon}|${this.priority}`;
    if (now !== this.lastPreference) {
      if (this.lastPreference) this.logger.info({ cordon: this.cordon, priority: this.priority }, 'this node\'s cordon or priority changed');
      this.lastPreference = now;
      this.emit('preference');
    }
    this.reconcile();
  }

  /** Running peers whose checks pass, with their cordons and priorities. */
  private peerFacts(): PeerFacts[] {
    const health = this.options.health;
    if (!health) return [];
    const steady = new Set(health.moveTargets());
    const view = this.preferences;
    const peers = health.healthyPeers();
    for (const name of peers) this.seenRunning.add(name);
    return peers.map((name) => ({
      name,
      priority: view?.priorityOf(name) ?? 100,
      cordon: view?.cordonOf(name) ?? 'none',
      steady: steady.has(name),
    }));
  }

  /** Less preferred nodes wait before campaigning (./preference.ts). */
  private campaignDelay(): number {
    const view = this.preferences;
    if (!view) return 0;
    const self = this.config.node.name;
    const peers = this.peerFacts().filter((peer) => peer.cordon === 'none');
    const running = new Set(peers.map((peer) => peer.name));
    // A preferred node that ran since this agent started and is gone now has failed: not waited for.
    const starting = view.knownNodes().filter((name) => name !== self && !running.has(name) && !this.seenRunning.has(name) && view.cordonOf(name) === 'none');
    const { profile, leaseTtlSeconds } = this.config.election;
    return campaignDelayMs({
      priority: this.priority,
      competitors: peers.map((peer) => peer.priority),
      starting: starting.map((name) => view.priorityOf(name)),
      sinceStartMs: monotonicMs() - this.electionStartedAt,
      startWindowMs: 3 * leaseTtlSeconds * 1000,
      // Default profile: 250 ms, about a tenth of its failover; at 100 ms a busy 2-core lab host
      // let a less preferred node win once (its rival's campaign ran late).
      stepMs: profile === 'fast' ? 25 : 250,
    });
  }

  private createHolder(): VipHolder {
    const { config } = this;
    if (config.vip.mode === 'static') {
      return new StaticVipHolder(this.netlink, config.node.interface, this.ownMac!, config.vip.address);
    }
    const requested = config.vip.address;
    return new DhcpVipHolder({
      netlink: this.netlink,
      parentInterface: config.node.interface,
      vipMac: this.settings!.hwaddr!,
      requestedIp: () => requested ?? this.lastLeasedIp,
      releaseOnStop: config.vip.releaseOnStop,
      logger: this.logger,
      onDhcpChange: (state) => void this.publishDhcp(state),
    });
  }

  /** Retries while etcd cannot be reached; bad input is thrown at once. */
  private async untilEtcdAnswers(action: () => Promise<void>): Promise<void> {
    let warned = false;
    for (;;) {
      try {
        await action();
        return;
      } catch (error) {
        if (error instanceof InputError) throw error;
        if (!warned) this.logger.warn({ err: (error as Error).message, endpoints: this.config.etcd.endpoints }, 'waiting for etcd');
        warned = true;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  /** Runs converge() now, or once more after the run under way. */
  reconcile(): void {
    if (this.reconciling) {
      this.reconcileAgain = true;
      return;
    }
    this.reconciling = this.converge()
      .catch((error: Error) => this.logger.error({ err: error.message }, 'reconcile failed'))
      .finally(() => {
        this.reconciling = null;
        if (this.reconcileAgain && !this.stopping) {
          this.reconcileAgain = false;
          this.reconcile();
        }
      });
  }

  private async converge(): Promise<void> {
    const { election, holder } = this;
    if (!election || !holder || this.stopping) return;
    // A gate closed (a required acquire hook failed): drop the VIP, then resign, and stay out while it is closed.
    const gateClosed = this.options.holdGate?.() ?? null;
    if (gateClosed !== null) {
      if (election.isEligible) {
        await this.drop(gateClosed, false, 'released');
        await election.setEligible(false, gateClosed);
      }
      return;
    }
    const link = await this.netlink.interfaceByName(this.config.node.interface);
    if (!link?.usable && election.isEligible) {
      // Drop first, then resign: the VIP must be gone before anyone else can win it.
      await this.drop('management interface is down', false, 'link_down');
      await election.setEligible(false, link ? 'management interface is down' : 'management interface is gone');
      return;
    }
    if (link?.usable) await this.applyPreference(election);
    if (!link) return;

    const until = election.holdingUntil();
    if (until === null) {
      await this.drop('not the elected holder');
      return;
    }
    // The kernel removes the VIP by itself at the lease deadline if this agent dies.
    const bound = election.lifetimeBound();
    const validSeconds = validLifetimeSeconds(bound - monotonicMs());
    // Too close to the deadline to give the kernel a whole second: wait for the next renewal.
    if (validSeconds < 1) return;
    const present = await holder.isPresent();
    if (present && bound === this.refreshedFor) return;
    const term = election.leader()?.term ?? null;
    const address = holder.address();
    if (!present && address && election.needsProbe() && !(await this.segmentIsQuiet(term, address))) return;
    // Probing and netlink take time; the election's answer may change meanwhile. Hold only
    // if this node still holds the same term when the address is written.
    const result = await holder.hold(validSeconds, () => election.holdingUntil() !== null && election.leader()?.term === term, present);
    if (result.outcome === 'waiting') {
      // A held VIP is gone with the lease (DHCP) or the interface (static).
      this.lifecycle.removed(this.config.vip.mode === 'dhcp' ? 'dhcp_lost' : 'link_down', result.reason);
      if (this.waitingReason !== result.reason) this.logger.warn({ term, reason: result.reason }, 'elected, but cannot serve the VIP yet');
      this.waitingReason = result.reason;
      this.announcer?.close();
      this.announcer = null;
      return;
    }
    this.waitingReason = null;
    this.refreshedFor = bound;
    this.armLastRefresh(bound);
    if (result.outcome === 'added') {
      this.heldTerm = term;
      this.probeStartedAt = null;
      this.logger.info({ term, address: holder.address(), validSeconds }, 'holding the VIP');
      this.startAnnouncing(holder);
      // After the VIP is installed and the burst has begun: acquire hooks may rely on both.
      this.lifecycle.installed(term, holder.address() ?? '');
    }
  }

  private startAnnouncing(holder: VipHolder): void {
    const address = holder.address();
    if (!address) return;
    const answering = holder.answering();
    this.announcer?.close();
    const election = this.election;
    this.announcer = new Announcer({
      mayAnnounce: () => election?.holdingUntil() != null,
      interfaceName: answering.interfaceName,
      mac: answering.mac,
      address,
      burstCount: this.announceConfig.burstCount,
      burstIntervalMs: this.announceConfig.burstIntervalMs,
      refreshIntervalMs: this.announceConfig.refreshIntervalMs,
      logger: this.logger,
      onSent: () => this.emit('announced'),
    });
    this.announcer.start();
  }

  /**
   * Whether a silent holder's node still answers ARP (NS) for its own address. A window of
   * one renewal interval at least: a live kernel answers in well under a millisecond.
   */
  private async holderAnswers(holder: { node: string; ip: string }): Promise<boolean> {
    if (!this.ownMac || holder.ip === '') return true;
    const windowMs = Math.max(MIN_HOLDER_PROBE_MS, this.config.election.renewIntervalMs);
    const answers = await hostAnswers({ interfaceName: this.config.node.interface, ownMac: this.ownMac, address: holder.ip, windowMs });
    if (!answers) this.logger.info({ holder: holder.node, address: holder.ip, windowMs }, "the silent holder's node does not answer on the segment: no new window for it after etcd's leader change");
    return answers;
  }

  /**
   * True when no other host answers for the VIP. A frozen or killed former holder's kernel
   * keeps answering until the address's lifetime runs out; wait for that, up to
   * takeover.maxProbeWait, then take the VIP anyway and say why.
   */
  private async segmentIsQuiet(term: number | null, address: string): Promise<boolean> {
    const { probeWindowMs, maxProbeWaitMs } = this.config.takeover;
    if (probeWindowMs === 0 || !this.ownMac) return true;
    const now = monotonicMs();
    if (this.probeStartedAt === null || this.probeTerm !== term) {
      this.probeStartedAt = now;
      this.probeTerm = term;
    }
    const others = await probeForOtherHolders({
      interfaceName: this.config.node.interface,
      ownMac: this.ownMac,
      address,
      windowMs: probeWindowMs,
    });
    if (others.length === 0) return true;
    if (now - this.probeStartedAt >= maxProbeWaitMs) {
      this.logger.error({ answering: others, term }, 'another host still answers for the VIP; taking it anyway after takeover.maxProbeWait');
      return true;
    }
    if (now === this.probeStartedAt) this.logger.warn({ answering: others, term }, 'another host still answers for the VIP; waiting for it to let go');
    setTimeout(() => this.reconcile(), 20).unref();
    return false;
  }

  /**
   * Eligibility by health and cordon, the planned move away from an unhealthy or cordoned
   * holder, and taking the VIP back when preferred (./health-gate.ts, ./preference.ts).
   */
  private async applyPreference(election: Election): Promise<void> {
    const health = this.options.health;
    const unhealthy = health?.unhealthyReason() ?? null;
    const cordon = this.cordon;
    const peers = this.peerFacts();
    const decision = decideEligibility({ unhealthy, failed: health?.hasFailed() ?? false, holdsKey: election.ownsLeaderKey, cordon, peers });
    if (decision.eligible !== election.isEligible) {
      // A node leaving the election for its cordon removes the VIP first, as for a closed gate.
      if (!decision.eligible && election.ownsLeaderKey) await this.drop(decision.reason, false, 'released');
      await election.setEligible(decision.eligible, decision.reason);
    }
    this.noteHeld(decision, unhealthy, health?.healthyPeers().length ?? 0, health?.hasFailed() ?? false);
    if (decision.moveTo && decision.moveCause === 'health' && unhealthy) this.requestHealthMove(decision.moveTo, unhealthy);
    if (decision.moveTo && decision.moveCause === 'cordon') this.requestPreferenceMove(decision.moveTo, `cordon of ${this.config.node.name}`);
    this.applyPreempt(election, unhealthy === null && cordon === 'none' && decision.eligible, peers);
  }

  /** Logs once when the holder keeps the VIP while unhealthy or cordoned, and why. */
  private noteHeld(decision: PreferenceDecision, unhealthy: string | null, healthyPeers: number, failed: boolean): void {
    const stuck = decision.heldWhileUnhealthy ? unhealthy : null;
    if (stuck !== this.heldWhileUnhealthy) {
      const waiting = healthyPeers ? "the healthy nodes' checks have started failing too" : 'no running node is healthy to move it to';
      const why = decision.moveTo === null && failed ? waiting : 'its checks have not risen since the agent started';
      if (stuck) this.logger.warn({ reason: stuck, why }, 'holding the VIP while unhealthy');
      this.heldWhileUnhealthy = stuck;
    }
    if (decision.heldWhileCordoned !== this.heldWhileCordoned) {
      if (decision.heldWhileCordoned) this.logger.warn('holding the VIP while cordoned: no uncordoned healthy node runs to move it to');
      this.heldWhileCordoned = decision.heldWhileCordoned;
    }
  }

  /** Preemption (issue 14): the most preferred node asks, once its delay has passed, for a planned move to itself. */
  private applyPreempt(election: Election, preferred: boolean, peers: PeerFacts[]): void {
    const now = monotonicMs();
    if (!preferred) this.preferredSince = null;
    else this.preferredSince ??= now;
    const leader = election.ownsLeaderKey ? null : election.leader();
    const { preempt, preemptDelayMs } = this.preferenceConfig;
    const decision = decidePreempt({
      preempt,
      delayMs: preemptDelayMs,
      self: this.config.node.name,
      priority: this.priority,
      holder: leader ? { name: leader.node, priority: this.preferences?.priorityOf(leader.node) ?? 100 } : null,
      preferredForMs: this.preferredSince === null ? null : now - this.preferredSince,
      candidates: peers.filter((peer) => peer.cordon === 'none'),
    });
    if (decision.waitMs !== null) {
      // Nothing else may wake the converge loop when the delay ends.
      setTimeout(() => this.reconcile(), decision.waitMs + 10).unref();
      return;
    }
    if (decision.preempt && leader) {
      this.requestPreferenceMove(this.config.node.name, `preemption by ${this.config.node.name} (priority ${this.priority} over ${leader.node}'s ${this.preferences?.priorityOf(leader.node) ?? 100})`);
    }
  }

  /** A planned move asked for a cordon or a preemption: one request per lease TTL at most, as for health. */
  private requestPreferenceMove(to: string, requestedBy: string): void {
    const now = monotonicMs();
    const ttlMs = this.config.election.leaseTtlSeconds * 1000;
    if (now - this.preferenceMoveAt < ttlMs + 1000) return;
    this.preferenceMoveAt = now;
    const request = newMoveRequest(to, requestedBy);
    this.logger.info({ to, requestedBy, id: request.id }, 'asking for a planned move');
    void submitMove(this.store, this.keys, request, ttlMs).catch((error: Error) => {
      this.preferenceMoveAt = -Infinity;
      this.logger.warn({ err: error.message, to }, 'could not ask for a planned move');
    });
  }

  /**
   * Asks for a planned move through the move-request key, which this node, the holder, serves
   * like any other: the VIP leaves here before the target may take it. One request per lease
   * TTL at most; a request nobody served expires with its lease and is asked again.
   */
  private requestHealthMove(to: string, why: string): void {
    const now = monotonicMs();
    const ttlMs = this.config.election.leaseTtlSeconds * 1000;
    if (now - this.healthMoveAt < ttlMs + 1000) return;
    this.healthMoveAt = now;
    const request = { ...newMoveRequest(to, `vipd health on ${this.config.node.name}`), cause: 'health' as const, why };
    this.logger.warn({ to, reason: why, id: request.id }, 'unhealthy: asking for a planned move to a healthy node');
    void submitMove(this.store, this.keys, request, ttlMs).catch((error: Error) => {
      this.healthMoveAt = -Infinity;
      this.logger.warn({ err: error.message, to }, 'could not ask for a planned move away from this unhealthy node');
    });
  }

  /** A planned move: the VIP leaves this node before the election hands the key on. */
  private async releaseForHandoff(cause: 'handoff' | 'health'): Promise<void> {
    await this.reconciling;
    await this.drop('planned move', false, this.stopping ? 'stopping' : cause);
  }

  /**
   * A stopping holder hands the VIP to the most preferred healthy uncordoned node by a planned
   * move, as a strictly cordoned one would; bounded, after which it simply lets go.
   */
  private async handOffBeforeStopping(): Promise<void> {
    const election = this.election;
    if (!election?.ownsLeaderKey) return;
    const to = decideEligibility({ unhealthy: null, failed: false, holdsKey: true, cordon: 'strict', peers: this.peerFacts() }).moveTo;
    if (!to) return;
    const reason = `agent stopping on ${this.config.node.name}; planned move to ${to}`;
    this.logger.info({ to }, 'handing the VIP off before stopping');
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), this.config.election.leaseTtlSeconds * 1000 + 1000)));
    try {
      const handed = await Promise.race([election.handOffTo(to, reason), limit]);
      if (!handed) this.logger.warn({ to }, 'could not hand the VIP off before stopping; releasing it');
    } catch (error) {
      this.logger.warn({ err: (error as Error).message, to }, 'could not hand the VIP off before stopping; releasing it');
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The lifetime set at a renewal ends one whole second later, long before the fencing
   * deadline. If no renewal lands meanwhile (an etcd leader election holds them up), one more
   * refresh at the last whole second keeps the VIP until just before the deadline: without it,
   * the death of an etcd leader dropped the VIP from a holder nobody else could replace
   * (issue 18).
   */
  private armLastRefresh(bound: number): void {
    clearTimeout(this.lastRefreshTimer);
    const waitMs = lastWholeSecondAt(bound) - monotonicMs();
    if (waitMs <= 0) return;
    this.lastRefreshTimer = setTimeout(() => {
      if (this.refreshedFor !== bound || this.stopping) return;
      this.refreshedFor = -Infinity;
      this.reconcile();
    }, waitMs);
    this.lastRefreshTimer.unref();
  }

  /** `cause` says why for hooks and metrics; without it, the election's last word decides. */
  private async drop(reason: string, stopping = false, cause: TransitionCause | null = null): Promise<void> {
    if (!this.holder) return;
    this.announcer?.close();
    this.announcer = null;
    const removed = await this.holder.release(stopping);
    await this.holder.removeStale();
    this.refreshedFor = -Infinity;
    clearTimeout(this.lastRefreshTimer);
    this.waitingReason = null;
    if (removed) this.logger.info({ term: this.heldTerm, reason }, 'released the VIP');
    // Even when the kernel's lifetime, which ends before the fencing deadline, removed it first.
    this.lifecycle.removed(cause, reason);
  }

  /** Tells the listeners (metrics, hooks); they must return at once. */
  private onTransition(transition: VipTransition): void {
    const self = this.self;
    if (!self) return;
    this.emit('transition', {
      ...transition,
      node: self.name,
      nodeIP: self.ip,
      mac: this.settings?.hwaddr ?? self.mac,
      cluster: this.config.cluster,
      time: new Date().toISOString(),
    });
  }

  /** DHCP: every lease event is published for status on all nodes, then acted on. */
  private async publishDhcp(state: DhcpState): Promise<void> {
    if (state.state === 'bound') {
      this.lastLeasedIp = state.lease.ip;
      this.emit('leased', state.lease.ip);
    }
    const lease = state.state === 'requesting' ? null : state.lease;
    const published: PublishedDhcpState = {
      holder: this.config.node.name,
      hwaddr: this.settings?.hwaddr ?? '',
      requestedIP: this.config.vip.address ?? this.lastLeasedIp,
      state: state.state,
      reason: state.state === 'lost' ? state.reason : null,
      leasedIP: lease?.ip ?? null,
      leaseSeconds: lease?.leaseSeconds ?? null,
      boundAt: lease?.boundAt ?? null,
      renewAt: lease?.renewAt ?? null,
      rebindAt: lease?.rebindAt ?? null,
      expiresAt: lease?.expiresAt ?? null,
      updatedAt: new Date().toISOString(),
    };
    this.refreshedFor = -Infinity;
    this.reconcile();
    try {
      await this.store.put(this.keys.dhcp, JSON.stringify(published));
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, 'could not publish the DHCP lease state');
    }
  }

  /** SIGTERM/SIGINT: remove the VIP, then revoke the lease so another node takes over at once. The store stays open: its owner closes it. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.periodic);
    clearTimeout(this.lastRefreshTimer);
    this.stopWatching?.();
    await this.reconciling;
    await this.handOffBeforeStopping();
    await this.preferences?.stop();
    await this.drop('agent stopping', true, 'stopping').catch((error: Error) => this.logger.warn({ err: error.message }, 'could not remove the VIP'));
    await this.election?.stop(true);
    this.netlink.close();
  }
}
