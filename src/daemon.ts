/**
 * The composition root of `vipd run`: builds the store, the agent, hooks, metrics and the API,
 * and wires them together. The agent knows none of the surfaces; they listen to its events
 * and read the store.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { Agent } from './agent/agent';
import { StoreApiBackend } from './api/store-backend';
import { buildApiServer, listenApiServer, type ApiServer } from './api/server';
import { EmbeddedEtcd } from './cluster/embedded-etcd';
import { JoinService } from './cluster/join-service';
import type { Config } from './config/config';
import { reloadedSections, unreloadableChange } from './config/reload';
import { InputError } from './config/schema-check';
import { hookEventOf } from './hooks/context';
import { HookRunner } from './hooks/runner';
import { AgentMetrics } from './metrics/metrics';
import { ClusterCa } from './security/ca';
import { CertificateIssuedAtJoin, ServingCertificates } from './security/certificates';
import { readClusterKeyFile } from './security/cluster-key';
import { TokenStore } from './security/tokens';
import { EtcdLeadership } from './election/etcd-leadership';
import { ClusterHealthView, HealthPublisher } from './health/cluster';
import { HealthMonitor } from './health/monitor';
import { steerDeadlineMs } from './store/etcd-endpoints';
import { EtcdStore } from './store/etcd-store';
import { EtcdHookHistory } from './store/hook-history';
import { recordAdminEvent } from './store/history';
import type { AdminEvent } from './store/records';
import { ClusterKeys, securityKeys } from './store/keys';
import { EtcdKeyValue } from './store/kv';
import type { NodeRecord } from './store/records';

/** How long a stopping agent waits for its hooks before killing them: inside the unit's TimeoutStopSec=10. */
const HOOK_DRAIN_MS = 8_000;

interface RunningApi {
  server: ApiServer;
  backend: StoreApiBackend;
  certificates: ServingCertificates;
}

export class Daemon {
  private readonly store: EtcdStore;
  private readonly keys: ClusterKeys;
  private readonly agent: Agent;
  private readonly hooks: HookRunner;
  private readonly metrics: AgentMetrics;
  private readonly join: JoinService;
  /** Null unless this node signs (src/security/cluster-key.ts). */
  private readonly clusterKey: Buffer | null;
  private etcd: EmbeddedEtcd | null = null;
  private api: RunningApi | null = null;
  private stopping = false;
  private etcdLeadership: EtcdLeadership | null = null;
  private etcdMembersTimer: NodeJS.Timeout | undefined;
  /** Built in start(): a check naming an unusable CA file is an InputError (exit 2). */
  private health: { monitor: HealthMonitor; publisher: HealthPublisher; view: ClusterHealthView } | null = null;

  /** The config running now: a reload replaces its reloadable parts (src/config/reload.ts). */
  private config: Config;
  private reloading: Promise<void> = Promise.resolve();

  constructor(
    config: Config,
    private readonly logger: Logger,
  ) {
    this.config = config;
    this.keys = new ClusterKeys(config.cluster);
    const windowMs = config.election.profile === 'fast' ? config.election.holdTimeoutMs : config.election.leaseTtlSeconds * 1000;
    this.store = new EtcdStore({
      endpoints: config.etcd.endpoints,
      tls: config.etcd.tls,
      callTimeoutMs: config.election.leaseTtlSeconds * 1000,
      steerAfterMs: steerDeadlineMs(windowMs, config.election.fencingMarginMs, config.election.profile),
      // Well inside the fast profile's hold window (80 of 200 ms), and past a normal answer.
      hedgeAfterMs: 2 * config.election.renewIntervalMs,
      onSteer: (from, to, reason) => logger.warn({ from, to, reason }, 'etcd calls moved to another member'),
    });
    let hooks: HookRunner | null = null;
    this.agent = new Agent(config, logger, this.store, {
      holdGate: () => hooks?.cooldownReason() ?? null,
      health: {
        // Until the checks are built, the node is unhealthy if it has any.
        unhealthyReason: () => (this.health ? this.health.monitor.unhealthyReason() : this.config.health.checks.length ? 'health checks not started' : null),
        hasFailed: () => this.health?.monitor.hasFailed() ?? false,
        healthyPeers: () => this.health?.view.healthyPeers(config.node.name) ?? [],
        moveTargets: () => this.health?.view.moveTargets(config.node.name) ?? [],
      },
    });
    const agent = this.agent;
    this.metrics = new AgentMetrics({
      node: config.node.name,
      cluster: config.cluster,
      mode: config.vip.mode,
      profile: config.election.profile,
      version: (require('../../package.json') as { version: string }).version,
      source: {
        holder: () => agent.holding,
        term: () => agent.term,
        priority: () => agent.priority,
        cordon: () => agent.cordon,
        dhcpLease: () => agent.dhcpLease(),
        health: () => {
          const monitor = this.health?.monitor;
          return monitor ? { record: monitor.snapshot(), unhealthySeconds: monitor.unhealthySeconds() } : { record: { node: config.node.name, healthy: this.config.health.checks.length === 0, failing: [], since: '', checks: [], updatedAt: '' }, unhealthySeconds: 0 };
        },
      },
    });
    hooks = new HookRunner({
      hooks: config.hooks,
      node: config.node.name,
      logger,
      history: new EtcdHookHistory(this.store, this.keys),
      metrics: this.metrics,
      holds: (term) => agent.holdsTerm(term),
      onCooldownChange: () => agent.reconcile(),
    });
    this.hooks = hooks;
    this.clusterKey = config.security.clusterKeyFile ? readClusterKeyFile(config.security.clusterKeyFile) : null;
    this.join = new JoinService(config, logger, this.clusterKey);
    this.wire();
  }

