import type { PublishedDhcpState } from '../store/records';
import type { Logger } from 'pino';
import type { Config } from '../config/config';
import { InputError } from '../config/schema-check';
import { Election } from '../election/election';
import { EtcdStore } from '../store/etcd-store';
import { monotonicMs } from '../clock';
import { ClusterKeys } from '../store/keys';
import { Membership } from '../store/membership';
import { type ClusterSettings, type NodeRecord } from '../store/records';
import { Announcer } from '../holding/announcer';
import { parseMac } from '../holding/codecs/mac';
import { probeForOtherHolders } from '../holding/conflict-probe';
import type { DhcpState } from '../holding/dhcp-client';
import { DhcpVipHolder, StaticVipHolder, type VipHolder } from '../holding/holders';
import { Netlink } from '../holding/netlink';
import { validLifetimeSeconds, VipAddress } from '../holding/vip-address';
import { ClusterCa } from '../security/ca';
import { ServingCertificates } from '../security/certificates';
import { EtcdKeyValue } from '../store/kv';
import { securityKeys } from '../store/keys';
import { TokenStore } from '../security/tokens';
import { buildApiServer, listenApiServer, type ApiServer } from '../api/server';
import { AgentMetrics } from '../metrics/metrics';
import { AgentApiBackend } from '../api/store-backend';
import { hookEventOf } from '../hooks/context';
import { VipLifecycle, type VipTransition } from '../hooks/lifecycle';
import { HookRunner } from '../hooks/runner';
import { EtcdHookHistory } from '../store/hook-history';
import { type TransitionCause } from '../store/records';
import { checkLocalNetwork } from '../holding/preflight';
import type { JoinHandler } from '../cluster/join-service';


/** How long a stopping agent waits for its hooks before killing them: inside the unit's TimeoutStopSec=10. */
const HOOK_DRAIN_MS = 8_000;

/**
 * The node agent: joins "who should hold the VIP" (the election) to "how a node holds it"
 * (a VipHolder and the announcer). All holding decisions are made in converge(), which reads
 * the current facts and converges on them, so every trigger can simply call reconcile().
 */
export class Agent {
  private readonly netlink = Netlink.open();
  private readonly store: EtcdStore;
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
  private heldTerm: number | null = null;
  private ownMac: Buffer | null = null;
  private probeStartedAt: number | null = null;
  private probeTerm: number | null = null;
  /** DHCP: the address leased last time, asked for again so the VIP stays put. */
  private lastLeasedIp: string | null = null;
  private waitingReason: string | null = null;
  private api: { server: ApiServer; backend: AgentApiBackend; certificates: ServingCertificates } | null = null;
  /** Whether the VIP is on this node, and why it came or went: feeds hooks and metrics. */
  private readonly lifecycle = new VipLifecycle((transition) => this.onTransition(transition));
  private readonly hooks: HookRunner;
  private readonly metrics: AgentMetrics;

