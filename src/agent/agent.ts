import type { Logger } from 'pino';
import type { Config } from '../config/config';
import { InputError } from '../config/schema-check';
import { Election } from '../election/election';
import { EtcdStore } from '../election/etcd-store';
import { monotonicMs } from '../election/fencing';
import { ClusterKeys } from '../election/keys';
import { Membership, type NodeRecord } from '../election/membership';
import { Announcer } from '../holding/announcer';
import { parseMac } from '../holding/codecs/mac';
import { probeForOtherHolders } from '../holding/conflict-probe';
import { Netlink } from '../holding/netlink';
import { validLifetimeSeconds, VipAddress } from '../holding/vip-address';
import { checkLocalNetwork } from './preflight';

/**
 * The node agent: joins "who should hold the VIP" (the election) to "how a node holds it"
 * (address and announcements). All holding decisions are made in reconcile(), which reads
 * the current facts and converges on them, so every trigger can simply call it.
 */
export class Agent {
  private readonly netlink = Netlink.open();
  private readonly store: EtcdStore;
  private readonly keys: ClusterKeys;
  private election: Election | null = null;
  private announcer: Announcer | null = null;
  private self: NodeRecord | null = null;
  private stopWatching: (() => void) | null = null;
  private periodic: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> | null = null;
  private reconcileAgain = false;
  private stopping = false;
  /** The fencing deadline the VIP's kernel lifetime was last set from. */
  private refreshedFor = -Infinity;
  private heldTerm: number | null = null;
  private ownMac: Buffer | null = null;
  private probeStartedAt: number | null = null;
  private probeTerm: number | null = null;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
  ) {
    this.keys = new ClusterKeys(config.cluster);
    this.store = new EtcdStore({
      endpoints: config.etcd.endpoints,
      tls: config.etcd.tls,
      callTimeoutMs: config.election.leaseTtlSeconds * 1000,
    });
  }

  /**
   * Checks everything, then starts. Resolves once running; throws InputError (exit 2) if a
   * check fails, before anything on the node or in etcd has changed.
   */
  async start(): Promise<void> {
    const { config, logger } = this;
    const local = await checkLocalNetwork(config, this.netlink);
    this.self = {
      name: config.node.name,
      interface: config.node.interface,
      ip: local.managementAddress.address,
      prefixLength: local.managementAddress.prefixLength,
      mac: local.managementInterface.mac,
      registeredAt: new Date().toISOString(),
    };
    const membership = new Membership(this.store, this.keys);
    await this.untilEtcdAnswers(async () => {
      await membership.checkAgainstOthers(this.self as NodeRecord, config.vip.address);
      await membership.agreeOnSettings({ address: config.vip.address, mode: config.vip.mode });
    });
    // Every check passed: from here on the agent changes things.
    if (local.leftoverVip) {
      await this.vip(local.managementInterface.index).remove();
      logger.info({ address: config.vip.address }, 'removed a VIP left on this node by an earlier run');
    }
    await membership.register(this.self);
    logger.info({ node: this.self }, 'registered');

    this.announcer = new Announcer({
      interfaceName: config.node.interface,
      mac: parseMac(local.managementInterface.mac),
      address: config.vip.address,
      burstCount: config.announce.burstCount,
      burstIntervalMs: config.announce.burstIntervalMs,
      refreshIntervalMs: config.announce.refreshIntervalMs,
      logger,
    });
    this.ownMac = parseMac(local.managementInterface.mac);
    this.election = new Election({
      store: this.store,
      keys: this.keys,
      self: { node: this.self.name, ip: this.self.ip, mac: this.self.mac },
      config: config.election,
      logger,
      onChange: () => this.reconcile(),
      releaseVip: () => this.releaseForHandoff(),
    });
    this.stopWatching = Netlink.watchChanges(() => this.reconcile());
    this.periodic = setInterval(() => this.reconcile(), config.election.leaseRenewIntervalMs);
    await this.election.start();
    this.reconcile();
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

  private vip(interfaceIndex: number): VipAddress {
    return new VipAddress(this.netlink, interfaceIndex, this.config.vip.address);
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
    const election = this.election;
    if (!election || this.stopping) return;
    const link = await this.netlink.interfaceByName(this.config.node.interface);
    if (!link?.usable && election.isEligible) {
      // Drop first, then resign: the VIP must be gone before anyone else can win it.
      if (link) await this.drop(link.index, 'management interface is down');
      await election.setEligible(false, link ? 'management interface is down' : 'management interface is gone');
      return;
    }
    if (link?.usable && !election.isEligible) await election.setEligible(true, 'management interface is up');
    if (!link) return;

    const until = election.holdingUntil();
    const vip = this.vip(link.index);
    if (until === null) {
      await this.drop(link.index, 'not the elected holder');
      return;
    }
    // The kernel removes the VIP by itself at the lease deadline if this agent dies.
    const bound = election.lifetimeBound();
    const validSeconds = validLifetimeSeconds(bound - monotonicMs());
    // Too close to the deadline to give the kernel a whole second: wait for the next renewal.
    if (validSeconds < 1) return;
    const present = await vip.isPresent();
    if (present && bound === this.refreshedFor) return;
    const term = election.leader()?.term ?? null;
    if (!present && election.needsProbe() && !(await this.segmentIsQuiet(term))) return;
    await vip.install(validSeconds);
    this.refreshedFor = bound;
    if (!present) {
      this.heldTerm = term;
      this.probeStartedAt = null;
      this.logger.info({ term, address: this.config.vip.address, validSeconds }, 'holding the VIP');
      this.announcer?.start();
    }
  }

  /**
   * True when no other host answers for the VIP. A frozen or killed former holder's kernel
   * keeps answering until the address's lifetime runs out; wait for that, up to
   * takeover.maxProbeWait, then take the VIP anyway and say why.
   */
  private async segmentIsQuiet(term: number | null): Promise<boolean> {
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
      address: this.config.vip.address,
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
    const link = await this.netlink.interfaceByName(this.config.node.interface);
    if (link) await this.drop(link.index, 'planned move');
  }

  private async drop(interfaceIndex: number, reason: string): Promise<void> {
    const removed = await this.vip(interfaceIndex).remove();
    this.announcer?.stop();
    this.refreshedFor = -Infinity;
    if (removed) this.logger.info({ term: this.heldTerm, reason }, 'released the VIP');
  }

  /** SIGTERM/SIGINT: remove the VIP, then revoke the lease so another node takes over at once. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.periodic);
    this.stopWatching?.();
    await this.reconciling;
    const link = await this.netlink.interfaceByName(this.config.node.interface).catch(() => null);
    if (link) await this.drop(link.index, 'agent stopping').catch(() => undefined);
    this.announcer?.close();
    await this.election?.stop(true);
    this.store.close();
    this.netlink.close();
    this.logger.info('stopped');
  }
}
