/**
 * Prometheus metrics for one agent, served at /metrics. Every agent has its own Registry
 * (never prom-client's global one), so tests and several agents in one process stay apart.
 * Label values come from small fixed sets: no node names, reasons or addresses as labels,
 * except the leased DHCP address, of which there is one.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { HOOK_ATTEMPT_FAILURES, TRANSITION_CAUSES, type AttemptFailure, type HookEvent, type HookRunRecord, type NodeHealthRecord, type TransitionCause } from '../store/records';
import { HOOK_EVENTS } from '../config/config';

/** What the metrics read at scrape time rather than being told. */
export interface MetricsSource {
  /** Whether the VIP is on this node now. */
  holder(): boolean;
  /** The current holder's term as this node sees it, null when the key is vacant. */
  term(): number | null;
  /** DHCP mode: the lease on this node, if it has one. */
  dhcpLease(): { ip: string; expiresAt: string } | null;
  /** This node's health checks (issue 13), when the agent runs any. */
  health?(): { record: NodeHealthRecord; unhealthySeconds: number };
  /** The priority this node runs with (issue 14). */
  priority?(): number;
  /** Whether this node is cordoned, and how strictly. */
  cordon?(): 'none' | 'cordoned' | 'strict';
}

export interface AgentMetricsOptions {
  node: string;
  cluster: string;
  mode: 'static' | 'dhcp';
  profile: 'default' | 'fast';
  version: string;
  source: MetricsSource;
  /** prom-client's process and Node.js metrics (CPU, memory, event-loop lag); default true. */
  defaultMetrics?: boolean;
}

export type RenewalKind = 'lease' | 'hold';

/** 1 ms to 2 s: a LAN etcd answers in a few ms; the fast profile's whole hold is 200 ms. */
export const RENEWAL_BUCKETS_SECONDS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2];

