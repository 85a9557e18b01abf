/**
 * Which etcd member an agent talks to. The etcd3 client picks a random host per call and
 * never steers away from one that hangs (a frozen member accepts TCP and never answers), so
 * a third of the calls went to a dead member. Here each endpoint has a client of its own;
 * calls go to one endpoint, this node's own member first, and move to the next as soon as
 * a call to it fails at the transport (no answer within the call deadline, refused,
 * unreachable) and the member does not answer Status either. While away, the preferred
 * member is probed and taken back once it answers. The other members' connections are
 * kept open (warm), so the first call after a move does not pay for TCP, TLS and HTTP/2.
 */
import { NoopPolicy, type IDefaultPolicyContext } from 'cockatiel';
import type { Etcd3 } from 'etcd3';

/**
 * The deadline of the election's calls. Fast profile: the whole holding window less the
 * margin, the point past which an answer can no longer keep the holder (renewals overlap,
 * so no single call needs to land sooner); shorter deadlines (53 and 80 ms) threw away
 * answers that would have kept the VIP on a busy node, which fenced for nothing.
 */
export function steerDeadlineMs(windowMs: number, fencingMarginMs: number, profile: 'default' | 'fast'): number {
  // Default profile: one keepalive at a time, every 400 ms; after the deadline and a Status
  // check (half as long) the next one must still land inside the window: a third.
  return Math.max(20, Math.floor((windowMs - fencingMarginMs) / (profile === 'fast' ? 1 : 3)));
}

/** Moves that a caller wants to hear about (logs, metrics). */
export type SteerListener = (from: string, to: string, reason: string) => void;

/** An answer from a member that is up but has no leader: an election, or it is cut off. */
const LEADERLESS = /no leader|leader changed|request timed out|proposal dropped|not capable|unhealthy cluster/i;

/** The call never got an answer: the member is dead, frozen or unreachable. */
export function isTransportFailure(error: unknown): boolean {
  const name = (error as Error | undefined)?.constructor?.name ?? '';
  const message = (error as Error | undefined)?.message ?? '';
  return name === 'GRPCDeadlineExceededError' || name === 'GRPCUnavailableError' || /deadline exceeded|unavailable|ECONNREFUSED|EHOSTUNREACH|timed out after/i.test(message);
}

export function isLeaderless(error: unknown): boolean {
  return LEADERLESS.test((error as Error | undefined)?.message ?? '');
}

/** A cockatiel policy that only reports failures: retries stay the caller's to decide. */
class ReportingPolicy extends NoopPolicy {
  constructor(
    private readonly report: (error: unknown) => void,
    private readonly ok: () => void,
  ) {
    super();
  }

  override async execute<T>(fn: (context: IDefaultPolicyContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    try {
      const result = await super.execute(fn, signal);
      this.ok();
      return result;
    } catch (error) {
      this.report(error);
      throw error;
    }
  }
}

export interface SteeringOptions {
  /** Own member first. */
  endpoints: string[];
  /** A client for one endpoint, with the given fault policy as its host policy. */
  connect: (endpoint: string, policy: NoopPolicy) => Etcd3;
  /** How often the preferred endpoint is probed while calls go elsewhere. */
  probeIntervalMs: number;
  /** A leaderless member is left only once it has been leaderless this long: longer than an election. */
  leaderlessMs: number;
  /** How long a member has to answer Status before calls leave it. */
  statusDeadlineMs: number;
  onSteer?: SteerListener;
}

export class EndpointSteering {
  private endpoints: string[];
  private readonly clients = new Map<string, Etcd3>();
  private activeIndex = 0;
  private leaderlessSince: number | null = null;
  private probeTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly checking = new Set<string>();
  private readonly failedAt = new Map<string, number>();
  private readonly answeredAt = new Map<string, number>();

  constructor(private readonly options: SteeringOptions) {
    this.endpoints = [...new Set(options.endpoints)];
  }

  get endpoint(): string {
    return this.endpoints[this.activeIndex]!;
  }

  get all(): readonly string[] {
    return this.endpoints;
  }

  /** Where calls would go next if they left the active member: null with one endpoint. */
  get standby(): string | null {
    return this.endpoints.length < 2 ? null : this.endpoints[this.nextIndex()]!;
  }

  /** The client calls should use now. */
  get active(): Etcd3 {
    return this.clientFor(this.endpoint);
  }

  clientFor(endpoint: string): Etcd3 {
    let client = this.clients.get(endpoint);
    if (!client) {
      client = this.options.connect(endpoint, new ReportingPolicy((error) => this.report(endpoint, error), () => this.succeeded(endpoint)));
      this.clients.set(endpoint, client);
    }
    return client;
  }