  /** `join`: answers `vipd join` on the API port (the cluster's JoinService); null serves no joins. */
  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    private readonly join: JoinHandler | null = null,
  ) {
    this.keys = new ClusterKeys(config.cluster);
    this.store = new EtcdStore({
      endpoints: config.etcd.endpoints,
      tls: config.etcd.tls,
      callTimeoutMs: config.election.leaseTtlSeconds * 1000,
    });
    this.metrics = new AgentMetrics({
      node: config.node.name,
      cluster: config.cluster,
      mode: config.vip.mode,
      profile: config.election.profile,
      version: (require('../../../package.json') as { version: string }).version,
      source: {
        holder: () => this.lifecycle.holding,
        term: () => this.election?.leader()?.term ?? null,
        dhcpLease: () => {
          const state = this.holder instanceof DhcpVipHolder ? this.holder.dhcpState() : null;
          return state && state.state !== 'requesting' && state.lease ? { ip: state.lease.ip, expiresAt: state.lease.expiresAt } : null;
        },
      },
    });
    this.hooks = new HookRunner({
      hooks: config.hooks,
      node: config.node.name,
      logger,
      history: new EtcdHookHistory(this.store, this.keys),
      metrics: this.metrics,
      holds: (term) => this.lifecycle.holding && this.lifecycle.heldTerm === term,
      onCooldownChange: () => this.reconcile(),
    });
  }

  /**
   * Checks everything, then starts. Resolves once running; throws InputError (exit 2) if a
   * check fails, before anything on the node or in etcd has changed.
   */
  async start(): Promise<void> {
    const { config, logger } = this;
    HookRunner.check(config.hooks);
    const local = await checkLocalNetwork(config, this.netlink);
    this.self = {
      name: config.node.name,
      interface: config.node.interface,
      ip: local.managementAddress.address,
      prefixLength: local.managementAddress.prefixLength,
      mac: local.managementInterface.mac,
      mtu: local.managementInterface.mtu,
      registeredAt: new Date().toISOString(),
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

    this.election = new Election({
      store: this.store,
      keys: this.keys,
      self: { node: self.name, ip: self.ip, mac: this.settings?.hwaddr ?? self.mac },
      config: config.election,
      logger,
      onChange: () => this.reconcile(),
      releaseVip: () => this.releaseForHandoff(),
      observer: {
        won: (event) => this.lifecycle.won(event),
        losing: (cause, reason) => this.lifecycle.losing(cause, reason),
        renewed: (kind, latencyMs, marginMs) => this.metrics.renewal(kind, latencyMs, marginMs),
      },
    });
    this.stopWatching = Netlink.watchChanges(() => this.reconcile());
    this.periodic = setInterval(() => this.reconcile(), config.election.leaseRenewIntervalMs);
    // Issuing the certificate and building the server block the event loop for a while:
    // do it before joining the election, not while holding the VIP on a fresh deadline.
    if (config.api.enabled) await this.startApi(self);
    await this.election.start();
    this.reconcile();
  }

  /**
   * The HTTPS API and dashboard, on every address of this node (the VIP included whenever
   * this node holds it), with a certificate from the cluster CA or the uploaded one.
   */
  private async startApi(self: NodeRecord): Promise<void> {
    const { config, logger } = this;
    const kv = new EtcdKeyValue(this.store);
    const keys = securityKeys(this.keys);
    const ca = await ClusterCa.loadOrCreate(kv, keys.ca, { cluster: config.cluster });
    const certificates = new ServingCertificates({
      kv,
      keys,
      ca,
      node: { name: self.name, ip: self.ip },
      vip: config.vip.address ?? this.lastLeasedIp ?? self.ip,
      fqdn: config.api.fqdn,
      logger,
    });
    await certificates.start();
    const backend = new AgentApiBackend({
      store: this.store,
      keys: this.keys,
      config,
      self: { name: self.name, ip: self.ip },
      ca,
      certificates,
      logger,
    });
    await backend.start();
    const server = buildApiServer({ backend, tokens: new TokenStore(kv, keys), certificates, tls: certificates.tlsOptions(), logger, metrics: this.metrics, join: this.join });
    certificates.attach(server.server);
    const address = await listenApiServer(server, { port: config.api.port });
    this.api = { server, backend, certificates };
    logger.info({ port: address.port, caFingerprint: ca.caFingerprint(), fqdn: config.api.fqdn }, 'serving the HTTPS API and dashboard');
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
    // A required acquire hook failed: drop the VIP, then resign, and stay out until the cooldown ends.
    const hookFailure = this.hooks.cooldownReason();
    if (hookFailure !== null) {
      if (election.isEligible) {
        await this.drop(hookFailure, false, 'released');
        await election.setEligible(false, hookFailure);
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
    if (link?.usable && !election.isEligible) await election.setEligible(true, 'management interface is up');
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
      burstCount: this.config.announce.burstCount,
      burstIntervalMs: this.config.announce.burstIntervalMs,
      refreshIntervalMs: this.config.announce.refreshIntervalMs,
      logger: this.logger,
      onSent: () => this.metrics.announcementSent(),
    });
    this.announcer.start();
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

  /** A planned move: the VIP leaves this node before the election hands the key on. */
  private async releaseForHandoff(): Promise<void> {
    await this.reconciling;
    await this.drop('planned move', false, 'handoff');
  }

  /** `cause` says why for hooks and metrics; without it, the election's last word decides. */
  private async drop(reason: string, stopping = false, cause: TransitionCause | null = null): Promise<void> {
    if (!this.holder) return;
    this.announcer?.close();
    this.announcer = null;
    const removed = await this.holder.release(stopping);
    await this.holder.removeStale();
    this.refreshedFor = -Infinity;
    this.waitingReason = null;
    if (removed) this.logger.info({ term: this.heldTerm, reason }, 'released the VIP');
    // Even when the kernel's lifetime, which ends before the fencing deadline, removed it first.
    this.lifecycle.removed(cause, reason);
  }

  /** Counts the transition and queues the hooks; returns at once (hooks run in the background). */
  private onTransition(transition: VipTransition): void {
    this.metrics.transition(transition.cause);
    if (!this.hooks.hasHooks || !this.self) return;
    this.hooks.dispatch({
      event: hookEventOf(transition.cause),
      cause: transition.cause,
      reason: transition.reason,
      vip: transition.vip,
      node: this.self.name,
      nodeIP: this.self.ip,
      mac: this.settings?.hwaddr ?? this.self.mac,
      term: transition.term,
      previousHolder: transition.previousHolder,
      cluster: this.config.cluster,
      time: new Date().toISOString(),
    });
  }

  /** DHCP: every lease event is published for status on all nodes, then acted on. */
  private async publishDhcp(state: DhcpState): Promise<void> {
    if (state.state === 'bound') {
      this.lastLeasedIp = state.lease.ip;
      void this.api?.certificates.setVip(state.lease.ip);
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

  /** SIGTERM/SIGINT: remove the VIP, then revoke the lease so another node takes over at once. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.periodic);
    this.stopWatching?.();
    await this.reconciling;
    await this.drop('agent stopping', true, 'stopping').catch((error: Error) => this.logger.warn({ err: error.message }, 'could not remove the VIP'));
    await this.election?.stop(true);
    if (this.api) {
      // Open event streams would hold close() forever: give them a moment, not more.
      await Promise.race([this.api.server.close().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
      this.api.certificates.stop();
      await this.api.backend.stop();
    }
    // The release hooks began when the VIP went; let them finish (bounded) while etcd, which records them, is still open.
    await this.hooks.drain(HOOK_DRAIN_MS);
    this.store.close();
    this.netlink.close();
    this.logger.info('stopped');
  }
}