  private wire(): void {
    const { agent, metrics, hooks } = this;
    agent.on('renewed', (kind, latencyMs, marginMs) => metrics.renewal(kind, latencyMs, marginMs));
    agent.on('announced', () => metrics.announcementSent());
    agent.on('transition', (transition) => {
      metrics.transition(transition.cause);
      if (!hooks.hasHooks) return;
      hooks.dispatch({
        event: hookEventOf(transition.cause),
        cause: transition.cause,
        reason: transition.reason,
        vip: transition.vip,
        node: transition.node,
        nodeIP: transition.nodeIP,
        mac: transition.mac,
        term: transition.term,
        previousHolder: transition.previousHolder,
        cluster: transition.cluster,
        time: transition.time,
      });
    });
    agent.on('leased', (ip) => void this.api?.certificates.setVip(ip));
    agent.on('transition', () => this.etcdLeadership?.nudge());
  }

  /**
   * Embedded etcd: the store learns the other members, so its calls can move to them, and
   * the holder keeps etcd's leadership on another node (src/election/etcd-leadership.ts).
   */
  private startEtcdLeadership(ownEndpoint: string): void {
    const discover = (): void =>
      void this.store.discoverMembers().then(
        (endpoints) => this.logger.debug({ endpoints }, 'etcd members this agent may use'),
        (error: Error) => this.logger.warn({ err: error.message }, 'could not list the etcd members'),
      );
    discover();
    this.etcdMembersTimer = setInterval(discover, 30_000);
    this.etcdLeadership = new EtcdLeadership({
      store: this.store,
      ownEndpoint,
      holding: () => this.agent.holding,
      intervalMs: 1000,
      callTimeoutMs: 500,
      logger: this.logger,
    });
    this.etcdLeadership.start();
  }

  /**
   * Checks everything, then starts. Resolves once running; throws InputError (exit 2) if a
   * check fails, before anything on the node or in etcd has changed.
   */
  async start(): Promise<void> {
    HookRunner.check(this.config.hooks);
    const monitor = this.buildHealthMonitor();
    // The embedded store (vipd init/join) runs as this process's child, and is up before the agent connects.
    if (this.config.etcd.embedded) this.etcd = await EmbeddedEtcd.start(this.config, this.logger);
    if (this.stopping) return;
    const self = await this.agent.prepare();
    await this.startHealth(monitor);
    if (this.stopping) return;
    if (this.config.etcd.embedded) this.startEtcdLeadership(this.config.etcd.embedded.clientURL);
    // Issuing the certificate and building the server block the event loop for a while:
    // do it before joining the election, not while holding the VIP on a fresh deadline.
    if (this.config.api.enabled) await this.startApi(self);
    if (this.stopping) return;
    await this.agent.startElection();
  }

  /** Throws InputError (exit 2) when a check names a file it cannot use, before anything has changed. */
  private buildHealthMonitor(config = this.config): HealthMonitor {
    return new HealthMonitor({
      node: config.node.name,
      checks: config.health.checks,
      onChange: (record) => {
        this.logger[record.healthy ? 'info' : 'warn']({ healthy: record.healthy, failing: record.failing }, record.healthy ? 'health checks pass' : 'health checks fail');
        this.health?.publisher.publish();
        this.agent.reconcile();
      },
      onProbe: (check, result) => this.metrics.healthProbe(check, result.ok),
      onWavering: () => this.health?.publisher.publish(),
    });
  }