  /** Adds the other members' endpoints (discovered from the member list), keeping the preferred first. */
  setEndpoints(endpoints: string[]): void {
    const current = this.endpoint;
    const next = [...new Set([this.endpoints[0]!, ...endpoints])];
    for (const [endpoint, client] of this.clients) {
      if (!next.includes(endpoint)) {
        client.close();
        this.clients.delete(endpoint);
      }
    }
    this.endpoints = next;
    this.activeIndex = Math.max(0, next.indexOf(current));
    this.warmStandbys();
  }

  /**
   * Opens (or keeps open) a connection to every member calls do not use now. Measured in the
   * lab: with the holder's own member frozen, the first renewal to the next member waited
   * over a second for its channel (TLS on a busy host), past the fencing deadline; a warm
   * channel answers in milliseconds. grpc-js drops a channel whose peer went away and dials
   * again only on the next call, so the caller repeats this now and then (member discovery).
   */
  private warmStandbys(): void {
    for (const endpoint of this.endpoints) {
      if (endpoint === this.endpoint || this.closed) continue;
      this.clientFor(endpoint).maintenance.status({ deadline: Date.now() + this.options.probeIntervalMs }).catch(() => undefined);
    }
  }

  /** A call to `endpoint` failed with `error`. */
  report(endpoint: string, error: unknown): void {
    if (this.closed || endpoint !== this.endpoint || this.endpoints.length < 2) return;
    if (isTransportFailure(error)) {
      void this.steerIfSilent(endpoint, error as Error);
      return;
    }
    if (isLeaderless(error)) {
      // Every member is leaderless during an election: moving then only costs a connection.
      const now = Date.now();
      this.leaderlessSince ??= now;
      if (now - this.leaderlessSince >= this.options.leaderlessMs) this.steer(`${endpoint} has had no leader for ${now - this.leaderlessSince}ms`);
    }
  }

  /** A call to `endpoint` succeeded. */
  succeeded(endpoint: string): void {
    this.answeredAt.set(endpoint, Date.now());
    if (endpoint === this.endpoint) this.leaderlessSince = null;
  }

  /** How long `endpoint` has answered no call (Infinity if it never has). */
  silentForMs(endpoint: string): number {
    const at = this.answeredAt.get(endpoint);
    return at === undefined ? Infinity : Date.now() - at;
  }

  /**
   * A write that got no answer may mean the member is gone, or only that etcd has no
   * leader (a follower forwards proposals to a dead leader and never answers them). Status
   * is answered locally, leader or not: if the member answers it, it is alive and every
   * other member is in the same election, so the calls stay.
   */
  private async steerIfSilent(endpoint: string, error: Error): Promise<void> {
    if (this.checking.has(endpoint)) return;
    this.checking.add(endpoint);
    try {
      await this.clientFor(endpoint).maintenance.status({ deadline: Date.now() + this.options.statusDeadlineMs });
    } catch {
      this.failedAt.set(endpoint, Date.now());
      if (endpoint === this.endpoint && !this.closed) this.steer(`no answer from ${endpoint}: ${error.message}`);
    } finally {
      this.checking.delete(endpoint);
    }
  }

  /** The next endpoint: the one that failed longest ago (or never). */
  private steer(reason: string): void {
    const from = this.endpoint;
    this.activeIndex = this.nextIndex();
    this.leaderlessSince = null;
    this.options.onSteer?.(from, this.endpoint, reason);
    this.probePreferredLater();
    this.warmStandbys();
  }

  private nextIndex(): number {
    let best = (this.activeIndex + 1) % this.endpoints.length;
    for (let step = 1; step < this.endpoints.length; step += 1) {
      const index = (this.activeIndex + step) % this.endpoints.length;
      if ((this.failedAt.get(this.endpoints[index]!) ?? 0) < (this.failedAt.get(this.endpoints[best]!) ?? 0)) best = index;
    }
    return best;
  }

  private probePreferredLater(): void {
    if (this.probeTimer || this.activeIndex === 0 || this.closed) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      void this.probePreferred();
    }, this.options.probeIntervalMs);
    this.probeTimer.unref();
  }

  private async probePreferred(): Promise<void> {
    if (this.activeIndex === 0 || this.closed) return;
    const preferred = this.endpoints[0]!;
    try {
      // Status answers without a leader; a range read proves the member serves with quorum.
      await this.clientFor(preferred).kv.range({ key: Buffer.from('/vipd-endpoint-probe') }, { deadline: Date.now() + this.options.probeIntervalMs });
      if (this.closed || this.activeIndex === 0) return;
      const from = this.endpoint;
      this.activeIndex = 0;
      this.options.onSteer?.(from, preferred, `${preferred} answers again`);
    } catch {
      this.probePreferredLater();
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.probeTimer);
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}
