/**
 * etcd checks: health of every endpoint, this node's clock against etcd's, and how long a
 * linearizable write takes compared with the window a renewal must land in.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { ElectionConfig } from '../config/config';
import type { EtcdStore } from '../store/etcd-store';
import type { ClusterKeys } from '../store/keys';
import { check, skip, type CheckResult } from './report';

export interface EtcdHttpTarget {
  endpoint: string;
  tls?: { ca: string; cert?: string; key?: string } | undefined;
}

export interface HttpAnswer {
  status: number;
  date: string | null;
  body: string;
  /** Local wall-clock times (ms) just before sending and on the first byte of the answer. */
  sentAt: number;
  answeredAt: number;
}

/** One GET on etcd's HTTP side (the client port serves /health and /version too). */
export function etcdHttpGet(target: EtcdHttpTarget, path: string, timeoutMs: number): Promise<HttpAnswer> {
  const url = new URL(path, target.endpoint.endsWith('/') ? target.endpoint : `${target.endpoint}/`);
  const secure = url.protocol === 'https:';
  const tlsOptions = secure && target.tls
    ? {
        ca: readFileSync(target.tls.ca),
        ...(target.tls.cert ? { cert: readFileSync(target.tls.cert) } : {}),
        ...(target.tls.key ? { key: readFileSync(target.tls.key) } : {}),
      }
    : {};
  return new Promise((resolve, reject) => {
    const sentAt = Date.now();
    const request = (secure ? https : http).get(url, { timeout: timeoutMs, agent: false, ...tlsOptions }, (response) => {
      const answeredAt = Date.now();
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const date = response.headers.date;
        resolve({ status: response.statusCode ?? 0, date: typeof date === 'string' ? date : null, body: Buffer.concat(chunks).toString(), sentAt, answeredAt });
      });
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}

// ---- health ----

export interface EndpointHealth {
  endpoint: string;
  healthy: boolean | null;
  /** etcd's reason, or why the endpoint could not be asked. */
  reason: string | null;
  version: string | null;
}

export async function probeEndpointHealth(target: EtcdHttpTarget, timeoutMs = 5000): Promise<EndpointHealth> {
  const base = { endpoint: target.endpoint };
  try {
    const [health, version] = await Promise.all([
      etcdHttpGet(target, 'health', timeoutMs),
      etcdHttpGet(target, 'version', timeoutMs).catch(() => null),
    ]);
    const parsedVersion = version ? (JSON.parse(version.body) as { etcdserver?: unknown }).etcdserver : null;
    const parsed = JSON.parse(health.body) as { health?: unknown; reason?: unknown };
    const healthy = parsed.health === true || parsed.health === 'true';
    return {
      ...base,
      healthy,
      reason: typeof parsed.reason === 'string' && parsed.reason !== '' ? parsed.reason : healthy ? null : `HTTP ${health.status}`,
      version: typeof parsedVersion === 'string' ? parsedVersion : null,
    };
  } catch (error) {
    return { ...base, healthy: null, reason: (error as Error).message, version: null };
  }
}

/** The etcd check: reachable at all (decided by the caller's reads), then each endpoint's /health. */
export function checkEtcdHealth(input: { reachable: boolean; error?: string; endpoints: EndpointHealth[]; dataError?: string | null; prefix?: string }): CheckResult {
  const name = 'etcd';
  const all = input.endpoints.map((entry) => entry.endpoint).join(', ');
  if (!input.reachable) {
    return check(name, 'fail', `cannot reach etcd at ${all}: ${input.error ?? 'no answer'}`, 'check that etcd runs, that etcd.endpoints is right, and that this node can reach it (routes, firewall, TLS files)');
  }
  const healthy = input.endpoints.filter((entry) => entry.healthy === true);
  const unhealthy = input.endpoints.filter((entry) => entry.healthy === false);
  const unknown = input.endpoints.filter((entry) => entry.healthy === null);
  const versions = [...new Set(healthy.map((entry) => entry.version).filter((version): version is string => version !== null))];
  const version = versions.length > 0 ? `, etcd ${versions.join(' / ')}` : '';
  const problems = [
    ...unhealthy.map((entry) => `${entry.endpoint} unhealthy (${entry.reason ?? 'no reason given'})`),
    ...unknown.map((entry) => `${entry.endpoint} /health unanswered (${entry.reason})`),
  ];
  if (input.dataError) {
    return check(
      name,
      'fail',
      `etcd answers, but this cluster's records do not parse: ${input.dataError}`,
      `a key under ${input.prefix ?? 'the cluster prefix'} holds something vipd did not write: look with etcdctl get --prefix ${input.prefix ?? '/vipd/'}`,
    );
  }
  if (healthy.length === 0 && unhealthy.length > 0) {
    return check(name, 'fail', `reads work, but etcd reports itself unhealthy: ${problems.join('; ')}`, 'see etcd\'s log: no leader, a NOSPACE alarm (compact and defragment, then disarm), or a member down');
  }
  if (problems.length > 0) {
    return check(name, 'warn', `${healthy.length} of ${input.endpoints.length} endpoints healthy${version}; ${problems.join('; ')}`, 'fix or remove the endpoints that do not answer: the agents fail over to them slowly');
  }
  return check(name, 'ok', `${healthy.length === 1 ? 'the endpoint is' : `all ${healthy.length} endpoints are`} healthy${version}`);
}

// ---- clock ----

/** One request: its local send/answer times and the server's Date header (1 s resolution). */
export interface ClockSample {
  sentAt: number;
  answeredAt: number;
  serverSecondMs: number;
}

export interface ClockOffset {
  /** Server minus local, in ms: positive when this node's clock is behind. */
  lowMs: number;
  highMs: number;
}

/**
 * Narrows the offset from samples. The server stamped the Date header at some moment in
 * [Date, Date + 1 s) of its clock, which was some moment in [sent, answered] of ours. Each
 * sample bounds the offset; samples on both sides of a tick of the server's second narrow it
 * to about the spacing between requests plus a round trip.
 */
export function estimateClockOffset(samples: ClockSample[]): ClockOffset | null {
  let low = -Infinity;
  let high = Infinity;
  for (const sample of samples) {
    low = Math.max(low, sample.serverSecondMs - sample.answeredAt);
    high = Math.min(high, sample.serverSecondMs + 1000 - sample.sentAt);
  }
  if (samples.length === 0) return null;
  if (low > high) {
    // The clock stepped while we measured: trust the last sample alone.
    const last = samples[samples.length - 1]!;
    return { lowMs: last.serverSecondMs - last.answeredAt, highMs: last.serverSecondMs + 1000 - last.sentAt };
  }
  return { lowMs: low, highMs: high };
}

/**
 * Samples /version until the offset is known to ±precisionMs or the time is up. A slow or
 * failed request only costs a sample; the measurement fails only if none answered.
 */
export async function measureClockOffset(target: EtcdHttpTarget, options = { spacingMs: 25, precisionMs: 50, budgetMs: 1500, requestTimeoutMs: 2000 }): Promise<ClockOffset> {
  const samples: ClockSample[] = [];
  const started = Date.now();
  let lastError: Error | null = null;
  for (;;) {
    try {
      const answer = await etcdHttpGet(target, 'version', options.requestTimeoutMs);
      const serverSecondMs = answer.date ? Date.parse(answer.date) : NaN;
      if (Number.isNaN(serverSecondMs)) throw new Error(`${target.endpoint} sent no usable Date header`);
      samples.push({ sentAt: answer.sentAt, answeredAt: answer.answeredAt, serverSecondMs });
    } catch (error) {
      lastError = error as Error;
    }
    const offset = estimateClockOffset(samples);
    const timeUp = Date.now() - started > options.budgetMs;
    if (offset && ((offset.highMs - offset.lowMs) / 2 <= options.precisionMs || timeUp)) return offset;
    if (timeUp) throw lastError ?? new Error('no answer');
    await new Promise((resolve) => setTimeout(resolve, options.spacingMs));
  }
}

function seconds(ms: number): string {
  return `${(Math.abs(ms) / 1000).toFixed(Math.abs(ms) < 10_000 ? 2 : 0)} s`;
}

const CLOCK_HINT =
  'run NTP (chrony or systemd-timesyncd) on every node and etcd member. Wall clocks decide whether TLS certificates are valid yet or ' +
  'still, and stamp move events and logs; vipd\'s fencing does not depend on them (it uses monotonic clocks)';

/** Check 5: warn past 1 s, fail past 5 s, counting only what the measurement proves. */
export function checkClock(results: Array<{ endpoint: string; offset: ClockOffset | null; error?: string }>): CheckResult {
  const name = 'clock';
  const measured = results.filter((entry): entry is { endpoint: string; offset: ClockOffset } => entry.offset !== null);
  if (measured.length === 0) return skip(name, `could not read etcd's clock: ${results.map((entry) => `${entry.endpoint}: ${entry.error ?? 'no answer'}`).join('; ')}`);
  // The smallest offset consistent with the measurement; 0 when the interval straddles 0.
  const provable = (offset: ClockOffset): number => (offset.lowMs > 0 ? offset.lowMs : offset.highMs < 0 ? -offset.highMs : 0);
  const worst = measured.reduce((a, b) => (provable(b.offset) > provable(a.offset) ? b : a));
  const middle = (worst.offset.lowMs + worst.offset.highMs) / 2;
  const spread = (worst.offset.highMs - worst.offset.lowMs) / 2;
  const direction = middle > 0 ? 'behind' : 'ahead of';
  const where = measured.length > 1 ? ` (${worst.endpoint})` : '';
  const off = provable(worst.offset);
  const detail =
    off === 0
      ? `this node's clock agrees with etcd's${where} to within ${seconds(Math.max(Math.abs(worst.offset.lowMs), Math.abs(worst.offset.highMs)))}`
      : `this node's clock is ${seconds(middle)} ${direction} etcd's${where} (±${seconds(spread)})`;
  if (off > 5000) return check(name, 'fail', detail, CLOCK_HINT);
  if (off > 1000) return check(name, 'warn', detail, CLOCK_HINT);
  return check(name, 'ok', detail);
}

// ---- renewal latency ----

/** Nearest-rank percentile of durations (ms). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

/** The window a renewal must land in, as in the config's checks: the lease (default) or the hold timeout (fast). */
export function renewalBudget(election: ElectionConfig): { windowMs: number; windowName: string; marginMs: number; failAboveMs: number; warnAboveMs: number } {
  const fast = election.profile === 'fast';
  const windowMs = fast ? election.holdTimeoutMs : election.leaseTtlSeconds * 1000;
  const usable = windowMs - election.fencingMarginMs;
  return { windowMs, windowName: fast ? 'hold timeout' : 'lease TTL', marginMs: election.fencingMarginMs, failAboveMs: usable / 2, warnAboveMs: usable / 4 };
}

function ms(value: number): string {
  return value < 10 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`;
}

/** Check 6: p99 of the timed writes against (window − margin)/2 (fail) and /4 (warn). */
export function checkRenewalLatency(durationsMs: number[], election: ElectionConfig): CheckResult {
  const name = 'renewal-latency';
  if (durationsMs.length === 0) return skip(name, 'no write was timed');
  const p50 = percentile(durationsMs, 50);
  const p99 = percentile(durationsMs, 99);
  const budget = renewalBudget(election);
  const detail =
    `${durationsMs.length} compare-and-swap writes: p50 ${ms(p50)}, p99 ${ms(p99)}; ` +
    `a renewal has (${budget.windowMs} ms ${budget.windowName} − ${budget.marginMs} ms margin)/2 = ${ms(budget.failAboveMs)} (${election.profile} profile)`;
  const hint =
    election.profile === 'fast'
      ? 'renewals this slow can miss the fencing deadline, and the holder drops the VIP without a fault: give etcd faster disks and a closer network, or use the default profile'
      : 'renewals this slow can miss the fencing deadline, and the holder drops the VIP without a fault: give etcd faster disks and a closer network, or raise election.leaseTTL';
  if (p99 > budget.failAboveMs) return check(name, 'fail', detail, hint);
  if (p99 > budget.warnAboveMs) return check(name, 'warn', `${detail}; p99 is above a quarter of the window`, hint);
  return check(name, 'ok', detail);
}

/**
 * Times `count` linearizable writes like the fast profile's renewals: compare-and-swap on a
 * key of our own under the cluster prefix, bound to a short lease so it goes even if doctor
 * is killed, and deleted afterwards.
 */
export async function timeRenewalWrites(store: EtcdStore, keys: ClusterKeys, node: string, count = 20): Promise<number[]> {
  const key = `${keys.doctorPrefix}${node}-${randomBytes(4).toString('hex')}`;
  const lease = await store.grantLease(10);
  const durations: number[] = [];
  try {
    let revision = 0;
    // The first write creates the key (mod revision 0 means absent); it is not timed.
    for (let i = 0; i <= count; i += 1) {
      const started = process.hrtime.bigint();
      const result = await store.compareAndSwap(key, JSON.stringify({ node, write: i }), lease.id, revision);
      const took = Number(process.hrtime.bigint() - started) / 1e6;
      revision = result.swapped ? result.revision : (result.current?.modRevision ?? 0);
      if (i > 0) durations.push(took);
    }
  } finally {
    await store.delete(key).catch(() => undefined);
    await store.revokeLease(lease.id).catch(() => undefined);
  }
  return durations;
}