  /** Publishes this node's health, starts its checks and follows every node's, before the election starts. */
  private async startHealth(monitor: HealthMonitor): Promise<void> {
    const warn = (what: string) => (error: Error) => this.logger.warn({ err: error.message }, what);
    // The monitor as it is now: a reload may replace it.
    const publisher = new HealthPublisher(this.store, this.keys, () => (this.health?.monitor ?? monitor).snapshot(), warn('could not publish this node\'s health'));
    const view = new ClusterHealthView(this.store, this.keys, () => this.agent.reconcile(), warn('reading the cluster\'s health failed'));
    this.health = { monitor, publisher, view };
    publisher.start();
    monitor.start();
    // etcd answered a moment ago (prepare); if it stops now, the election waits for it anyway.
    const startView = async (): Promise<void> => {
      try {
        await view.start();
      } catch (error) {
        warn('could not follow the cluster\'s health; retrying')(error as Error);
        if (!this.stopping) setTimeout(() => void startView(), 1000).unref();
      }
    };
    await startView();
  }

  /**
   * The HTTPS API and dashboard, on every address of this node (the VIP included whenever
   * this node holds it), with a certificate from the cluster CA or the uploaded one.
   */
  private async startApi(self: NodeRecord): Promise<void> {
    const { config, logger } = this;
    const kv = new EtcdKeyValue(this.store);
    const keys = securityKeys(this.keys);
    const issuedAtJoin = config.security.servingCertificate;
    const ca = !this.clusterKey && issuedAtJoin
      ? new CertificateIssuedAtJoin(issuedAtJoin)
      : await ClusterCa.loadOrCreate(kv, keys.ca, { cluster: config.cluster, clusterKey: this.clusterKey });
    const certificates = new ServingCertificates({
      kv,
      keys,
      ca,
      node: { name: self.name, ip: self.ip },
      vip: this.agent.vipForCertificates ?? self.ip,
      fqdn: config.api.fqdn,
      logger,
    });
    await certificates.start();
    const backend = new StoreApiBackend({
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

  /**
   * SIGHUP (issue 14): re-reads the config. Safe changes apply in place; a file that is
   * invalid, or that changes what needs a restart, is refused naming the field, and the
   * running config stays. Every reload, applied or refused, is recorded in the history.
   */
  reload(load: () => Config): Promise<void> {
    this.reloading = this.reloading.then(() => this.reloadOnce(load));
    return this.reloading;
  }

  private async reloadOnce(load: () => Config): Promise<void> {
    if (this.stopping) return;
    const node = this.config.node.name;
    let event: AdminEvent;
    try {
      const next = load();
      const refusal = unreloadableChange(this.config, next);
      if (refusal) throw new InputError('', refusal);
      HookRunner.check(next.hooks);
      const sections = reloadedSections(this.config, next);
      await this.apply(next);
      event = { node, action: 'reload', message: sections.length ? `reloaded the config: ${sections.join(', ')} changed` : 'reloaded the config: nothing changed', time: new Date().toISOString() };
      this.logger.info({ changed: sections }, 'reloaded the config');
      this.metrics.reloaded(true);
    } catch (error) {
      if (!(error instanceof InputError)) this.logger.error({ err: (error as Error).message }, 'reload failed');
      const message = `refused the new config, kept the running one: ${(error as Error).message}`;
      event = { node, action: 'reload-refused', message, time: new Date().toISOString() };
      this.logger.error({ err: (error as Error).message }, 'refused the new config; the running one stays');
      this.metrics.reloaded(false);
    }
    await recordAdminEvent(this.store, this.keys, event).catch((error: Error) => this.logger.warn({ err: error.message }, 'could not record the reload in the history'));
  }

  /** Applies a checked config's reloadable parts (log level, hooks, health checks, announcements, priority, preemption). */
  private async apply(next: Config): Promise<void> {
    const health = this.health;
    if (health && !isDeepStrictEqual(next.health, this.config.health)) {
      // Built before anything changes: a check naming a file it cannot use refuses the whole reload.
      const monitor = this.buildHealthMonitor(next);
      monitor.adopt(health.monitor);
      health.monitor.stop();
      health.monitor = monitor;
      monitor.start();
      health.publisher.publish();
    }
    this.logger.level = next.logLevel;
    this.hooks.replaceHooks(next.hooks);
    this.config = { ...this.config, logLevel: next.logLevel, hooks: next.hooks, health: next.health, announce: next.announce, preference: next.preference };
    await this.agent.applyReload(next);
  }

  /** The agent first: it drops the VIP and revokes its lease while etcd still answers. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.etcdMembersTimer);
    this.etcdLeadership?.stop();
    this.health?.monitor.stop();
    await this.reloading;
    await this.agent.stop();
    await this.health?.view.stop();
    if (this.api) {
      // Open event streams would hold close() forever: give them a moment, not more.
      await Promise.race([this.api.server.close().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
      this.api.certificates.stop();
      await this.api.backend.stop();
    }
    // The release hooks began when the VIP went; let them finish (bounded) while etcd, which records them, is still open.
    await this.hooks.drain(HOOK_DRAIN_MS);
    this.store.close();
    this.join.close();
    await this.etcd?.stop();
    this.logger.info('stopped');
  }
}
