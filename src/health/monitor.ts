/**
 * Runs this node's checks on their intervals and applies fall and rise. Every probe is
 * asynchronous and bounded by its timeout, so a hung check never delays the election's
 * renewals or the announcer.
 *
 * Start state: every check starts failing and passes after `rise` successes in a row, so a
 * node that just started does not win the VIP before its service has answered. A node
 * without checks is always healthy.
 */
import { isDeepStrictEqual } from 'node:util';
import { monotonicMs } from '../clock';
import type { HealthCheckConfig } from '../config/health';
import { describeProbe } from '../config/health';
import type { CheckResultRecord, CheckStatusRecord, NodeHealthRecord } from '../store/records';
import { buildProbe, type Probe, type ProbeResult } from './probes';

export interface HealthMonitorOptions {
  node: string;
  checks: HealthCheckConfig[];
  /** The node turned healthy or unhealthy, or a check started or stopped passing. Must return at once. */
  onChange?: (health: NodeHealthRecord) => void;
  /** Every probe's result (metrics). Must return at once. */
  onProbe?: (check: string, result: ProbeResult) => void;
  /**
   * A passing check failed for the first time, or passed again before reaching `fall`: the
   * verdict stands, but a holder must not move the VIP here meanwhile (agent/health-gate.ts).
   * Must return at once.
   */
  onWavering?: (health: NodeHealthRecord) => void;
}

interface CheckState {
  config: HealthCheckConfig;
  probe: Probe;
  status: CheckStatusRecord;
  timer: NodeJS.Timeout | undefined;
}

export class HealthMonitor {
  private readonly states: CheckState[];
  private healthy: boolean;
  private since = new Date().toISOString();
  private running = false;
  private abort = new AbortController();
  /** Time spent unhealthy before the current stretch, and when the current one began (monotonic). */
  private unhealthyMs = 0;
  private unhealthyFrom: number | null;

  /** Throws InputError (exit 2) when a check names a file it cannot use. */
  constructor(private readonly options: HealthMonitorOptions) {
    const now = this.since;
    this.states = options.checks.map((config) => ({
      config,
      probe: buildProbe(config.probe, config.field),
      timer: undefined,
      status: {
        name: config.name,
        kind: config.probe.kind,
        target: describeProbe(config.probe),
        passing: false,
        since: now,
        consecutiveFailures: 0,
        consecutiveSuccesses: 0,
        fall: config.fall,
        rise: config.rise,
        lastResult: null,
      },
    }));
    this.healthy = this.states.length === 0;
    this.unhealthyFrom = this.healthy ? null : monotonicMs();
  }

  /** Seconds this node has been unhealthy since the agent started, the current stretch included (metrics). */
  unhealthySeconds(): number {
    const current = this.unhealthyFrom === null ? 0 : monotonicMs() - this.unhealthyFrom;
    return (this.unhealthyMs + current) / 1000;
  }

  get isHealthy(): boolean {
    return this.healthy;
  }

  /** Why this node is unhealthy ("check api failing: HTTP 503"), or null when healthy. */
  unhealthyReason(): string | null {
    if (this.healthy) return null;
    return this.states
      .filter((state) => !state.status.passing)
      .map(({ status }) => `check ${status.name} failing${status.lastResult ? `: ${status.lastResult.detail}` : ' (no result yet)'}`)
      .join('; ');
  }

  /**
   * Whether a check has failed `fall` times in a row, not merely not risen yet since start:
   * only that sends the VIP away from a holder, so a cluster starting up does not move it.
   */
  hasFailed(): boolean {
    return this.states.some(({ status }) => !status.passing && status.consecutiveFailures >= status.fall);
  }

  snapshot(): NodeHealthRecord {
    return {
      node: this.options.node,
      healthy: this.healthy,
      failing: this.states.filter((state) => !state.status.passing).map((state) => state.status.name),
      since: this.since,
      checks: this.states.map((state) => ({ ...state.status })),
      updatedAt: new Date().toISOString(),
    };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
    for (const state of this.states) void this.run(state);
  }

  stop(): void {
    this.running = false;
    this.abort.abort();
    for (const state of this.states) clearTimeout(state.timer);
  }

  /** Runs every check once, at once, without fall or rise: `vipd doctor`'s verdicts. */
  async runOnce(): Promise<Array<{ check: HealthCheckConfig; result: ProbeResult }>> {
    return Promise.all(this.states.map(async (state) => ({ check: state.config, result: await state.probe(state.config.timeoutMs) })));
  }

  /** One probe, then the next `interval` after this one started (timeout ≤ interval, so they never overlap). */
  private async run(state: CheckState): Promise<void> {
    if (!this.running) return;
    const started = Date.now();
    const result = await state.probe(state.config.timeoutMs, this.abort.signal);
    if (!this.running) return;
    this.record(state, result);
    const wait = Math.max(0, state.config.intervalMs - (Date.now() - started));
    state.timer = setTimeout(() => void this.run(state), wait);
  }

  /** Applies one result: fall failures in a row fail a passing check, rise successes pass a failing one. */
  private record(state: CheckState, result: ProbeResult): void {
    const status = state.status;
    const failedBefore = status.consecutiveFailures;
    const time = new Date().toISOString();
    const lastResult: CheckResultRecord = { ok: result.ok, detail: result.detail, output: result.output, durationMs: Math.round(result.durationMs), time };
    status.lastResult = lastResult;
    if (result.ok) {
      status.consecutiveSuccesses += 1;
      status.consecutiveFailures = 0;
    } else {
      status.consecutiveFailures += 1;
      status.consecutiveSuccesses = 0;
    }
    const flips = status.passing ? status.consecutiveFailures >= status.fall : status.consecutiveSuccesses >= status.rise;
    this.options.onProbe?.(status.name, result);
    if (!flips) {
      if (status.passing && (result.ok ? failedBefore > 0 : failedBefore === 0)) this.options.onWavering?.(this.snapshot());
      return;
    }
    status.passing = !status.passing;
    status.since = time;
    const healthy = this.states.every((other) => other.status.passing);
    if (healthy !== this.healthy) {
      this.healthy = healthy;
      this.since = time;
      if (healthy && this.unhealthyFrom !== null) {
        this.unhealthyMs += monotonicMs() - this.unhealthyFrom;
        this.unhealthyFrom = null;
      } else if (!healthy) {
        this.unhealthyFrom = monotonicMs();
      }
    }
    this.options.onChange?.(this.snapshot());
  }

  /**
   * A reload (issue 14): checks that are unchanged keep their state, so the node's verdict
   * does not restart from failing; new or changed ones start failing as at start. Call before start().
   */
  adopt(previous: HealthMonitor): void {
    for (const state of this.states) {
      const old = previous.states.find((candidate) => isDeepStrictEqual(candidate.config, state.config));
      if (old) state.status = { ...old.status };
    }
    this.healthy = this.states.every((state) => state.status.passing);
    this.since = this.healthy === previous.healthy ? previous.since : new Date().toISOString();
    this.unhealthyMs = previous.unhealthyMs;
    this.unhealthyFrom = this.healthy ? null : (previous.unhealthyFrom ?? monotonicMs());
  }

  /** For tests: feeds results to a check by name, as its probes would. */
  feed(check: string, result: ProbeResult): void {
    const state = this.states.find((candidate) => candidate.status.name === check);
    if (!state) throw new Error(`no check named ${check}`);
    this.record(state, result);
  }
}