/**
 * prom-client samples event-loop delay with a libuv timer at this period (its default, 10 ms,
 * wakes an idle agent 100 times a second: about half a percent of a core on its own).
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

const HOOK_OUTCOMES: ReadonlyArray<HookRunRecord['outcome']> = ['ok', 'failed', 'dropped'];

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly transitions: Counter<'reason'>;
  private readonly announcements: Counter;
  private readonly lastAnnouncement: Gauge;
  private readonly renewals: Histogram<'kind'>;
  private readonly margin: Gauge;
  private readonly hookRuns: Counter<'event' | 'outcome'>;
  private readonly hookAttemptFailures: Counter<'event' | 'failure'>;
  private readonly healthProbes: Counter<'check' | 'result'>;
  private readonly reloads: Counter<'result'>;

  constructor(options: AgentMetricsOptions) {
    const registers = [this.registry];
    const source = options.source;
    // Kept across scrapes: a vacant key shows the last term rather than dropping to 0.
    let lastTerm: number | null = null;

    new Gauge({
      name: 'vipd_info',
      help: 'Always 1; labels say which node, cluster, mode and profile this agent runs.',
      labelNames: ['node', 'cluster', 'mode', 'profile', 'version'],
      registers,
    }).set({ node: options.node, cluster: options.cluster, mode: options.mode, profile: options.profile, version: options.version }, 1);

    new Gauge({
      name: 'vipd_holder',
      help: '1 while the VIP is on this node, else 0.',
      registers,
      collect() {
        this.set(source.holder() ? 1 : 0);
      },
    });

    new Gauge({
      name: 'vipd_term',
      help: 'The term (fencing number) of the current holder as this node sees it; the last one seen while the key is vacant.',
      registers,
      collect() {
        const term = source.term();
        if (term !== null) lastTerm = term;
        this.set(lastTerm ?? 0);
      },
    });

    this.transitions = new Counter({
      name: 'vipd_transitions_total',
      help: 'Times the VIP came to or left this node, by reason: acquired, released, fenced, lease_lost, handoff, link_down, stopping, dhcp_lost, health.',
      labelNames: ['reason'],
      registers,
    });
    // Every reason from zero, so rate() and increase() see the first one.
    for (const reason of TRANSITION_CAUSES) this.transitions.inc({ reason }, 0);

    this.announcements = new Counter({
      name: 'vipd_announcements_total',
      help: 'Gratuitous ARP / unsolicited NA frames sent for the VIP.',
      registers,
    });
    this.lastAnnouncement = new Gauge({
      name: 'vipd_last_announcement_timestamp_seconds',
      help: 'Unix time of the last announcement frame sent; 0 if none yet.',
      registers,
    });

    this.renewals = new Histogram({
      name: 'vipd_renewal_duration_seconds',
      help: 'Time from sending a renewal to its acknowledgement: lease keepalives, and in the fast profile compare-and-swap rewrites.',
      labelNames: ['kind'],
      buckets: RENEWAL_BUCKETS_SECONDS,
      registers,
    });
    this.margin = new Gauge({
      name: 'vipd_fencing_margin_seconds',
      help: 'Right after each acknowledged renewal while this node holds the leader key: time left until its fencing deadline.',
      registers,
    });

    if (options.mode === 'dhcp') {
      new Gauge({
        name: 'vipd_dhcp_lease_remaining_seconds',
        help: 'Seconds until the DHCP lease on this node expires; absent on nodes without a lease.',
        labelNames: ['ip'],
        registers,
        collect() {
          this.reset();
          const lease = source.dhcpLease();
          if (lease) this.set({ ip: lease.ip }, Math.max(0, (Date.parse(lease.expiresAt) - Date.now()) / 1000));
        },
      });
    }

    this.hookRuns = new Counter({
      name: 'vipd_hook_runs_total',
      help: 'Hook runs by event and final outcome (ok, failed after its retries, dropped from a full queue).',
      labelNames: ['event', 'outcome'],
      registers,
    });
    this.hookAttemptFailures = new Counter({
      name: 'vipd_hook_attempt_failures_total',
      help: 'Failed hook attempts (retries included) by event and how they failed: exit, timeout, error, http.',
      labelNames: ['event', 'failure'],
      registers,
    });
    for (const event of HOOK_EVENTS) {
      for (const outcome of HOOK_OUTCOMES) this.hookRuns.inc({ event, outcome }, 0);
      for (const failure of HOOK_ATTEMPT_FAILURES) this.hookAttemptFailures.inc({ event, failure }, 0);
    }

    // Check names are a small fixed set from the config (at most 16), so they may be labels.
    const health = source.health?.bind(source);
    new Gauge({
      name: 'vipd_healthy',
      help: "1 while every health check of this node passes (after fall and rise), else 0; 1 on a node without checks.",
      registers,
      collect() {
        this.set(health === undefined || health().record.healthy ? 1 : 0);
      },
    });
    new Gauge({
      name: 'vipd_health_check_up',
      help: 'Per health check: 1 while it passes (after fall and rise), 0 while it fails.',
      labelNames: ['check'],
      registers,
      collect() {
        this.reset();
        for (const check of health?.().record.checks ?? []) this.set({ check: check.name }, check.passing ? 1 : 0);
      },
    });
    new Counter({
      name: 'vipd_unhealthy_seconds_total',
      help: 'Seconds this node has been unhealthy since the agent started.',
      registers,
      collect() {
        this.reset();
        this.inc(health?.().unhealthySeconds ?? 0);
      },
    });
    this.healthProbes = new Counter({
      name: 'vipd_health_probes_total',
      help: 'Health check probes by check and result (ok, fail); a timed-out probe is a fail.',
      labelNames: ['check', 'result'],
      registers,
    });

    const priority = source.priority?.bind(source);
    const cordon = source.cordon?.bind(source);
    new Gauge({
      name: 'vipd_node_priority',
      help: 'The priority this node runs with (node.priority, or as set through the API); higher is preferred.',
      registers,
      collect() {
        this.set(priority?.() ?? 100);
      },
    });
    new Gauge({
      name: 'vipd_node_cordoned',
      help: '1 while this node is cordoned (vipd cordon), else 0; the strict label says whether it may never take the VIP.',
      labelNames: ['strict'],
      registers,
      collect() {
        const state = cordon?.() ?? 'none';
        this.reset();
        this.set({ strict: state === 'strict' ? 'true' : 'false' }, state === 'none' ? 0 : 1);
      },
    });
    this.reloads = new Counter({
      name: 'vipd_config_reloads_total',
      help: 'Config reloads (SIGHUP) by result: applied, or refused (invalid file, or a field that needs a restart).',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['applied', 'refused']) this.reloads.inc({ result }, 0);

    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  async render(): Promise<string> {
    return await this.registry.metrics();
  }

  transition(reason: TransitionCause): void {
    this.transitions.inc({ reason });
  }

  announcementSent(): void {
    this.announcements.inc();
    this.lastAnnouncement.set(Date.now() / 1000);
  }

  /** An acknowledged renewal; marginMs is null when this node does not hold the key. */
  renewal(kind: RenewalKind, latencyMs: number, marginMs: number | null): void {
    this.renewals.observe({ kind }, latencyMs / 1000);
    if (marginMs !== null) this.margin.set(marginMs / 1000);
  }

  hookFinished(event: HookEvent, outcome: HookRunRecord['outcome']): void {
    this.hookRuns.inc({ event, outcome });
  }

  healthProbe(check: string, ok: boolean): void {
    this.healthProbes.inc({ check, result: ok ? 'ok' : 'fail' });
  }

  reloaded(applied: boolean): void {
    this.reloads.inc({ result: applied ? 'applied' : 'refused' });
  }

  hookAttemptFailed(event: HookEvent, failure: AttemptFailure): void {
    this.hookAttemptFailures.inc({ event, failure });
  }
}
