import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { Config, EmbeddedEtcdConfig } from '../config/config';
import { EtcdStore } from '../store/etcd-store';
import { heartbeatFor } from '../config/etcd-timing';
import { pkiPaths } from './pki';

const RESTART_MIN_MS = 1000;
const RESTART_MAX_MS = 10_000;
/** A member that ran this long is healthy again: the next restart starts from the shortest delay. */
const STABLE_MS = 60_000;

/** etcd's command line for this node's member: TLS everywhere, clients and peers must present a cluster certificate. */
export function etcdArguments(config: Config, embedded: EmbeddedEtcdConfig): string[] {
  const pki = pkiPaths(embedded.pkiDir);
  const electionMs = config.etcd.electionTimeoutMs;
  return [
    '--name', config.node.name,
    '--data-dir', embedded.dataDir,
    '--listen-client-urls', embedded.clientURL,
    '--advertise-client-urls', embedded.clientURL,
    '--listen-peer-urls', embedded.peerURL,
    '--initial-advertise-peer-urls', embedded.peerURL,
    '--initial-cluster', embedded.initialCluster,
    '--initial-cluster-state', embedded.initialClusterState,
    '--initial-cluster-token', `vipd-${config.cluster}`,
    '--client-cert-auth',
    '--trusted-ca-file', pki.ca,
    '--cert-file', pki.serverCert,
    '--key-file', pki.serverKey,
    '--peer-client-cert-auth',
    '--peer-trusted-ca-file', pki.ca,
    '--peer-cert-file', pki.peerCert,
    '--peer-key-file', pki.peerKey,
    '--heartbeat-interval', String(heartbeatFor(electionMs)),
    '--election-timeout', String(electionMs),
    // A member that was cut off or frozen campaigns only if a quorum agrees the leader is
    // gone: without it, a thawed member's higher term deposes a healthy leader.
    '--pre-vote=true',
    // The fast profile rewrites the leader key 25 times a second.
    '--auto-compaction-mode', 'periodic',
    '--auto-compaction-retention', '1h',
    '--logger', 'zap',
    '--log-outputs', etcdLogPath(embedded),
  ];
}

export function etcdLogPath(embedded: EmbeddedEtcdConfig): string {
  return `${embedded.dataDir}.log`;
}

/**
 * This node's member of the cluster's own etcd, run the k3s way: a child of `vipd run`
 * under `setpriv --pdeathsig SIGTERM` (it never outlives the agent), restarted with
 * backoff if it dies. A member that joined as a learner asks the voters to promote it.
 */
export class EmbeddedEtcd {
  private child: ChildProcess | null = null;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartDelayMs = RESTART_MIN_MS;
  private readonly stderrTail: string[] = [];

  private constructor(
    private readonly config: Config,
    private readonly embedded: EmbeddedEtcdConfig,
    private readonly logger: Logger,
  ) {}

  /**
   * Starts the member and resolves once it answers a linearizable read, i.e. it is a voter
   * with quorum. Waits as long as that takes (logging why); stop() ends the wait.
   */
  static async start(config: Config, logger: Logger, options: { readyTimeoutMs?: number } = {}): Promise<EmbeddedEtcd> {
    const embedded = config.etcd.embedded;
    if (!embedded) throw new Error('EmbeddedEtcd.start needs etcd.embedded in the config');
    const etcd = new EmbeddedEtcd(config, embedded, logger);
    mkdirSync(dirname(embedded.dataDir), { recursive: true, mode: 0o700 });
    etcd.spawn();
    try {
      await etcd.untilReady(options.readyTimeoutMs ?? Infinity);
    } catch (error) {
      await etcd.stop();
      throw error;
    }
    return etcd;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  private spawn(): void {
    const binary = this.embedded.binary;
    const startedAt = Date.now();
    const child = spawn('setpriv', ['--pdeathsig', 'SIGTERM', '--', binary, ...etcdArguments(this.config, this.embedded)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    // etcd logs to its own file; stderr only carries what it says before its logger is up.
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      this.stderrTail.push(...text.split('\n').filter(Boolean));
      this.stderrTail.splice(0, Math.max(0, this.stderrTail.length - 10));
    });
    child.on('error', (error) => this.logger.error({ err: error.message, binary }, 'could not run etcd'));
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      this.child = null;
      if (this.stopping) return;
      if (Date.now() - startedAt > STABLE_MS) this.restartDelayMs = RESTART_MIN_MS;
      this.logger.error(
        { code, signal, restartInMs: this.restartDelayMs, log: etcdLogPath(this.embedded), stderr: this.stderrTail.slice(-3) },
        'the embedded etcd member exited; restarting it',
      );
      this.restartTimer = setTimeout(() => {
        if (!this.stopping) this.spawn();
      }, this.restartDelayMs);
      this.restartDelayMs = Math.min(this.restartDelayMs * 2, RESTART_MAX_MS);
    });
    this.logger.info({ pid: child.pid, clientURL: this.embedded.clientURL, log: etcdLogPath(this.embedded) }, 'started the embedded etcd member');
  }

  private connect(endpoints: string[]): EtcdStore {
    return new EtcdStore({ endpoints, tls: this.config.etcd.tls, callTimeoutMs: 2000 });
  }

  private async untilReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let waitingSince = Date.now();
    let lastReason = '';
    while (!this.stopping) {
      // A learner refuses client requests: a linearizable read that succeeds means a voter with quorum.
      const local = this.connect([this.embedded.clientURL]);
      try {
        await local.get(`/vipd-embedded-health/${this.config.node.name}`);
        this.logger.info({ clientURL: this.embedded.clientURL }, 'the embedded etcd member is serving');
        return;
      } catch (error) {
        lastReason = (error as Error).message;
      } finally {
        local.close();
      }
      if (this.embedded.clusterEndpoints.length > 0) {
        try {
          await this.promoteIfLearner();
        } catch (error) {
          lastReason = (error as Error).message;
        }
      }
      if (Date.now() > deadline) {
        throw new Error(`the embedded etcd member did not answer within ${Math.round(timeoutMs / 1000)} s (${lastReason}); see ${etcdLogPath(this.embedded)}`);
      }
      if (Date.now() - waitingSince > 5000) {
        this.logger.warn({ reason: lastReason, log: etcdLogPath(this.embedded) }, 'waiting for the embedded etcd member');
        waitingSince = Date.now();
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    throw new Error('stopped before the embedded etcd member was ready');
  }

  /** A learner serves no client requests, so the voters are asked to promote it. */
  private async promoteIfLearner(): Promise<void> {
    const voters = this.connect(this.embedded.clusterEndpoints);
    try {
      const members = await voters.listMembers();
      const self = members.find((member) => member.peerURLs.includes(this.embedded.peerURL));
      if (!self) throw new Error(`this node's etcd member (${this.embedded.peerURL}) is not in the cluster: it was removed`);
      if (!self.isLearner) return;
      // etcd refuses until the learner has caught up with the leader's log.
      await voters.promoteMember(self.id);
      this.logger.info({ member: self.id }, 'the embedded etcd member was promoted to a voter');
    } finally {
      voters.close();
    }
  }

  /** SIGTERM, and SIGKILL after 10 s: etcd flushes its WAL on SIGTERM. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
    this.child = null;
  }
}
